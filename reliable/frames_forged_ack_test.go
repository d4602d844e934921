package reliable

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
)

// An ACK that acknowledges DSNs never sent is rejected (Rejected["state"])
// and changes nothing: the real acknowledgements that follow still work.
func TestFramesAckBeyondNextIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		I := tc.epISN
		if _, err := s.SendBatch(context.Background(), [][]byte{[]byte("m0"), []byte("m1")}); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("m0", wire.TypeData, hasSeq(I))
		tc.wantFrame("m1", wire.TypeData, hasSeq(I+1))
		tc.write(tc.ackOf(I+50, I+114))
		tc.write(tc.ackOf(I+1, I+64, wire.Range{Start: I + 40, End: I + 45}))
		tc.write(tc.ackOf(I+2, I+64, wire.Range{Start: I + 40, End: I + 45}))
		flushed := make(chan error, 1)
		go func() { flushed <- s.Flush(context.Background()) }()
		tc.advance(time.Millisecond)
		select {
		case err := <-flushed:
			if err != nil {
				t.Fatalf("Flush: %v", err)
			}
		default:
			t.Fatalf("Flush still waiting after the real ACK; stats %+v", s.Stats())
		}
		if _, err := s.SendBatch(context.Background(), [][]byte{[]byte("m2")}); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("m2", wire.TypeData, hasSeq(I+2))
		if r := tc.ep.Stats().Rejected["state"]; r == 0 {
			t.Errorf("the forged ACK was not counted as rejected: %v", tc.ep.Stats().Rejected)
		}
	})
}
