package transporttest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/cnlink/cnlink/transport"
)

// Harness opens the Transport under test.
type Harness interface {
	// Open returns a transport bound to a fresh port, with a receive
	// queue of readBuffer bytes as SO_RCVBUF takes it (the kernel doubles
	// it and enforces a minimum; 0 = the default). Open should register a
	// t.Cleanup that closes it; Run closes it too, so Close must be safe
	// twice.
	Open(t *testing.T, readBuffer int) transport.Transport
	// RealCreds reports whether Packet.Creds are real process credentials
	// (PID == os.Getpid()).
	RealCreds() bool
}

// Time bounds. Generous, because CI machines are shared and noisy; a
// correct transport answers in microseconds.
const (
	waitTimeout = 20 * time.Second
	// streamTimeout bounds the whole in-order stream subtest.
	streamTimeout = 90 * time.Second
)

// Run runs the conformance suite against h with a random seed, which it
// puts in the subtest name (seed=N) so that a failure can be replayed with
// RunSeed.
func Run(t *testing.T, h Harness) {
	RunSeed(t, h, rand.Uint64())
}

// RunSeed runs the conformance suite with a given seed: it picks the
// multicast groups, the payload markers and the payloads.
func RunSeed(t *testing.T, h Harness, seed uint64) {
	t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		s := &suite{h: h, seed: seed}
		for _, tc := range []struct {
			name string
			f    func(*testing.T)
		}{
			{"UnicastInOrder", s.unicastInOrder},
			{"MulticastFanOut", s.multicastFanOut},
			{"MulticastGroupAndPort", s.multicastGroupAndPort},
			{"MulticastLeave", s.multicastLeave},
			{"Overrun", s.overrun},
			{"PeerBusy", s.peerBusy},
			{"PeerGone", s.peerGone},
			{"SenderPortFromTransport", s.senderPort},
			{"Credentials", s.credentials},
			{"Close", s.close},
			{"ManyFrames", s.manyFrames},
			{"Truncated", s.truncated},
			{"GroupRange", s.groupRange},
		} {
			t.Run(tc.name, tc.f)
		}
	})
}

// suite holds what every subtest needs. Each subtest derives its own
// random stream from the seed and its name, so that subtests can be run
// alone and still see the same data.
type suite struct {
	h    Harness
	seed uint64
}

func (s *suite) rng(t *testing.T) *rand.Rand {
	var h uint64 = 14695981039346656037 // FNV-1a of the subtest name
	for _, c := range []byte(t.Name()) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(s.seed, h))
}

