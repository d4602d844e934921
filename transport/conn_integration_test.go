//go:build linux

package transport_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// These tests open real NETLINK_CONNECTOR sockets. Test binaries of other
// packages run in parallel on the same kernel, so every socket binds a
// kernel-assigned port, multicast tests use a random even group and a
// random cb_id marker, and foreign datagrams on a group are skipped.

// seeded runs f in a subtest named after its seed, so that a failure can
// be replayed with CNLINK_SEED=<seed>.
func seeded(t *testing.T, f func(t *testing.T, rng *rand.Rand)) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CNLINK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CNLINK_SEED: %v", err)
		}
		seed = v
	}
	t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		f(t, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
	})
}

// evenGroup picks a random even group: unprivileged processes can join
// odd groups (the cn_bind quirk), so even ones are the least shared.
func evenGroup(rng *rand.Rand) uint32 { return 2 * (1 + rng.Uint32N(16)) }

// markerID is a random cb_id no kernel module registers (ids 1..10 are
// the kernel's), marking one test's frames among foreign traffic.
func markerID(rng *rand.Rand) transport.CbID {
	return transport.CbID{Idx: 0x10000 + rng.Uint32N(1<<30), Val: rng.Uint32()}
}

func openConn(t *testing.T, cfg transport.Config) *transport.Conn {
	t.Helper()
	c, err := transport.Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func frame(t testing.TB, id transport.CbID, seq uint32, payload []byte) []byte {
	t.Helper()
	b, err := transport.AppendFrame(nil, &transport.Frame{NlType: transport.NlmsgDone, ID: id, Seq: seq, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstFrame(t testing.TB, p transport.Packet) transport.Frame {
	t.Helper()
	s := transport.NewScanner(p.Data)
	if !s.Next() {
		t.Fatalf("datagram from port %d holds no frame: %v", p.From, s.Err())
	}
	return *s.Frame()
}

// receiver runs Receive on its own goroutine and hands over owned copies
// of what arrives. Cleanup closes the Conn and waits for the goroutine.
type receiver struct {
	ch   chan transport.Packet
	done chan struct{}
	err  error // Receive's terminating error, readable after done
}

func startReceiver(t *testing.T, c *transport.Conn, bufSize int) *receiver {
	t.Helper()
	r := &receiver{ch: make(chan transport.Packet, 4096), done: make(chan struct{})}
	stop := make(chan struct{})
	go func() {
		defer close(r.done)
		buf := make([]byte, bufSize)
		for {
			p, err := c.Receive(buf)
			if err != nil {
				r.err = err
				return
			}
			p.Data = bytes.Clone(p.Data)
			select {
			case r.ch <- p:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		c.Close()
		<-r.done
	})
	return r
}

// next returns the next packet accepted by keep (nil keeps all), failing
// the test after d.
func (r *receiver) next(t *testing.T, d time.Duration, keep func(transport.Packet) bool) transport.Packet {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case p := <-r.ch:
			if keep == nil || keep(p) {
				return p
			}
		case <-r.done:
			t.Fatalf("receiver stopped: %v", r.err)
		case <-deadline:
			t.Fatalf("nothing received within %v", d)
		}
	}
}

// ours keeps packets that are overrun reports or whose first frame
// carries id: foreign traffic on a shared group is skipped.
func ours(t *testing.T, id transport.CbID) func(transport.Packet) bool {
	return func(p transport.Packet) bool {
		if p.Overrun {
			return true
		}
		s := transport.NewScanner(p.Data)
		return s.Next() && s.Frame().ID == id
	}
}

// sendRetry sends, retrying ErrPeerBusy after a short sleep: the kernel
// never signals the sender when the peer drains.
func sendRetry(t *testing.T, c *transport.Conn, dst transport.Addr, b []byte) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := c.Send(dst, b)
		if err == nil {
			return
		}
		if !errors.Is(err, transport.ErrPeerBusy) || time.Now().After(deadline) {
			t.Fatalf("Send to %+v: %v", dst, err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// ExampleOpen sends one connector message between two sockets of this
// process. Sending to a user port needs CAP_NET_ADMIN, so the example has
// no output to check.
func ExampleOpen() {
	rx, err := transport.Open(transport.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	tx, err := transport.Open(transport.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()

	msg, err := transport.AppendFrame(nil, &transport.Frame{
		NlType:  transport.NlmsgDone,
		ID:      transport.CbID{Idx: 0x10000, Val: 1},
		Seq:     1,
		Payload: []byte("hello"),
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		err := tx.Send(transport.Addr{Port: rx.LocalPort()}, msg)
		if errors.Is(err, transport.ErrPeerBusy) {
			// The kernel never tells a sender that the peer drained:
			// retry on a timer.
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		break
	}

	buf := make([]byte, 64<<10)
	for {
		p, err := rx.Receive(buf)
		if err != nil {
			log.Fatal(err)
		}
		if p.Overrun {
			continue // multicast was lost; a unicast-only socket never sees this
		}
		for sc := transport.NewScanner(p.Data); sc.Next(); {
			fmt.Printf("port %d (pid %d) says %q\n", p.From, p.Creds.PID, sc.Frame().Payload)
		}
		return
	}
}

func TestOpenValidation(t *testing.T) {
	for _, cfg := range []transport.Config{
		{Groups: []uint32{0}},
		{Groups: []uint32{2, 33}},
		{ReadBuffer: -1},
		{WriteBuffer: -1},
		{Peer: 7},
	} {
		if c, err := transport.Open(cfg); err == nil {
			c.Close()
			t.Errorf("Open(%+v) succeeded, want a validation error", cfg)
		}
	}
}

func TestIntegrationUnicastInOrder(t *testing.T) {
	testenv.RequireNetAdmin(t)
	seeded(t, func(t *testing.T, rng *rand.Rand) {
		a := openConn(t, transport.Config{})
		b := openConn(t, transport.Config{})
		if a.LocalPort() == 0 || a.LocalPort() == b.LocalPort() {
			t.Fatalf("ports %d and %d: want two distinct nonzero ports", a.LocalPort(), b.LocalPort())
		}
		r := startReceiver(t, b, 1<<16)
		id := markerID(rng)
		const n = 500
		want := make([][]byte, n)
		var bytesSent uint64
		for i := range want {
			p := make([]byte, rng.IntN(2048))
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			want[i] = frame(t, id, uint32(i), p)
			bytesSent += uint64(len(want[i]))
		}
		var sendErr error
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			// Sending concurrently with receiving exercises backpressure
			// (ErrPeerBusy) as well as ordering.
			for i, d := range want {
				for {
					err := a.Send(transport.Addr{Port: b.LocalPort()}, d)
					if err == nil {
						break
					}
					if !errors.Is(err, transport.ErrPeerBusy) {
						sendErr = fmt.Errorf("datagram %d: %w", i, err)
						return
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
		}()
		// On failure, closing a ends the sender (its Send fails).
		t.Cleanup(func() { a.Close(); <-sent })
		for i := range want {
			p := r.next(t, 10*time.Second, nil)
			if !bytes.Equal(p.Data, want[i]) {
				t.Fatalf("datagram %d: got %d bytes (seq %d), want %d bytes", i, len(p.Data), firstFrame(t, p).Seq, len(want[i]))
			}
			if p.From != a.LocalPort() || p.Group != 0 || p.Overrun || p.Truncated {
				t.Fatalf("datagram %d: From=%d Group=%d Overrun=%v Truncated=%v, want From=%d Group=0",
					i, p.From, p.Group, p.Overrun, p.Truncated, a.LocalPort())
			}
			want := transport.Creds{PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Valid: true}
			if p.Creds != want {
				t.Fatalf("datagram %d: Creds=%+v, want %+v", i, p.Creds, want)
			}
		}
		// The sender counts a datagram after sendto returns, which may be
		// after the receiver has it: wait for the sender first.
		<-sent
		if sendErr != nil {
			t.Fatal(sendErr)
		}
		sa, sb := a.Stats(), b.Stats()
		if sa.DatagramsSent != n || sa.BytesSent != bytesSent {
			t.Errorf("sender stats %+v: want %d datagrams, %d bytes", sa, n, bytesSent)
		}
		if sb.DatagramsReceived != n || sb.BytesReceived != bytesSent {
			t.Errorf("receiver stats %+v: want %d datagrams, %d bytes", sb, n, bytesSent)
		}
	})
}

func TestIntegrationNoCredentials(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a := openConn(t, transport.Config{})
	b := openConn(t, transport.Config{NoCredentials: true})
	r := startReceiver(t, b, 4096)
	sendRetry(t, a, transport.Addr{Port: b.LocalPort()}, frame(t, transport.CbID{Idx: 0x10001}, 1, nil))
	if p := r.next(t, 5*time.Second, nil); p.Creds.Valid {
		t.Fatalf("Creds=%+v with NoCredentials, want none", p.Creds)
	}
}

func TestIntegrationBindPort(t *testing.T) {
	testenv.RequireNetAdmin(t)
	seeded(t, func(t *testing.T, rng *rand.Rand) {
		// Kernel-assigned ports are the pid or count down from -4096, so a
		// random port in the middle of the range is free unless another
		// test picked the same one; retry a few to absorb that.
		var a *transport.Conn
		var port uint32
		for range 5 {
			port = 0x10000000 + rng.Uint32N(0x60000000)
			c, err := transport.Open(transport.Config{Port: port})
			if err == nil {
				a = c
				break
			}
		}
		if a == nil {
			t.Fatal("could not bind any of 5 random ports")
		}
		t.Cleanup(func() { a.Close() })
		if a.LocalPort() != port {
			t.Fatalf("LocalPort=%d, want %d", a.LocalPort(), port)
		}
		_, err := transport.Open(transport.Config{Port: port})
		if !errors.Is(err, unix.EADDRINUSE) {
			t.Fatalf("second Open on port %d: %v, want EADDRINUSE", port, err)
		}
	})
}

func TestIntegrationMulticast(t *testing.T) {
	testenv.RequireNetAdmin(t)
	seeded(t, func(t *testing.T, rng *rand.Rand) {
		g := evenGroup(rng)
		id := markerID(rng)
		s := openConn(t, transport.Config{Groups: []uint32{g}})
		m1 := openConn(t, transport.Config{Groups: []uint32{g}})
		m2 := openConn(t, transport.Config{})
		if err := m2.JoinGroup(g); err != nil {
			t.Fatal(err)
		}
		rs := startReceiver(t, s, 4096)
		r1 := startReceiver(t, m1, 4096)
		r2 := startReceiver(t, m2, 4096)

		// To the group only (port 0: the kernel also gets a copy and
		// drops it, since nobody registered id).
		sendRetry(t, s, transport.Addr{Group: g}, frame(t, id, 1, []byte("all")))
		for i, r := range []*receiver{r1, r2} {
			p := r.next(t, 5*time.Second, ours(t, id))
			if f := firstFrame(t, p); p.From != s.LocalPort() || p.Group != g || f.Seq != 1 {
				t.Fatalf("member %d got From=%d Group=%d seq=%d, want From=%d Group=%d seq=1", i+1, p.From, p.Group, f.Seq, s.LocalPort(), g)
			}
		}

		// Group plus port: the port's socket gets exactly one copy (the
		// kernel leaves it out of the broadcast), still stamped with the
		// group.
		sendRetry(t, s, transport.Addr{Group: g, Port: m1.LocalPort()}, frame(t, id, 2, []byte("both")))
		// A fence: unicast queues behind the multicast from the same
		// sender, so anything not seen before it was not delivered.
		sendRetry(t, s, transport.Addr{Port: m1.LocalPort()}, frame(t, id, 3, nil))
		for _, wantSeq := range []uint32{2, 3} {
			p := r1.next(t, 5*time.Second, ours(t, id))
			if f := firstFrame(t, p); f.Seq != wantSeq {
				t.Fatalf("member 1 got seq %d, want %d (a duplicate?)", f.Seq, wantSeq)
			}
		}
		if p := r2.next(t, 5*time.Second, ours(t, id)); firstFrame(t, p).Seq != 2 {
			t.Fatalf("member 2 got seq %d, want 2", firstFrame(t, p).Seq)
		}

		// The sender is a member, yet never receives its own multicasts:
		// the fence from m1 must be the first of our frames it sees.
		sendRetry(t, m1, transport.Addr{Port: s.LocalPort()}, frame(t, id, 4, nil))
		if p := rs.next(t, 5*time.Second, ours(t, id)); firstFrame(t, p).Seq != 4 || p.From != m1.LocalPort() {
			t.Fatalf("sender got seq %d from %d first, want the fence (seq 4 from %d): it saw its own multicast", firstFrame(t, p).Seq, p.From, m1.LocalPort())
		}

		// After LeaveGroup nothing more arrives from the group.
		if err := m2.LeaveGroup(g); err != nil {
			t.Fatal(err)
		}
		sendRetry(t, s, transport.Addr{Group: g}, frame(t, id, 5, nil))
		sendRetry(t, s, transport.Addr{Port: m2.LocalPort()}, frame(t, id, 6, nil))
		if p := r2.next(t, 5*time.Second, ours(t, id)); firstFrame(t, p).Seq != 6 {
			t.Fatalf("after LeaveGroup member 2 got seq %d, want only the fence (seq 6)", firstFrame(t, p).Seq)
		}
	})
}

func TestIntegrationGroupRange(t *testing.T) {
	testenv.RequireNetAdmin(t)
	c := openConn(t, transport.Config{})
	for _, g := range []uint32{0, 33} {
		if err := c.JoinGroup(g); !errors.Is(err, unix.EINVAL) {
			t.Errorf("JoinGroup(%d): %v, want EINVAL", g, err)
		}
	}
	if err := c.Send(transport.Addr{Group: 33}, frame(t, transport.CbID{Idx: 0x10001}, 0, nil)); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Send to group 33: %v, want EINVAL", err)
	}
}

// TestIntegrationOverrun checks docs/PLATFORM.md §3: a member whose queue overflows
// gets one ENOBUFS report, the kernel drops multicast for it until its
// queue has been drained empty, and then delivery resumes.
func TestIntegrationOverrun(t *testing.T) {
	testenv.RequireNetAdmin(t)
	seeded(t, func(t *testing.T, rng *rand.Rand) {
		g := evenGroup(rng)
		id := markerID(rng)
		s := openConn(t, transport.Config{})
		// ReadBuffer 1 is clamped to the kernel minimum (a few KiB):
		// a handful of 1 KiB datagrams fill it.
		m := openConn(t, transport.Config{Groups: []uint32{g}, ReadBuffer: 1})
		const burst = 200
		payload := make([]byte, 1024)
		for i := range burst {
			// Multicast never blocks or fails on a full member: the
			// kernel drops silently and flags the member.
			if err := s.Send(transport.Addr{Group: g}, frame(t, id, uint32(i), payload)); err != nil {
				t.Fatalf("multicast %d: %v", i, err)
			}
		}

		// Probes repeat until the member has drained and sees one; they
		// are dropped while the socket is congested.
		stop := make(chan struct{})
		probes := make(chan error, 1)
		go func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for i := uint32(0); ; i++ {
				select {
				case <-stop:
					probes <- nil
					return
				case <-tick.C:
					if err := s.Send(transport.Addr{Group: g}, frame(t, id, 1_000_000+i, nil)); err != nil {
						probes <- err
						return
					}
				}
			}
		}()
		defer func() {
			close(stop)
			if err := <-probes; err != nil {
				t.Errorf("probe: %v", err)
			}
		}()

		r := startReceiver(t, m, 4096)
		overruns, got, last := 0, 0, -1
		for {
			p := r.next(t, 10*time.Second, ours(t, id))
			if p.Overrun {
				overruns++
				continue
			}
			seq := int(firstFrame(t, p).Seq)
			if seq >= 1_000_000 {
				break
			}
			if seq <= last {
				t.Fatalf("burst seq %d after %d: out of order", seq, last)
			}
			last = seq
			got++
		}
		if overruns != 1 {
			t.Errorf("%d overrun reports, want exactly 1", overruns)
		}
		if got == 0 || got >= burst {
			t.Errorf("received %d of %d burst datagrams, want some but not all", got, burst)
		}
		if st := m.Stats(); st.Overruns != uint64(overruns) {
			t.Errorf("Stats().Overruns=%d, want %d", st.Overruns, overruns)
		}
		// Recovered: further multicasts keep arriving.
		for range 3 {
			if p := r.next(t, 5*time.Second, ours(t, id)); p.Overrun {
				t.Fatal("another overrun while reading promptly")
			}
		}
		t.Logf("burst of %d: %d delivered before the overrun report took effect", burst, got)
	})
}

// TestIntegrationPeerBusy checks docs/PLATFORM.md §2: a unicast to a full queue
// fails at once with ErrPeerBusy instead of waiting for a wakeup the
// kernel never sends, and succeeds again once the peer drains.
func TestIntegrationPeerBusy(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a := openConn(t, transport.Config{})
	b := openConn(t, transport.Config{ReadBuffer: 1})
	dst := transport.Addr{Port: b.LocalPort()}
	id := transport.CbID{Idx: 0x10002}
	payload := make([]byte, 1024)

	start := time.Now()
	sent := 0
	var err error
	for ; sent < 10_000; sent++ {
		if err = a.Send(dst, frame(t, id, uint32(sent), payload)); err != nil {
			break
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("filling the peer took %v: Send waited", took)
	}
	if !errors.Is(err, transport.ErrPeerBusy) || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("after %d sends: %v, want ErrPeerBusy wrapping EAGAIN", sent, err)
	}
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Addr != dst || oe.Op != "send" {
		t.Fatalf("error %#v: want *OpError for send to %+v", err, dst)
	}
	// Still busy on a second try, and still prompt.
	t0 := time.Now()
	if err := a.Send(dst, frame(t, id, uint32(sent), payload)); !errors.Is(err, transport.ErrPeerBusy) {
		t.Fatalf("second send to a full peer: %v", err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Fatalf("busy Send took %v", took)
	}
	if st := a.Stats(); st.PeerBusy != 2 || st.DatagramsSent != uint64(sent) {
		t.Fatalf("stats %+v: want PeerBusy=2 DatagramsSent=%d", st, sent)
	}

	// Drain everything, then the next send goes through.
	r := startReceiver(t, b, 4096)
	for i := range sent {
		if f := firstFrame(t, r.next(t, 5*time.Second, nil)); f.Seq != uint32(i) {
			t.Fatalf("drained seq %d, want %d", f.Seq, i)
		}
	}
	if err := a.Send(dst, frame(t, id, uint32(sent), payload)); err != nil {
		t.Fatalf("send after the peer drained: %v", err)
	}
	if f := firstFrame(t, r.next(t, 5*time.Second, nil)); f.Seq != uint32(sent) {
		t.Fatalf("got seq %d, want %d", f.Seq, sent)
	}
}

func TestIntegrationPeerGone(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a := openConn(t, transport.Config{})
	b, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dst := transport.Addr{Port: b.LocalPort()}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	err = a.Send(dst, frame(t, transport.CbID{Idx: 0x10003}, 0, nil))
	if !errors.Is(err, transport.ErrPeerGone) || !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("send to closed port %d: %v, want ErrPeerGone wrapping ECONNREFUSED", dst.Port, err)
	}
	if st := a.Stats(); st.PeerGone != 1 || st.DatagramsSent != 0 {
		t.Fatalf("stats %+v: want PeerGone=1 and nothing sent", st)
	}
}

// TestIntegrationFromIsKernelStamped: the nlmsghdr pid is whatever the
// sender wrote; Packet.From is the port the kernel saw (docs/PLATFORM.md §5).
func TestIntegrationFromIsKernelStamped(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a := openConn(t, transport.Config{})
	b := openConn(t, transport.Config{})
	r := startReceiver(t, b, 4096)
	for _, spoof := range []uint32{0, b.LocalPort(), 0xdeadbeef} {
		d, err := transport.AppendFrame(nil, &transport.Frame{NlType: transport.NlmsgDone, NlPID: spoof, ID: transport.CbID{Idx: 0x10004}, Seq: spoof})
		if err != nil {
			t.Fatal(err)
		}
		sendRetry(t, a, transport.Addr{Port: b.LocalPort()}, d)
		p := r.next(t, 5*time.Second, nil)
		if p.From != a.LocalPort() {
			t.Fatalf("spoofed NlPID %d: From=%d, want the sender's port %d", spoof, p.From, a.LocalPort())
		}
		if f := firstFrame(t, p); f.NlPID != spoof {
			t.Fatalf("the kernel rewrote NlPID %d to %d", spoof, f.NlPID)
		}
	}
}

func TestIntegrationCloseUnblocksReceive(t *testing.T) {
	testenv.RequireNetAdmin(t)
	c, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Receive(make([]byte, 4096))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Receive returned before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("pending Receive: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Receive")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checks := map[string]error{
		"Send":          c.Send(transport.Addr{}, nil),
		"JoinGroup":     c.JoinGroup(2),
		"LeaveGroup":    c.LeaveGroup(2),
		"SetReadBuffer": c.SetReadBuffer(1 << 16),
	}
	_, checks["Receive"] = c.Receive(make([]byte, 16))
	for op, err := range checks {
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
}

// TestIntegrationManyFramesPerDatagram: user-to-user datagrams carry many
// netlink messages and arrive whole (docs/PLATFORM.md §6).
func TestIntegrationManyFramesPerDatagram(t *testing.T) {
	testenv.RequireNetAdmin(t)
	seeded(t, func(t *testing.T, rng *rand.Rand) {
		a := openConn(t, transport.Config{WriteBuffer: 1 << 20})
		b := openConn(t, transport.Config{ReadBuffer: 1 << 20})
		r := startReceiver(t, b, 1<<20)
		var want []transport.Frame
		var d []byte
		for i := range 300 {
			p := make([]byte, rng.IntN(1500))
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			f := transport.Frame{NlType: transport.NlmsgDone, NlSeq: uint32(i), ID: transport.CbID{Idx: 0x10005, Val: uint32(i)}, Seq: uint32(i), Ack: rng.Uint32(), Flags: uint16(i), Payload: p}
			var err error
			if d, err = transport.AppendFrame(d, &f); err != nil {
				t.Fatal(err)
			}
			want = append(want, f)
		}
		sendRetry(t, a, transport.Addr{Port: b.LocalPort()}, d)
		p := r.next(t, 5*time.Second, nil)
		if p.Truncated || len(p.Data) != len(d) {
			t.Fatalf("got %d bytes (truncated=%v), want %d", len(p.Data), p.Truncated, len(d))
		}
		got, err := transport.DecodeFrames(nil, p.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("decoded %d frames, want %d", len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Seq != w.Seq || g.Ack != w.Ack || g.Flags != w.Flags || g.NlSeq != w.NlSeq || !bytes.Equal(g.Payload, w.Payload) {
				t.Fatalf("frame %d differs: got %+v", i, g)
			}
		}
	})
}

func TestIntegrationTruncated(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a := openConn(t, transport.Config{})
	b := openConn(t, transport.Config{})
	r := startReceiver(t, b, 100)
	d := frame(t, transport.CbID{Idx: 0x10006}, 9, bytes.Repeat([]byte{0xab}, 200))
	sendRetry(t, a, transport.Addr{Port: b.LocalPort()}, d)
	p := r.next(t, 5*time.Second, nil)
	if !p.Truncated || !bytes.Equal(p.Data, d[:100]) {
		t.Fatalf("Truncated=%v len=%d, want the first 100 of %d bytes, truncated", p.Truncated, len(p.Data), len(d))
	}
	// The rest of the datagram is gone; the next one is whole.
	sendRetry(t, a, transport.Addr{Port: b.LocalPort()}, d[:40])
	if p := r.next(t, 5*time.Second, nil); p.Truncated || len(p.Data) != 40 {
		t.Fatalf("next datagram: Truncated=%v len=%d, want 40 whole bytes", p.Truncated, len(p.Data))
	}
	if st := b.Stats(); st.Truncated != 1 {
		t.Fatalf("Stats().Truncated=%d, want 1", st.Truncated)
	}
}

func TestIntegrationTooLarge(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a := openConn(t, transport.Config{WriteBuffer: 4096})
	b := openConn(t, transport.Config{})
	wb, err := a.WriteBuffer()
	if err != nil {
		t.Fatal(err)
	}
	err = a.Send(transport.Addr{Port: b.LocalPort()}, make([]byte, wb))
	if !errors.Is(err, transport.ErrTooLarge) || !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("send of %d bytes with SO_SNDBUF %d: %v, want ErrTooLarge wrapping EMSGSIZE", wb, wb, err)
	}
}

func TestIntegrationBuffers(t *testing.T) {
	testenv.RequireNetAdmin(t)
	// Above net.core.rmem_max (4 MiB here): only SO_RCVBUFFORCE gets it.
	const big = 8 << 20
	c := openConn(t, transport.Config{ReadBuffer: 1 << 16, WriteBuffer: 1 << 16})
	if n, err := c.ReadBuffer(); err != nil || n != 2<<16 {
		t.Fatalf("ReadBuffer()=%d, %v; want %d (the kernel doubles)", n, err, 2<<16)
	}
	if n, err := c.WriteBuffer(); err != nil || n != 2<<16 {
		t.Fatalf("WriteBuffer()=%d, %v; want %d", n, err, 2<<16)
	}
	if err := c.SetReadBuffer(big); err != nil {
		t.Fatal(err)
	}
	if n, err := c.ReadBuffer(); err != nil || n != 2*big {
		t.Fatalf("after SetReadBuffer(%d): ReadBuffer()=%d, %v; want %d", big, n, err, 2*big)
	}
}

// TestIntegrationConnectPinning: a connected socket takes unicasts only
// from its peer; others get ErrPeerGone. Multicast is not filtered.
func TestIntegrationConnectPinning(t *testing.T) {
	testenv.RequireNetAdmin(t)
	seeded(t, func(t *testing.T, rng *rand.Rand) {
		g := evenGroup(rng)
		id := markerID(rng)
		peer := openConn(t, transport.Config{})
		other := openConn(t, transport.Config{})
		pinned := openConn(t, transport.Config{Connect: true, Peer: peer.LocalPort(), Groups: []uint32{g}})
		r := startReceiver(t, pinned, 4096)
		dst := transport.Addr{Port: pinned.LocalPort()}

		if err := other.Send(dst, frame(t, id, 1, nil)); !errors.Is(err, transport.ErrPeerGone) {
			t.Fatalf("unicast from a stranger: %v, want ErrPeerGone", err)
		}
		sendRetry(t, other, transport.Addr{Group: g}, frame(t, id, 2, nil))
		sendRetry(t, peer, dst, frame(t, id, 3, nil))
		for _, want := range []struct {
			seq, from, group uint32
		}{{2, other.LocalPort(), g}, {3, peer.LocalPort(), 0}} {
			p := r.next(t, 5*time.Second, ours(t, id))
			if f := firstFrame(t, p); f.Seq != want.seq || p.From != want.from || p.Group != want.group {
				t.Fatalf("got seq %d from %d group %d, want seq %d from %d group %d", f.Seq, p.From, p.Group, want.seq, want.from, want.group)
			}
		}
		// Connect pins receiving only: the pinned socket may still send
		// anywhere.
		ro := startReceiver(t, other, 4096)
		sendRetry(t, pinned, transport.Addr{Port: other.LocalPort()}, frame(t, id, 4, nil))
		if p := ro.next(t, 5*time.Second, ours(t, id)); p.From != pinned.LocalPort() {
			t.Fatalf("From=%d, want %d", p.From, pinned.LocalPort())
		}
	})
}

// TestIntegrationPermission drops CAP_NET_ADMIN from the effective set of
// one locked OS thread (capabilities are per thread on Linux, and the
// kernel checks the calling thread's) and checks the EPERM mapping there.
func TestIntegrationPermission(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a := openConn(t, transport.Config{})
	b := openConn(t, transport.Config{})
	d := frame(t, transport.CbID{Idx: 0x10007}, 0, nil)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var orig [2]unix.CapUserData
		if err := unix.Capget(&hdr, &orig[0]); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("capget: %w", err)
			return
		}
		dropped := orig
		dropped[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &dropped[0]); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("capset: %w", err)
			return
		}
		err := withoutNetAdmin(a, b, d)
		// Restore the thread (the capability is still permitted) before
		// handing it back to the scheduler. Should that fail, the thread
		// stays locked and the runtime retires it with this goroutine;
		// the main thread it could only park, so other tests would then
		// see the reduced set in /proc/self/status and skip.
		if rerr := unix.Capset(&hdr, &orig[0]); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restoring capabilities: %w", rerr))
		} else {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !testenv.NetAdmin() {
		t.Fatal("CAP_NET_ADMIN still missing from the process after the test")
	}
}

func withoutNetAdmin(a, b *transport.Conn, d []byte) error {
	for _, dst := range []transport.Addr{{Port: b.LocalPort()}, {Group: 2}} {
		err := a.Send(dst, d)
		if !errors.Is(err, transport.ErrPermission) || !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("send to %+v without CAP_NET_ADMIN: %v, want ErrPermission wrapping EPERM", dst, err)
		}
	}
	// The kernel (port 0) is open to all.
	if err := a.Send(transport.Addr{}, d); err != nil {
		return fmt.Errorf("send to the kernel without CAP_NET_ADMIN: %v", err)
	}
	if err := a.JoinGroup(2); !errors.Is(err, transport.ErrPermission) {
		return fmt.Errorf("join even group 2 without CAP_NET_ADMIN: %v, want ErrPermission", err)
	}
	// The cn_bind quirk: odd groups are open to all.
	if err := a.JoinGroup(3); err != nil {
		return fmt.Errorf("join odd group 3 without CAP_NET_ADMIN: %v", err)
	}
	return a.LeaveGroup(3)
}

// cn_proc (include/uapi/linux/cn_proc.h): the one connector id every
// kernel with CONFIG_PROC_EVENTS registers.
var cnProcID = transport.CbID{Idx: 1, Val: 1}

const (
	cnIdxProc         = 1 // the group cn_proc multicasts to
	procCnMcastListen = 1 // PROC_CN_MCAST_LISTEN
	procCnMcastIgnore = 2 // PROC_CN_MCAST_IGNORE
	procEventNone     = 0 // PROC_EVENT_NONE: the answer to a request
)

// TestIntegrationProcConnector sends PROC_CN_MCAST_LISTEN and IGNORE to
// the kernel (port 0, id 1:1), proving kernel-bound sends work, and checks
// the kernel's answer: a PROC_EVENT_NONE multicast from port 0 on group 1
// whose ack is the request's ack + 1 (docs/PLATFORM.md §7).
//
// On 6.x the answer passes cn_proc's per-socket event filter, which a
// socket's own IGNORE has just switched to "drop everything", and it is not
// sent at all once no listener is left. So the IGNORE answer is watched
// for on a second socket that is still listening.
func TestIntegrationProcConnector(t *testing.T) {
	testenv.RequireNetAdmin(t)
	seeded(t, func(t *testing.T, rng *rand.Rand) {
		// Large queues: while listening, every process event on the
		// machine lands here too.
		cfg := transport.Config{Groups: []uint32{cnIdxProc}, ReadBuffer: 4 << 20}
		watcher := openConn(t, cfg)
		c := openConn(t, cfg)
		rw := startReceiver(t, watcher, 1<<16)
		rc := startReceiver(t, c, 1<<16)

		request(t, rng, watcher, procCnMcastListen, rw)
		request(t, rng, c, procCnMcastListen, rc)
		request(t, rng, c, procCnMcastIgnore, rw)
		// The last listener's IGNORE may get no answer; the send itself
		// must still succeed.
		d := procRequest(t, rng, watcher, procCnMcastIgnore, rng.Uint32())
		if err := watcher.Send(transport.Addr{}, d); err != nil {
			t.Fatalf("IGNORE to the kernel: %v", err)
		}
	})
}

func procRequest(t *testing.T, rng *rand.Rand, c *transport.Conn, op, ack uint32) []byte {
	t.Helper()
	d, err := transport.AppendFrame(nil, &transport.Frame{
		NlType: transport.NlmsgDone, NlPID: c.LocalPort(),
		ID: cnProcID, Seq: rng.Uint32(), Ack: ack,
		Payload: binary.NativeEndian.AppendUint32(nil, op),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// request sends op from c to the kernel and waits for the answer on r.
func request(t *testing.T, rng *rand.Rand, c *transport.Conn, op uint32, r *receiver) {
	t.Helper()
	// The answer is a multicast the kernel may drop under load, so retry
	// with a fresh ack.
	for try := range 5 {
		ack := rng.Uint32N(1 << 31)
		if err := c.Send(transport.Addr{}, procRequest(t, rng, c, op, ack)); err != nil {
			t.Fatalf("op %d to the kernel: %v", op, err)
		}
		deadline := time.After(2 * time.Second)
	wait:
		for {
			select {
			case p := <-r.ch:
				if p.Overrun || p.From != 0 {
					continue
				}
				f := firstFrame(t, p)
				if f.ID != cnProcID || f.Ack != ack+1 {
					continue // a process event, or someone else's answer
				}
				if p.Group != cnIdxProc {
					t.Fatalf("kernel answer on group %d, want %d", p.Group, cnIdxProc)
				}
				if len(f.Payload) < 20 {
					t.Fatalf("kernel answer payload %d bytes, want a proc_event", len(f.Payload))
				}
				what, errno := binary.NativeEndian.Uint32(f.Payload[0:]), int32(binary.NativeEndian.Uint32(f.Payload[16:]))
				if what != procEventNone || errno != 0 {
					t.Fatalf("kernel answer what=%#x err=%d, want PROC_EVENT_NONE err=0", what, errno)
				}
				return
			case <-r.done:
				t.Fatalf("receiver stopped: %v", r.err)
			case <-deadline:
				t.Logf("op %d try %d: no answer within 2s, retrying", op, try)
				break wait
			}
		}
	}
	t.Fatalf("op %d: the kernel never answered", op)
}

// TestIntegrationZeroAlloc defends the data path's budget: no allocation
// per datagram sent or received, nor per refused send to a busy peer.
func TestIntegrationZeroAlloc(t *testing.T) {
	testenv.RequireNetAdmin(t)
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	a := openConn(t, transport.Config{})
	b := openConn(t, transport.Config{ReadBuffer: 1})
	dst := transport.Addr{Port: b.LocalPort()}
	d := frame(t, transport.CbID{Idx: 0x10008}, 1, make([]byte, 256))
	buf := make([]byte, 4096)
	roundTrip := func() {
		if err := a.Send(dst, d); err != nil {
			t.Fatal(err)
		}
		// The datagram is already queued, so Receive does not park.
		if p, err := b.Receive(buf); err != nil || len(p.Data) != len(d) || !p.Creds.Valid {
			t.Fatalf("Receive: %d bytes, creds %+v, %v", len(p.Data), p.Creds, err)
		}
	}
	roundTrip() // warm up: the first Receive sets up the poller
	if n := testing.AllocsPerRun(200, roundTrip); n != 0 {
		t.Errorf("Send+Receive: %v allocations per datagram, want 0", n)
	}

	for i := 0; ; i++ {
		err := a.Send(dst, d)
		if errors.Is(err, transport.ErrPeerBusy) {
			break
		}
		if err != nil || i > 1000 {
			t.Fatalf("filling the peer: %v after %d sends", err, i)
		}
	}
	busy := func() {
		if err := a.Send(dst, d); !errors.Is(err, transport.ErrPeerBusy) || !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("Send to a full peer: %v", err)
		}
	}
	if n := testing.AllocsPerRun(200, busy); n != 0 {
		t.Errorf("refused Send plus errors.Is checks: %v allocations, want 0", n)
	}
}
