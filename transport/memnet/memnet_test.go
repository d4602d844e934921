package memnet_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

func open(t *testing.T, n *memnet.Network, port uint32) *memnet.Conn {
	t.Helper()
	c, err := n.Open(port)
	if err != nil {
		t.Fatalf("Open(%d): %v", port, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func recv(t *testing.T, c *memnet.Conn) transport.Packet {
	t.Helper()
	p, err := c.Receive(make([]byte, 1<<18))
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return p
}

func fill(n int, v byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

// TestTruesize pins the model to values measured with SO_MEMINFO on
// Linux 6.18 (rmem_alloc before and after one queued datagram).
func TestTruesize(t *testing.T) {
	for _, tc := range []struct {
		n         int
		multicast bool
		want      int
	}{
		{1, false, 832}, {64, false, 832}, {256, false, 832}, {300, false, 1280}, {704, false, 1280},
		{705, false, 2304}, {1728, false, 2304}, {1729, false, 4352}, {3776, false, 4352},
		{3777, false, 4416}, {4000, false, 4608}, {4096, false, 4672}, {5000, false, 5632},
		{8192, false, 8768}, {20000, false, 20608}, {65536, false, 66112}, {212960, false, 213568},
		{64, true, 832}, {300, true, 1280}, {1000, true, 2304}, {3000, true, 4352},
		{5000, true, 8448}, {9000, true, 16640}, {20000, true, 33024},
	} {
		if got := memnet.Truesize(tc.n, tc.multicast); got != tc.want {
			t.Errorf("Truesize(%d, multicast=%v) = %d, want %d (measured)", tc.n, tc.multicast, got, tc.want)
		}
	}
}

// TestQueueCapacity checks how many datagrams fit, which is what the
// engine's flow control meets on the kernel.
func TestQueueCapacity(t *testing.T) {
	for _, tc := range []struct {
		setRcvbuf int // 0 = leave the default
		size      int
		want      int
	}{
		{0, 64, 256},    // 212992 / 832
		{1, 64, 2},      // minimum 2304: 2*832 fits, 3*832 does not (measured)
		{4096, 1000, 3}, // 8192 / 2304
		{100000, 256, 240},
	} {
		t.Run(fmt.Sprintf("rcvbuf=%d/size=%d", tc.setRcvbuf, tc.size), func(t *testing.T) {
			n := memnet.New(memnet.Config{})
			a, b := open(t, n, 0), open(t, n, 0)
			if tc.setRcvbuf > 0 {
				if err := b.SetReadBuffer(tc.setRcvbuf); err != nil {
					t.Fatal(err)
				}
			}
			k := 0
			for ; k < 100000; k++ {
				err := a.Send(transport.Addr{Port: b.LocalPort()}, fill(tc.size, 1))
				if errors.Is(err, transport.ErrPeerBusy) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if k != tc.want {
				t.Errorf("%d datagrams fit, want %d", k, tc.want)
			}
			s := b.Stats()
			if s.Queued != k || s.QueuedBytes != k*memnet.Truesize(tc.size, false) {
				t.Errorf("Stats: %+v, want %d queued charging %d", s, k, k*memnet.Truesize(tc.size, false))
			}
			if got := a.Stats().PeerBusy; got != 1 {
				t.Errorf("sender PeerBusy = %d, want 1", got)
			}
		})
	}
}

func TestOversizeDatagramIntoEmptyQueue(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a, b := open(t, n, 0), open(t, n, 0)
	_ = b.SetReadBuffer(1)
	dst := transport.Addr{Port: b.LocalPort()}
	// Measured: an empty queue takes a datagram of any size...
	if err := a.Send(dst, fill(10000, 1)); err != nil {
		t.Fatalf("10000 bytes into an empty 2304-byte queue: %v", err)
	}
	// ...and then nothing until it is read.
	if err := a.Send(dst, fill(10, 1)); !errors.Is(err, transport.ErrPeerBusy) {
		t.Fatalf("second datagram: %v, want ErrPeerBusy", err)
	}
	if p := recv(t, b); len(p.Data) != 10000 {
		t.Fatalf("got %d bytes", len(p.Data))
	}
}

func TestSendErrors(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a := open(t, n, 0)
	for _, tc := range []struct {
		name  string
		dst   transport.Addr
		b     []byte
		kind  error
		errno syscall.Errno
	}{
		{"empty", transport.Addr{Port: a.LocalPort()}, nil, nil, syscall.ENODATA},
		{"group 33", transport.Addr{Group: 33}, []byte{1}, nil, syscall.EINVAL},
		{"too large", transport.Addr{Port: a.LocalPort()}, make([]byte, memnet.DefaultWriteBuffer-31), transport.ErrTooLarge, syscall.EMSGSIZE},
		{"no such port", transport.Addr{Port: 4242}, []byte{1}, transport.ErrPeerGone, syscall.ECONNREFUSED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Send(tc.dst, tc.b)
			var oe *transport.OpError
			if !errors.As(err, &oe) || !errors.Is(err, tc.errno) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
				t.Fatalf("Send: %v, want an *OpError with %v and %v", err, tc.kind, tc.errno)
			}
		})
	}
	// The largest datagram sk_sndbuf allows goes through.
	if err := a.Send(transport.Addr{Port: a.LocalPort()}, make([]byte, memnet.DefaultWriteBuffer-32)); err != nil {
		t.Fatalf("Send of sndbuf-32 bytes: %v", err)
	}
	if err := a.SetWriteBuffer(1000); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(transport.Addr{Port: a.LocalPort()}, make([]byte, memnet.MinWriteBuffer-31)); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("Send over a shrunk sndbuf: %v, want ErrTooLarge", err)
	}
	if w, _ := a.WriteBuffer(); w != memnet.MinWriteBuffer {
		t.Fatalf("WriteBuffer = %d, want %d", w, memnet.MinWriteBuffer)
	}
}

// TestCongestion walks NETLINK_S_CONGESTED: set by the first multicast
// loss, it refuses unicasts and drops multicasts even when there is room,
// and clears only when a Receive leaves the queue empty.
func TestCongestion(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a, b := open(t, n, 0), open(t, n, 0)
	_ = b.SetReadBuffer(1)
	_ = b.JoinGroup(4)
	msg := fill(64, 7)
	for range 10 {
		if err := a.Send(transport.Addr{Group: 4}, msg); err != nil {
			t.Fatal(err)
		}
	}
	if s := b.Stats(); s.Queued != 2 || s.Drops != 8 || !s.Congested {
		t.Fatalf("after 10 multicasts into 2 slots: %+v", s)
	}
	if err := a.Send(transport.Addr{Port: b.LocalPort()}, msg); !errors.Is(err, transport.ErrPeerBusy) {
		t.Fatalf("unicast to a congested socket: %v, want ErrPeerBusy", err)
	}
	if p := recv(t, b); !p.Overrun {
		t.Fatalf("first Receive: %+v, want the overrun report", p)
	}
	if p := recv(t, b); p.Overrun || len(p.Data) != 64 {
		t.Fatalf("second Receive: %+v, want a datagram", p)
	}
	// One slot free, still congested: both kinds of traffic are refused,
	// and no second report is armed.
	if err := a.Send(transport.Addr{Port: b.LocalPort()}, msg); !errors.Is(err, transport.ErrPeerBusy) {
		t.Fatalf("unicast to a congested socket with room: %v, want ErrPeerBusy", err)
	}
	_ = a.Send(transport.Addr{Group: 4}, msg)
	if s := b.Stats(); s.Queued != 1 || s.Drops != 9 || !s.Congested {
		t.Fatalf("multicast to a congested socket with room: %+v", s)
	}
	if p := recv(t, b); p.Overrun || len(p.Data) != 64 {
		t.Fatalf("third Receive: %+v, want the last queued datagram", p)
	}
	if s := b.Stats(); s.Congested || s.Overruns != 1 {
		t.Fatalf("after draining: %+v, want not congested, one overrun", s)
	}
	_ = a.Send(transport.Addr{Group: 4}, msg)
	if err := a.Send(transport.Addr{Port: b.LocalPort()}, msg); err != nil {
		t.Fatalf("unicast after draining: %v", err)
	}
	if p := recv(t, b); p.Overrun || p.Group != 4 {
		t.Fatalf("after draining: %+v, want the multicast", p)
	}
}

// TestKernelSenders covers Inject: port 0 is the kernel, whose unicasts
// into a full queue are lost with an overrun, and whose datagrams carry
// zero credentials; any other port is a squatter as far as the receiver
// can tell.
func TestKernelSenders(t *testing.T) {
	n := memnet.New(memnet.Config{Creds: func(p uint32) transport.Creds {
		return transport.Creds{PID: 1000 + p, UID: 7, GID: 8, Valid: true}
	}})
	b := open(t, n, 0)
	_ = b.SetReadBuffer(1)
	dst := transport.Addr{Port: b.LocalPort()}
	for i := range 2 {
		if err := n.Inject(0, dst, fill(64, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Inject(0, dst, fill(64, 9)); !errors.Is(err, transport.ErrPeerBusy) {
		t.Fatalf("kernel unicast into a full queue: %v, want ErrPeerBusy", err)
	}
	if p := recv(t, b); !p.Overrun {
		t.Fatalf("after a lost kernel unicast: %+v, want an overrun report", p)
	}
	p := recv(t, b)
	if p.From != 0 || p.Creds != (transport.Creds{Valid: true}) || p.Data[0] != 0 {
		t.Fatalf("kernel datagram: %+v, want From 0 with zero credentials", p)
	}
	recv(t, b)
	if err := n.Inject(31337, dst, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	p = recv(t, b)
	if p.From != 31337 || p.Creds.PID != 1000+31337 || p.Creds.UID != 7 {
		t.Fatalf("squatter datagram: %+v, want From 31337 with Config.Creds", p)
	}
	if got := b.Stats(); got.Drops != 1 || got.Overruns != 1 {
		t.Fatalf("Stats %+v, want one drop, one overrun", got)
	}
}

func TestPorts(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a, b := open(t, n, 0), open(t, n, 0)
	if a.LocalPort() != 1 || b.LocalPort() != 2 {
		t.Fatalf("autobind gave %d, %d; want the lowest free ports 1, 2", a.LocalPort(), b.LocalPort())
	}
	_, err := n.Open(2)
	var oe *transport.OpError
	if !errors.Is(err, syscall.EADDRINUSE) || !errors.As(err, &oe) {
		t.Fatalf("binding a taken port: %v, want an *OpError with EADDRINUSE", err)
	}
	c := open(t, n, 5000)
	if c.LocalPort() != 5000 {
		t.Fatalf("bound port %d, want 5000", c.LocalPort())
	}
	// A closed port is free at once, and autobind hands it out again: a
	// datagram for the old socket reaches the new one.
	_ = b.Close()
	if err := a.Send(transport.Addr{Port: 2}, []byte{1}); !errors.Is(err, transport.ErrPeerGone) {
		t.Fatalf("send to the closed port: %v", err)
	}
	b2 := open(t, n, 0)
	if b2.LocalPort() != 2 {
		t.Fatalf("autobind after close gave %d, want the reused port 2", b2.LocalPort())
	}
	if err := a.Send(transport.Addr{Port: 2}, []byte{1}); err != nil {
		t.Fatalf("send to the reused port: %v", err)
	}
}

func TestConnect(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a, b, c := open(t, n, 0), open(t, n, 0), open(t, n, 0)
	if err := c.Connect(a.LocalPort()); err != nil {
		t.Fatal(err)
	}
	_ = c.JoinGroup(6)
	if err := b.Send(transport.Addr{Port: c.LocalPort()}, []byte{1}); !errors.Is(err, transport.ErrPeerGone) {
		t.Fatalf("unicast from another port to a connected socket: %v, want ErrPeerGone", err)
	}
	if err := a.Send(transport.Addr{Port: c.LocalPort()}, []byte{2}); err != nil {
		t.Fatalf("unicast from the peer: %v", err)
	}
	if err := b.Send(transport.Addr{Group: 6}, []byte{3}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []byte{2, 3} {
		if p := recv(t, c); p.Data[0] != want {
			t.Fatalf("got %v, want %d (multicasts are not filtered by connect)", p.Data, want)
		}
	}
}

// TestKernelHook plays a connector callback: the hook sees what is sent to
// port 0, also as part of a group send, and may answer with Inject.
func TestKernelHook(t *testing.T) {
	var n *memnet.Network
	var seen []byte
	n = memnet.New(memnet.Config{Kernel: func(from uint32, b []byte) {
		seen = append(seen, b[0])
		_ = n.Inject(0, transport.Addr{Port: from}, append([]byte{0xAA}, b...))
	}})
	a := open(t, n, 0)
	if err := a.Send(transport.Addr{}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(transport.Addr{Group: 8}, []byte{2}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []byte{1, 2} {
		if p := recv(t, a); p.From != 0 || p.Data[0] != 0xAA || p.Data[1] != want {
			t.Fatalf("reply %+v, want one from the kernel echoing %d", p, want)
		}
	}
	if string(seen) != "\x01\x02" {
		t.Fatalf("kernel hook saw %v", seen)
	}
}

func TestMembership(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a, b := open(t, n, 0), open(t, n, 0)
	for _, g := range []uint32{0, 33} {
		if err := b.JoinGroup(g); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("JoinGroup(%d): %v, want EINVAL", g, err)
		}
	}
	// Joining twice delivers once; leaving once leaves.
	_ = b.JoinGroup(32)
	_ = b.JoinGroup(32)
	_ = a.Send(transport.Addr{Group: 32}, []byte{1})
	if s := b.Stats(); s.Queued != 1 {
		t.Fatalf("double join: %d queued, want 1", s.Queued)
	}
	_ = b.LeaveGroup(32)
	_ = b.LeaveGroup(32)
	_ = a.Send(transport.Addr{Group: 32}, []byte{2})
	if s := b.Stats(); s.Queued != 1 {
		t.Fatalf("after leaving: %d queued, want 1", s.Queued)
	}
	// Close leaves every group.
	_ = b.JoinGroup(3)
	c := open(t, n, 0)
	_ = c.JoinGroup(3)
	_ = b.Close()
	_ = a.Send(transport.Addr{Group: 3}, []byte{3})
	if p := recv(t, c); p.Data[0] != 3 {
		t.Fatalf("member after another closed: %+v", p)
	}
}

func TestCloseTwiceAndAfter(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a := open(t, n, 0)
	_ = a.Send(transport.Addr{Port: a.LocalPort()}, []byte{1})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"SetReadBuffer": a.SetReadBuffer(1),
		"Connect":       a.Connect(1),
		"LeaveGroup":    a.LeaveGroup(1),
	} {
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if s := a.Stats(); s.Queued != 0 || s.QueuedBytes != 0 {
		t.Errorf("queue after Close: %+v", s)
	}
}

// TestConcurrentReceivers checks that wake-ups are passed on: several
// goroutines blocked in Receive on one Conn all make progress.
func TestConcurrentReceivers(t *testing.T) {
	n := memnet.New(memnet.Config{})
	a, b := open(t, n, 0), open(t, n, 0)
	const total, workers = 20000, 4
	var mu sync.Mutex
	seen := make(map[uint32]int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 16)
			for {
				p, err := b.Receive(buf)
				if err != nil {
					return
				}
				mu.Lock()
				seen[uint32(p.Data[0])|uint32(p.Data[1])<<8|uint32(p.Data[2])<<16]++
				done := len(seen) == total
				mu.Unlock()
				if done {
					_ = b.Close()
				}
			}
		})
	}
	dst := transport.Addr{Port: b.LocalPort()}
	for i := range total {
		d := []byte{byte(i), byte(i >> 8), byte(i >> 16)}
		for {
			err := a.Send(dst, d)
			if err == nil {
				break
			}
			if !errors.Is(err, transport.ErrPeerBusy) {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Microsecond)
		}
	}
	wg.Wait()
	for i := range uint32(total) {
		if seen[i] != 1 {
			t.Fatalf("datagram %d received %d times", i, seen[i])
		}
	}
}

// TestSynctest shows that a blocked Receive is durably blocked inside a
// bubble: synctest.Wait returns, fake time jumps an hour at once, and a
// later Send or Close wakes the receiver.
func TestSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(memnet.Config{})
		a, _ := n.Open(0)
		b, _ := n.Open(0)
		type res struct {
			p   transport.Packet
			err error
			at  time.Time
		}
		got := make(chan res, 2)
		go func() {
			buf := make([]byte, 64)
			for {
				p, err := b.Receive(buf)
				got <- res{p, err, time.Now()}
				if err != nil {
					return
				}
			}
		}()
		synctest.Wait()
		start := time.Now()
		time.Sleep(time.Hour)
		if err := a.Send(transport.Addr{Port: b.LocalPort()}, []byte("late")); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil || string(r.p.Data) != "late" || r.at.Sub(start) != time.Hour {
			t.Fatalf("got %q, %v at +%v; want \"late\" at +1h", r.p.Data, r.err, r.at.Sub(start))
		}
		synctest.Wait()
		_ = b.Close()
		if r := <-got; !errors.Is(r.err, transport.ErrClosed) {
			t.Fatalf("Receive after Close: %v", r.err)
		}
		_ = a.Close()
	})
}

// TestRandomizedAccounting runs a random mix of operations and checks the
// queue accounting invariants after each: what is charged is the sum of
// the truesizes of what is queued, and datagrams are conserved (sent =
// received + queued + dropped for each receiver).
func TestRandomizedAccounting(t *testing.T) {
	for _, seed := range []uint64{1, 2, rand.Uint64()} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0))
			n := memnet.New(memnet.Config{})
			conns := make([]*memnet.Conn, 4)
			for i := range conns {
				conns[i] = open(t, n, 0)
				_ = conns[i].SetReadBuffer(1 + r.IntN(20000))
				_ = conns[i].JoinGroup(2)
			}
			delivered := make([]int, len(conns)) // datagrams the network accepted for each conn
			sizes := make([][]int, len(conns))   // sizes queued, in order (model)
			charges := make([][]int, len(conns))
			buf := make([]byte, 1<<16)
			for op := range 20000 {
				i := r.IntN(len(conns))
				c := conns[i]
				switch r.IntN(3) {
				case 0: // unicast
					j := r.IntN(len(conns))
					size := 1 + r.IntN(6000)
					before := conns[j].Stats().Queued
					err := c.Send(transport.Addr{Port: conns[j].LocalPort()}, make([]byte, size))
					if err == nil {
						delivered[j]++
						sizes[j] = append(sizes[j], size)
						charges[j] = append(charges[j], memnet.Truesize(size, false))
					} else if !errors.Is(err, transport.ErrPeerBusy) || conns[j].Stats().Queued != before {
						t.Fatalf("op %d: unicast: %v", op, err)
					}
				case 1: // multicast
					size := 1 + r.IntN(6000)
					before := make([]memnet.Stats, len(conns))
					for k := range conns {
						before[k] = conns[k].Stats()
					}
					if err := c.Send(transport.Addr{Group: 2}, make([]byte, size)); err != nil {
						t.Fatalf("op %d: multicast: %v", op, err)
					}
					for k := range conns {
						after := conns[k].Stats()
						switch {
						case k == i:
							if after.Queued != before[k].Queued {
								t.Fatalf("op %d: multicast looped back to its sender", op)
							}
						case after.Queued == before[k].Queued+1:
							delivered[k]++
							sizes[k] = append(sizes[k], size)
							charges[k] = append(charges[k], memnet.Truesize(size, true))
						case after.Drops != before[k].Drops+1:
							t.Fatalf("op %d: member %d neither got nor dropped the multicast", op, k)
						}
					}
				case 2: // receive, if something is there (Receive would block otherwise)
					s := c.Stats()
					if s.Queued == 0 && !s.Congested {
						continue
					}
					if s.Queued == 0 {
						t.Fatalf("op %d: congested with an empty queue", op)
					}
					p, err := c.Receive(buf)
					if err != nil {
						t.Fatal(err)
					}
					if p.Overrun {
						continue
					}
					if len(p.Data) != sizes[i][0] {
						t.Fatalf("op %d: received %d bytes, want %d (FIFO)", op, len(p.Data), sizes[i][0])
					}
					sizes[i], charges[i] = sizes[i][1:], charges[i][1:]
				}
				for k, c := range conns {
					s := c.Stats()
					sum := 0
					for _, ch := range charges[k] {
						sum += ch
					}
					if s.Queued != len(sizes[k]) || s.QueuedBytes != sum {
						t.Fatalf("op %d: conn %d: %d queued charging %d, model %d charging %d", op, k, s.Queued, s.QueuedBytes, len(sizes[k]), sum)
					}
					if int(s.DatagramsReceived)+s.Queued != delivered[k] {
						t.Fatalf("op %d: conn %d: %d received + %d queued != %d delivered", op, k, s.DatagramsReceived, s.Queued, delivered[k])
					}
					if s.Queued > 1 && s.QueuedBytes > s.ReadBuffer {
						t.Fatalf("op %d: conn %d: %d bytes charged over a budget of %d", op, k, s.QueuedBytes, s.ReadBuffer)
					}
				}
			}
		})
	}
}