func (s *suite) open(t *testing.T, readBuffer int) transport.Transport {
	t.Helper()
	tr := s.h.Open(t, readBuffer)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// evenGroup picks a random even group in 2..32: odd groups can be joined by
// unprivileged users (cn_bind), and parallel test processes share the real
// kernel's groups, which is why every payload also carries a marker.
func evenGroup(r *rand.Rand) uint32 { return 2 * (1 + r.Uint32N(16)) }

// markerLen is the length of the random marker that starts the first
// payload of every datagram the suite sends.
const markerLen = 8

type marker [markerLen]byte

func newMarker(r *rand.Rand) marker {
	var m marker
	for i := range m {
		m[i] = byte(r.Uint32())
	}
	return m
}

// testID is the connector id of the suite's frames: no kernel callback
// listens on it, so a stray copy to port 0 is harmless.
var testID = transport.CbID{Idx: 0x636e6c6b, Val: 0x74657374}

// datagram builds one frame whose payload is marker | index (4 bytes) |
// extra random bytes, with nlmsg_pid set to nlPID.
func datagram(r *rand.Rand, m marker, index uint32, extra int, nlPID uint32) []byte {
	p := make([]byte, markerLen+4+extra)
	copy(p, m[:])
	p[markerLen] = byte(index)
	p[markerLen+1] = byte(index >> 8)
	p[markerLen+2] = byte(index >> 16)
	p[markerLen+3] = byte(index >> 24)
	for i := markerLen + 4; i < len(p); i++ {
		p[i] = byte(r.Uint32())
	}
	b, err := transport.AppendFrame(nil, &transport.Frame{
		NlType: transport.NlmsgDone, NlSeq: index, NlPID: nlPID,
		ID: testID, Seq: index, Ack: r.Uint32(), Payload: p,
	})
	if err != nil {
		panic(err) // extra is far below MaxPayload everywhere in this file
	}
	return b
}

// parse returns the index of a datagram built by datagram with marker m,
// and false for anything else (foreign traffic, overrun reports).
func parse(p transport.Packet, m marker) (uint32, bool) {
	if p.Overrun {
		return 0, false
	}
	sc := transport.NewScanner(p.Data)
	if !sc.Next() {
		return 0, false
	}
	f := sc.Frame()
	if f.ID != testID || len(f.Payload) < markerLen+4 || !bytes.Equal(f.Payload[:markerLen], m[:]) {
		return 0, false
	}
	q := f.Payload[markerLen:]
	return uint32(q[0]) | uint32(q[1])<<8 | uint32(q[2])<<16 | uint32(q[3])<<24, true
}

// rx is one Receive result, its data copied out of the reader's buffer.
type rx struct {
	p   transport.Packet
	err error
}

// reader runs Receive in a loop on its own goroutine and hands results to
// the returned channel. It stops at the first error (delivered) or when
// the test ends; t.Cleanup closes tr and waits for it, so it never leaks.
func reader(t *testing.T, tr transport.Transport) <-chan rx {
	ch := make(chan rx, 4096)
	stop := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		buf := make([]byte, 1<<18)
		for {
			p, err := tr.Receive(buf)
			if err == nil {
				p.Data = bytes.Clone(p.Data)
			}
			select {
			case ch <- rx{p, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		_ = tr.Close()
		<-exited
	})
	return ch
}

// next returns the next Receive result, failing the test after waitTimeout.
func next(t *testing.T, ch <-chan rx, what string) rx {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		panic("unreachable")
	}
}

// nextMarked returns the next datagram carrying marker m, skipping foreign
// traffic and overrun reports (counted in *overruns when not nil).
func nextMarked(t *testing.T, ch <-chan rx, m marker, what string, overruns *int) (transport.Packet, uint32) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("Receive while waiting for %s: %v", what, r.err)
			}
			if r.p.Overrun && overruns != nil {
				*overruns++
			}
			if i, ok := parse(r.p, m); ok {
				return r.p, i
			}
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
	}
}

// receiveOnce calls Receive once on its own goroutine, failing the test if
// it does not return within waitTimeout (and then closing tr so that the
// goroutine ends).
func receiveOnce(t *testing.T, tr transport.Transport, buf []byte) (transport.Packet, error) {
	t.Helper()
	type res struct {
		p   transport.Packet
		err error
	}
	ch := make(chan res, 1)
	go func() {
		p, err := tr.Receive(buf)
		ch <- res{p, err}
	}()
	select {
	case r := <-ch:
		return r.p, r.err
	case <-time.After(waitTimeout):
		_ = tr.Close()
		<-ch
		t.Fatalf("Receive did not return within %v", waitTimeout)
		panic("unreachable")
	}
}

// send sends b and fails the test on any error.
func send(t *testing.T, tr transport.Transport, dst transport.Addr, b []byte) {
	t.Helper()
	if err := tr.Send(dst, b); err != nil {
		t.Fatalf("Send to %+v: %v", dst, err)
	}
}

