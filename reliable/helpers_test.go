package reliable

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// pair is two endpoints on one in-memory network, with an open session.
type pair struct {
	net    *memnet.Network
	a, b   *Endpoint
	sa, sb *Session // a dialed b
	ta, tb transport.Transport
}

// newPair builds endpoints over memnet; wrap (optional) wraps each
// transport, e.g. with the fault injector. Must run inside a synctest
// bubble or a normal test.
func newPair(t testing.TB, cfg *Config, wrap func(transport.Transport, int) transport.Transport) *pair {
	t.Helper()
	p := newEndpoints(t, cfg, wrap)
	p.sa, p.sb = dialAccept(t, p.a, p.b)
	return p
}

// dialAccept opens a session from a to b on the default channel.
func dialAccept(t testing.TB, a, b *Endpoint) (*Session, *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acc := make(chan *Session, 1)
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

// newEndpoints builds two endpoints without a session. They are closed
// when the test ends (inside the synctest bubble, if any).
func newEndpoints(t testing.TB, cfg *Config, wrap func(transport.Transport, int) transport.Transport) *pair {
	t.Helper()
	p := &pair{net: memnet.New(memnet.Config{})}
	ca, err := p.net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := p.net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	p.ta, p.tb = ca, cb
	if wrap != nil {
		p.ta, p.tb = wrap(ca, 0), wrap(cb, 1)
	}
	if p.a, err = NewEndpoint(p.ta, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	if p.b, err = NewEndpoint(p.tb, cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pair) close() {
	if p.a != nil {
		p.a.Close()
	}
	if p.b != nil {
		p.b.Close()
	}
}

// msg builds message i: an 8-byte index followed by a pattern derived
// from it, so that corruption or mix-ups are visible.
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
func stream(ctx context.Context, s, r *Session, n, size int) error {
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
