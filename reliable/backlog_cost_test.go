package reliable

import (
	"runtime"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// A session that a peer opened and Accept has not taken costs a few KiB:
// no channels and no pump until Accept, window rings that grow only as
// used, a small coalescing buffer. A SYN flood fills the backlog with such
// sessions (and then is refused), so this bounds what it can take.
func TestPendingSessionCost(t *testing.T) {
	net := memnet.New(memnet.Config{})
	tr, err := net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	ep, err := NewEndpoint(tr, &Config{AcceptBacklog: n})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	flooder, err := net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	var b []byte
	for i := range n {
		body := wire.AppendSyn(nil, wire.Syn{Epoch: uint32(i + 1), ISN: 1, Window: 4096, MaxMessage: 16384, MaxDatagram: 65536})
		f := wire.Frame{ID: transport.CbID{Idx: 0x1000, Val: uint32(i)}, Seq: 1, Ack: uint32(i + 1), Type: wire.TypeSyn}
		if b, err = wire.Append(b[:0], &f, body, nil); err != nil {
			t.Fatal(err)
		}
		if err := flooder.Send(transport.Addr{Port: ep.LocalPort()}, b); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(ep.acceptQ) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(ep.acceptQ) != n {
		t.Fatalf("%d sessions waiting for Accept, want %d", len(ep.acceptQ), n)
	}
	per := (int64(heap()) - int64(before)) / n
	t.Logf("a session waiting for Accept costs %d bytes of heap (default Config)", per)
	if per > 16<<10 {
		t.Errorf("a session waiting for Accept costs %d bytes, want at most 16 KiB", per)
	}
}