// sendRetry sends b, retrying ErrPeerBusy on a short timer as a real
// sender must (the kernel never signals that the peer drained).
func sendRetry(tr transport.Transport, dst transport.Addr, b []byte, deadline time.Time) error {
	for {
		err := tr.Send(dst, b)
		if err == nil || !errors.Is(err, transport.ErrPeerBusy) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("peer busy until deadline: %w", err)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func join(t *testing.T, tr transport.Transport, g uint32) {
	t.Helper()
	if err := tr.JoinGroup(g); err != nil {
		t.Fatalf("JoinGroup(%d): %v", g, err)
	}
}

func (s *suite) unicastInOrder(t *testing.T) {
	r := s.rng(t)
	a, b := s.open(t, 0), s.open(t, 0)
	m := newMarker(r)
	const n = 4000
	msgs := make([][]byte, n)
	for i := range msgs {
		// Sizes cross the kernel's small-head, kmalloc and large-skb
		// boundaries (256, 704, 1728, 3776 bytes).
		extra := r.IntN(300)
		if i%97 == 0 {
			extra = r.IntN(5000)
		}
		msgs[i] = datagram(r, m, uint32(i), extra, a.LocalPort())
	}
	ch := reader(t, b)
	errc := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(streamTimeout)
		for i, d := range msgs {
			if err := sendRetry(a, transport.Addr{Port: b.LocalPort()}, d, deadline); err != nil {
				errc <- fmt.Errorf("datagram %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	for i := range msgs {
		p, idx := nextMarked(t, ch, m, fmt.Sprintf("datagram %d of %d", i, n), nil)
		if idx != uint32(i) {
			t.Fatalf("datagram %d arrived when %d was expected: order or loss", idx, i)
		}
		if p.From != a.LocalPort() || p.Group != 0 || p.Truncated {
			t.Fatalf("datagram %d: From=%d Group=%d Truncated=%v, want From=%d Group=0", i, p.From, p.Group, p.Truncated, a.LocalPort())
		}
		if !bytes.Equal(p.Data, msgs[i]) {
			t.Fatalf("datagram %d: %d bytes differ from the %d sent", i, len(p.Data), len(msgs[i]))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func (s *suite) multicastFanOut(t *testing.T) {
	r := s.rng(t)
	g := evenGroup(r)
	a, b, c := s.open(t, 0), s.open(t, 0), s.open(t, 0)
	for _, tr := range []transport.Transport{a, b, c} {
		join(t, tr, g) // the sender too: the kernel never loops its own multicast back
	}
	ra, rb, rc := reader(t, a), reader(t, b), reader(t, c)
	m := newMarker(r)
	msg := datagram(r, m, 1, 100, 0)
	send(t, a, transport.Addr{Group: g}, msg)
	for name, ch := range map[string]<-chan rx{"b": rb, "c": rc} {
		p, idx := nextMarked(t, ch, m, "the multicast at "+name, nil)
		if idx != 1 || p.From != a.LocalPort() || p.Group != g || !bytes.Equal(p.Data, msg) {
			t.Errorf("%s got index %d From=%d Group=%d (%d bytes), want 1 From=%d Group=%d (%d bytes)",
				name, idx, p.From, p.Group, len(p.Data), a.LocalPort(), g, len(msg))
		}
	}
	// A unicast to itself queues behind a looped-back multicast, if any.
	send(t, a, transport.Addr{Port: a.LocalPort()}, datagram(r, m, 2, 0, 0))
	if p, idx := nextMarked(t, ra, m, "the sender's unicast to itself", nil); idx != 2 || p.Group != 0 {
		t.Errorf("sender got index %d (Group %d) first: its own multicast came back", idx, p.Group)
	}
	// A group nobody else joined: the send succeeds and goes nowhere.
	other := g%32 + 2
	send(t, a, transport.Addr{Group: other}, datagram(r, m, 3, 0, 0))
}

func (s *suite) multicastGroupAndPort(t *testing.T) {
	r := s.rng(t)
	g := evenGroup(r)
	a, b, c, d := s.open(t, 0), s.open(t, 0), s.open(t, 0), s.open(t, 0)
	join(t, b, g)
	join(t, c, g)
	rb, rc, rd := reader(t, b), reader(t, c), reader(t, d)
	m := newMarker(r)
	// b is a member and the port: it gets one copy, not two. c gets the
	// multicast. Every copy reports the group, the unicast one too.
	msg := datagram(r, m, 1, 10, 0)
	send(t, a, transport.Addr{Port: b.LocalPort(), Group: g}, msg)
	// d is not a member but is the port: it gets the unicast copy.
	send(t, a, transport.Addr{Port: d.LocalPort(), Group: g}, datagram(r, m, 2, 10, 0))
	send(t, a, transport.Addr{Port: b.LocalPort()}, datagram(r, m, 3, 0, 0))

	var got []uint32
	for _, want := range []uint32{1, 2, 3} {
		p, idx := nextMarked(t, rb, m, fmt.Sprintf("datagram %d at b", want), nil)
		got = append(got, idx)
		if wantG := map[uint32]uint32{1: g, 2: g, 3: 0}[idx]; p.Group != wantG || p.From != a.LocalPort() {
			t.Errorf("b: datagram %d From=%d Group=%d, want From=%d Group=%d", idx, p.From, p.Group, a.LocalPort(), wantG)
		}
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("b (member and destination port) got %v, want [1 2 3]: exactly one copy of each", got)
	}
	for _, want := range []uint32{1, 2} {
		if p, idx := nextMarked(t, rc, m, fmt.Sprintf("datagram %d at c", want), nil); idx != want || p.Group != g {
			t.Errorf("c got index %d Group %d, want %d Group %d", idx, p.Group, want, g)
		}
	}
	if p, idx := nextMarked(t, rd, m, "the unicast copy at d", nil); idx != 2 || p.Group != g {
		t.Errorf("d got index %d Group %d, want 2 Group %d", idx, p.Group, g)
	}
}

func (s *suite) multicastLeave(t *testing.T) {
	r := s.rng(t)
	g := evenGroup(r)
	a, b := s.open(t, 0), s.open(t, 0)
	join(t, b, g)
	rb := reader(t, b)
	m := newMarker(r)
	send(t, a, transport.Addr{Group: g}, datagram(r, m, 1, 0, 0))
	if _, idx := nextMarked(t, rb, m, "the multicast before LeaveGroup", nil); idx != 1 {
		t.Fatalf("got index %d, want 1", idx)
	}
	if err := b.LeaveGroup(g); err != nil {
		t.Fatalf("LeaveGroup: %v", err)
	}
	send(t, a, transport.Addr{Group: g}, datagram(r, m, 2, 0, 0))
	send(t, a, transport.Addr{Port: b.LocalPort()}, datagram(r, m, 3, 0, 0))
	if _, idx := nextMarked(t, rb, m, "the unicast after LeaveGroup", nil); idx != 3 {
		t.Fatalf("got index %d after LeaveGroup, want the unicast 3", idx)
	}
}

func (s *suite) overrun(t *testing.T) {
	r := s.rng(t)
	g := evenGroup(r)
	a := s.open(t, 0)
	// The smallest queue the kernel allows (SOCK_MIN_RCVBUF): a few
	// datagrams.
	mb := s.open(t, 1)
	join(t, mb, g)
	m := newMarker(r)
	const burst = 64
	for i := range burst {
		// Multicast never fails for a full member: the member loses it.
		send(t, a, transport.Addr{Group: g}, datagram(r, m, uint32(i), 40, 0))
	}
	ch := reader(t, mb)
	first := next(t, ch, "the overrun report")
	if first.err != nil {
		t.Fatalf("first Receive after the burst: %v", first.err)
	}
	if !first.p.Overrun {
		t.Fatalf("first Receive after overflowing the queue returned a datagram (%d bytes, From=%d), want an overrun report first", len(first.p.Data), first.p.From)
	}

	// Drain: the queued part of the burst, in order, with no second report
	// while the socket is congested; then new traffic flows again. Phase-2
	// multicasts sent before the queue is drained are dropped silently.
	const phase2 = 1 << 20
	overruns, foreign, seen := 1, 0, 0
	last := -1
	got2 := make(chan struct{})
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		for i := uint32(phase2); ; i++ {
			if err := a.Send(transport.Addr{Group: g}, datagram(r, m, i, 0, 0)); err != nil {
				errc <- err
				return
			}
			select {
			case <-got2:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	deadline := time.After(waitTimeout)
	for {
		var x rx
		select {
		case x = <-ch:
		case err := <-errc:
			t.Fatalf("phase-2 multicast: %v", err)
		case <-deadline:
			t.Fatalf("no multicast arrived within %v after the overrun report (%d queued datagrams drained): congestion never cleared", waitTimeout, seen)
		}
		if x.err != nil {
			t.Fatalf("Receive: %v", x.err)
		}
		if x.p.Overrun {
			overruns++
			continue
		}
		idx, ok := parse(x.p, m)
		if !ok {
			foreign++
			continue
		}
		if idx >= phase2 {
			break
		}
		if int(idx) <= last {
			t.Errorf("burst datagram %d after %d: out of order", idx, last)
		}
		last = int(idx)
		seen++
	}
	close(got2)
	<-done
	if foreign > 0 {
		// Another process multicast on the same group meanwhile: its
		// datagrams took queue space and may have caused more overruns.
		t.Logf("%d foreign datagrams on group %d: %d overrun reports, %d of %d burst datagrams queued", foreign, g, overruns, seen, burst)
		return
	}
	if seen == 0 || seen >= burst {
		t.Errorf("%d of the %d burst datagrams were queued; want some but not all", seen, burst)
	}
	if overruns != 1 {
		t.Errorf("%d overrun reports before the queue drained, want exactly 1", overruns)
	}
}

func (s *suite) peerBusy(t *testing.T) {
	r := s.rng(t)
	a, b := s.open(t, 0), s.open(t, 1)
	m := newMarker(r)
	dst := transport.Addr{Port: b.LocalPort()}
	var msgs [][]byte
	busy := make(chan error, 1)
	go func() {
		for i := range 10000 {
			d := datagram(r, m, uint32(i), 40, 0)
			if err := a.Send(dst, d); err != nil {
				busy <- err
				return
			}
			msgs = append(msgs, d)
		}
		busy <- errors.New("10000 datagrams queued to a peer that never reads, with the smallest queue")
	}()
	var err error
	select {
	case err = <-busy:
	case <-time.After(waitTimeout):
		t.Fatalf("Send blocked for %v on a full peer: it must fail with ErrPeerBusy at once", waitTimeout)
	}
	var oe *transport.OpError
	if !errors.Is(err, transport.ErrPeerBusy) || !errors.As(err, &oe) {
		t.Fatalf("unicast into a full queue: %v (%T), want an *OpError matching ErrPeerBusy", err, err)
	}
	k := len(msgs)
	t.Logf("%d datagrams fit before ErrPeerBusy", k)
	// Still busy: nothing drained, and the refused datagram was not queued.
	again := datagram(r, m, uint32(k), 40, 0)
	if err := a.Send(dst, again); !errors.Is(err, transport.ErrPeerBusy) {
		t.Fatalf("second send into the full queue: %v, want ErrPeerBusy", err)
	}
	ch := reader(t, b)
	for i, want := range msgs {
		p, idx := nextMarked(t, ch, m, fmt.Sprintf("queued datagram %d", i), nil)
		if idx != uint32(i) || !bytes.Equal(p.Data, want) {
			t.Fatalf("got datagram %d, want %d byte-exact", idx, i)
		}
	}
	// Drained: the same datagram goes through now, exactly once.
	if err := sendRetry(a, dst, again, time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("send after the peer drained: %v", err)
	}
	send(t, a, dst, datagram(r, m, uint32(k+1), 0, 0))
	for _, want := range []uint32{uint32(k), uint32(k + 1)} {
		if _, idx := nextMarked(t, ch, m, "datagrams after draining", nil); idx != want {
			t.Fatalf("got datagram %d after draining, want %d: a refused send was queued", idx, want)
		}
	}
}

func (s *suite) peerGone(t *testing.T) {
	r := s.rng(t)
	g := evenGroup(r)
	a, b, c := s.open(t, 0), s.open(t, 0), s.open(t, 0)
	join(t, c, g)
	rc := reader(t, c)
	port := b.LocalPort()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	m := newMarker(r)
	err := a.Send(transport.Addr{Port: port}, datagram(r, m, 1, 0, 0))
	var oe *transport.OpError
	if !errors.Is(err, transport.ErrPeerGone) || !errors.As(err, &oe) {
		t.Fatalf("unicast to the closed port %d: %v, want an *OpError matching ErrPeerGone", port, err)
	}
	// Group and gone port: the multicast is delivered, then the unicast
	// part fails.
	err = a.Send(transport.Addr{Port: port, Group: g}, datagram(r, m, 2, 0, 0))
	if !errors.Is(err, transport.ErrPeerGone) {
		t.Errorf("group+closed port: %v, want ErrPeerGone", err)
	}
	if p, idx := nextMarked(t, rc, m, "the multicast part of a send to a gone port", nil); idx != 2 || p.Group != g {
		t.Errorf("member got index %d Group %d, want 2 Group %d", idx, p.Group, g)
	}
}

func (s *suite) senderPort(t *testing.T) {
	r := s.rng(t)
	a, b, c := s.open(t, 0), s.open(t, 0), s.open(t, 0)
	rc := reader(t, c)
	m := newMarker(r)
	// nlmsg_pid is whatever the sender writes: claim to be b, the kernel,
	// and a random port.
	spoofs := []uint32{b.LocalPort(), 0, r.Uint32()}
	for i, pid := range spoofs {
		send(t, a, transport.Addr{Port: c.LocalPort()}, datagram(r, m, uint32(i), 0, pid))
	}
	send(t, b, transport.Addr{Port: c.LocalPort()}, datagram(r, m, 3, 0, a.LocalPort()))
	for i, pid := range append(spoofs, a.LocalPort()) {
		p, idx := nextMarked(t, rc, m, "spoofed datagrams", nil)
		want := a.LocalPort()
		if i == 3 {
			want = b.LocalPort()
		}
		if idx != uint32(i) || p.From != want {
			t.Errorf("datagram %d (nlmsg_pid %d): From=%d, want %d from the transport", idx, pid, p.From, want)
		}
		fs, err := transport.DecodeFrames(nil, p.Data)
		if err != nil || len(fs) != 1 || fs[0].NlPID != pid {
			t.Errorf("datagram %d: frames %+v, %v; want nlmsg_pid %d delivered as written", idx, fs, err, pid)
		}
	}
}

func (s *suite) credentials(t *testing.T) {
	r := s.rng(t)
	a, b, c := s.open(t, 0), s.open(t, 0), s.open(t, 0)
	rc := reader(t, c)
	m := newMarker(r)
	send(t, a, transport.Addr{Port: c.LocalPort()}, datagram(r, m, 0, 0, 0))
	send(t, a, transport.Addr{Port: c.LocalPort()}, datagram(r, m, 1, 0, 0))
	send(t, b, transport.Addr{Port: c.LocalPort()}, datagram(r, m, 2, 0, 0))
	var creds [3]transport.Creds
	for i := range creds {
		p, idx := nextMarked(t, rc, m, "datagrams with credentials", nil)
		if idx != uint32(i) {
			t.Fatalf("got datagram %d, want %d", idx, i)
		}
		creds[i] = p.Creds
	}
	if s.h.RealCreds() {
		want := transport.Creds{PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Valid: true}
		for i, cr := range creds {
			if cr != want {
				t.Errorf("datagram %d: Creds %+v, want this process's %+v", i, cr, want)
			}
		}
		return
	}
	if creds[0] != creds[1] {
		t.Errorf("two datagrams from one sender carry different credentials: %+v, %+v", creds[0], creds[1])
	}
	if creds[2].Valid && creds[2].PID == 0 {
		t.Errorf("datagram from a user port carries the kernel's credentials %+v", creds[2])
	}
}

func (s *suite) close(t *testing.T) {
	r := s.rng(t)
	a, b := s.open(t, 0), s.open(t, 0)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Receive(make([]byte, 64))
		errc <- err
	}()
	// Let Receive block (a failure to block is caught below as a result
	// that is not ErrClosed).
	time.Sleep(20 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("pending Receive after Close: %v, want ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Close did not unblock a pending Receive within %v", waitTimeout)
	}
	if err := a.Close(); err != nil && !errors.Is(err, transport.ErrClosed) {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := a.Receive(make([]byte, 64)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Receive after Close: %v, want ErrClosed", err)
	}
	m := newMarker(r)
	if err := a.Send(transport.Addr{Port: b.LocalPort()}, datagram(r, m, 0, 0, 0)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	if err := a.JoinGroup(evenGroup(r)); err == nil {
		t.Errorf("JoinGroup after Close succeeded")
	}
}

func (s *suite) manyFrames(t *testing.T) {
	r := s.rng(t)
	a, b := s.open(t, 0), s.open(t, 0)
	rb := reader(t, b)
	m := newMarker(r)
	// The first frame carries the marker; 199 more of random sizes follow
	// in the same datagram, each with its own header values.
	want := []transport.Frame{{NlType: transport.NlmsgDone, ID: testID, Payload: append(m[:], 0, 0, 0, 0)}}
	for i := 1; i < 200; i++ {
		p := make([]byte, r.IntN(300))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		want = append(want, transport.Frame{
			NlType: transport.NlmsgDone, NlFlags: uint16(r.Uint32()), NlSeq: r.Uint32(), NlPID: r.Uint32(),
			ID: transport.CbID{Idx: r.Uint32(), Val: r.Uint32()}, Seq: r.Uint32(), Ack: r.Uint32(),
			Flags: uint16(r.Uint32()), Payload: p,
		})
	}
	var dgram []byte
	for i := range want {
		var err error
		if dgram, err = transport.AppendFrame(dgram, &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	send(t, a, transport.Addr{Port: b.LocalPort()}, dgram)
	p, _ := nextMarked(t, rb, m, "the many-frame datagram", nil)
	sc := transport.NewScanner(p.Data)
	n := 0
	for ; sc.Next(); n++ {
		f := sc.Frame()
		if n >= len(want) {
			break
		}
		w := want[n]
		if f.NlType != w.NlType || f.NlFlags != w.NlFlags || f.NlSeq != w.NlSeq || f.NlPID != w.NlPID ||
			f.ID != w.ID || f.Seq != w.Seq || f.Ack != w.Ack || f.Flags != w.Flags || !bytes.Equal(f.Payload, w.Payload) {
			t.Fatalf("frame %d decoded as %+v, want %+v", n, *f, w)
		}
	}
	if err := sc.Err(); err != nil || n != len(want) {
		t.Fatalf("decoded %d of %d frames, error %v", n, len(want), err)
	}
}

func (s *suite) truncated(t *testing.T) {
	r := s.rng(t)
	a, b := s.open(t, 0), s.open(t, 0)
	m := newMarker(r)
	long := datagram(r, m, 0, 300, 0)
	short := datagram(r, m, 1, 0, 0)
	send(t, a, transport.Addr{Port: b.LocalPort()}, long)
	send(t, a, transport.Addr{Port: b.LocalPort()}, short)
	buf := make([]byte, 100)
	p, err := receiveOnce(t, b, buf)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if !p.Truncated || !bytes.Equal(p.Data, long[:len(buf)]) || p.From != a.LocalPort() {
		t.Fatalf("Receive of %d bytes into %d: Truncated=%v, %d bytes, From=%d; want Truncated with the first %d bytes from %d",
			len(long), len(buf), p.Truncated, len(p.Data), p.From, len(buf), a.LocalPort())
	}
	// The rest of a truncated datagram is gone, as with recvmsg.
	p, err = receiveOnce(t, b, make([]byte, 1000))
	if err != nil || p.Truncated || !bytes.Equal(p.Data, short) {
		t.Fatalf("Receive after a truncated datagram: %v, Truncated=%v, %d bytes; want the next datagram whole", err, p.Truncated, len(p.Data))
	}
}

func (s *suite) groupRange(t *testing.T) {
	a := s.open(t, 0)
	for _, g := range []uint32{0, 33} {
		if err := a.JoinGroup(g); err == nil {
			t.Errorf("JoinGroup(%d) succeeded; groups are 1..32", g)
		}
		if err := a.LeaveGroup(g); err == nil {
			t.Errorf("LeaveGroup(%d) succeeded; groups are 1..32", g)
		}
	}
	if err := a.Send(transport.Addr{Group: 33}, make([]byte, transport.FrameHeaderLen)); err == nil {
		t.Errorf("Send to group 33 succeeded; groups are 1..32")
	}
}
