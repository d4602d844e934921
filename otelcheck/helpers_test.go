package otelcheck

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

// The helpers below are copies of reliable's test helpers
// (reliable/helpers_test.go), which this module cannot import.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dialAccept opens a session from a to b.
func dialAccept(t testing.TB, a, b *reliable.Endpoint) (*reliable.Session, *reliable.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acc := make(chan *reliable.Session, 1)
	go func() {
		s, err := b.Accept(ctx)
		if err != nil {
			t.Errorf("accept: %v", err)
		}
		acc <- s
	}()
	sa, err := a.Dial(ctx, b.LocalPort(), transport.CbID{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	sb := <-acc
	if sb == nil {
		t.FailNow()
	}
	return sa, sb
}

// msg is message i of size bytes: its index, then a pattern.
func msg(i, size int) []byte {
	size = max(size, 8)
	b := make([]byte, size)
	binary.LittleEndian.PutUint64(b, uint64(i))
	for j := 8; j < size; j++ {
		b[j] = byte(i*31 + j)
	}
	return b
}

// checkMsg verifies that got is exactly message want.
func checkMsg(got []byte, want, size int) error {
	if len(got) < 8 {
		return fmt.Errorf("message of %d bytes, want %d", len(got), size)
	}
	idx := int(binary.LittleEndian.Uint64(got))
	if idx != want {
		return fmt.Errorf("got message %d, want %d (loss, duplication or reordering)", idx, want)
	}
	if !bytes.Equal(got, msg(want, size)) {
		return fmt.Errorf("message %d: payload differs", want)
	}
	return nil
}

// stream sends n messages from s to r and checks exactly-once, in-order,
// byte-exact delivery. It returns the first violation.
func stream(ctx context.Context, s, r *reliable.Session, n, size int) error {
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if err := s.Send(ctx, msg(i, size)); err != nil {
				errc <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		select {
		case m := <-r.Recv():
			if err := checkMsg(m, i, size); err != nil {
				return err
			}
		case <-r.Done():
			return fmt.Errorf("receiver ended after %d of %d: %w", i, n, r.Err())
		case <-ctx.Done():
			return fmt.Errorf("received %d of %d: %w", i, n, ctx.Err())
		}
	}
	if err := <-errc; err != nil {
		return err
	}
	// Nothing more may arrive: a duplicate would show up here.
	select {
	case m := <-r.Recv():
		return fmt.Errorf("extra message after %d: %x", n, m[:8])
	default:
	}
	return nil
}
