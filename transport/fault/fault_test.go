package fault_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// msg is datagram i of a scenario: its index, then bytes derived from it.
func msg(i int) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b, uint32(i))
	for k := 4; k < len(b); k++ {
		b[k] = byte(i*31 + k)
	}
	return b
}

type arrival struct {
	idx     int
	data    []byte
	at      time.Duration // since the scenario started (fake time)
	overrun bool
}

// scenario sends n datagrams from a wrapped sender to a wrapped receiver
// over memnet and records what arrives and when. It must run inside a
// synctest bubble: delayed and held datagrams are flushed by sleeping a
// fake minute. The sender retries ErrPeerBusy as a real sender does and
// records each refusal (refusals[i] = how many times datagram i was
// refused).
type scenario struct {
	arrivals   []arrival
	refusals   []int
	sent, recv fault.Stats
}

func run(t *testing.T, sendCfg, recvCfg fault.Config, n int) scenario {
	t.Helper()
	// A queue that holds the whole run: these tests count injected
	// faults, and a full queue would add refusals of its own (a delayed or
	// duplicated copy refused by the peer is lost, Stats.Send.Failed).
	net := memnet.New(memnet.Config{ReadBuffer: 16 << 20})
	ia, _ := net.Open(0)
	ib, _ := net.Open(0)
	a, b := fault.Wrap(ia, sendCfg), fault.Wrap(ib, recvCfg)
	start := time.Now()
	var s scenario
	got := make(chan struct{})
	go func() {
		defer close(got)
		buf := make([]byte, 256)
		for {
			p, err := b.Receive(buf)
			if err != nil {
				if !errors.Is(err, transport.ErrClosed) {
					t.Errorf("Receive: %v", err)
				}
				return
			}
			ar := arrival{at: time.Since(start), overrun: p.Overrun, data: bytes.Clone(p.Data)}
			if !p.Overrun {
				ar.idx = int(binary.LittleEndian.Uint32(p.Data))
			}
			s.arrivals = append(s.arrivals, ar)
		}
	}()
	s.refusals = make([]int, n)
	dst := transport.Addr{Port: b.LocalPort()}
	for i := range n {
		for {
			err := a.Send(dst, msg(i))
			if err == nil {
				break
			}
			if !errors.Is(err, transport.ErrPeerBusy) {
				t.Fatalf("Send %d: %v", i, err)
			}
			s.refusals[i]++
			time.Sleep(100 * time.Microsecond)
		}
	}
	time.Sleep(time.Minute)
	synctest.Wait()
	s.sent, s.recv = a.Stats(), b.Stats()
	if s.sent.Send.Failed != 0 {
		t.Errorf("the peer refused %d datagrams: %v", s.sent.Send.Failed, s.sent)
	}
	_ = a.Close()
	_ = b.Close()
	<-got
	return s
}

// within fails unless got is within 5 standard deviations of a binomial
// count of n trials with probability p.
func within(t *testing.T, what string, got uint64, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if math.Abs(float64(got)-mean) > 5*sd+1 {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f (p=%v)", what, got, n, mean, 5*sd, p)
	}
}

func seeds() []uint64 { return []uint64{1, 0xdecafbad, rand.Uint64()} }

func (s scenario) data() []arrival {
	var d []arrival
	for _, a := range s.arrivals {
		if !a.overrun {
			d = append(d, a)
		}
	}
	return d
}

func TestRates(t *testing.T) {
	const n = 4000
	for _, tc := range []struct {
		name         string
		send, recv   fault.Direction
		check        func(t *testing.T, s scenario)
		inOrder      bool
		noCorruption bool
	}{
		{name: "SendLoss", send: fault.Direction{Loss: 0.1}, inOrder: true, noCorruption: true, check: func(t *testing.T, s scenario) {
			within(t, "lost on send", s.sent.Send.Lost, n, 0.1)
			if got := len(s.data()); uint64(got) != n-s.sent.Send.Lost || s.sent.Send.Passed != uint64(got) {
				t.Errorf("%d arrived, %d passed, %d lost of %d", got, s.sent.Send.Passed, s.sent.Send.Lost, n)
			}
		}},
		{name: "RecvLoss", recv: fault.Direction{Loss: 0.25}, inOrder: true, noCorruption: true, check: func(t *testing.T, s scenario) {
			within(t, "lost on receive", s.recv.Recv.Lost, n, 0.25)
			if got := len(s.data()); uint64(got) != n-s.recv.Recv.Lost || s.recv.Recv.Passed != uint64(got) {
				t.Errorf("%d arrived, %d passed, %d lost of %d", got, s.recv.Recv.Passed, s.recv.Recv.Lost, n)
			}
		}},
		{name: "SendDuplicate", send: fault.Direction{Duplicate: 0.1}, noCorruption: true, check: func(t *testing.T, s scenario) {
			within(t, "duplicated on send", s.sent.Send.Duplicated, n, 0.1)
			if got := len(s.data()); uint64(got) != n+s.sent.Send.Duplicated {
				t.Errorf("%d arrived, want %d + %d duplicates", got, n, s.sent.Send.Duplicated)
			}
		}},
		{name: "RecvDuplicate", recv: fault.Direction{Duplicate: 0.3}, noCorruption: true, check: func(t *testing.T, s scenario) {
			within(t, "duplicated on receive", s.recv.Recv.Duplicated, n, 0.3)
			if got := len(s.data()); uint64(got) != n+s.recv.Recv.Duplicated {
				t.Errorf("%d arrived, want %d + %d duplicates", got, n, s.recv.Recv.Duplicated)
			}
		}},
		{name: "SendCorrupt", send: fault.Direction{Corrupt: 0.05}, check: func(t *testing.T, s scenario) {
			within(t, "corrupted on send", s.sent.Send.Corrupted, n, 0.05)
			checkCorrupted(t, s, s.sent.Send.Corrupted)
		}},
		{name: "RecvCorrupt", recv: fault.Direction{Corrupt: 0.2}, check: func(t *testing.T, s scenario) {
			within(t, "corrupted on receive", s.recv.Recv.Corrupted, n, 0.2)
			checkCorrupted(t, s, s.recv.Recv.Corrupted)
		}},
		{name: "SendReorder", send: fault.Direction{Reorder: 0.1}, noCorruption: true, check: func(t *testing.T, s scenario) {
			within(t, "reordered on send", s.sent.Send.Reordered, n, 0.1)
			checkReordered(t, s, n, s.sent.Send.Reordered)
		}},
		{name: "RecvReorder", recv: fault.Direction{Reorder: 0.2}, noCorruption: true, check: func(t *testing.T, s scenario) {
			within(t, "reordered on receive", s.recv.Recv.Reordered, n, 0.2)
			checkReordered(t, s, n, s.recv.Recv.Reordered)
		}},
	} {
		for _, seed := range seeds() {
			t.Run(fmt.Sprintf("%s/seed=%d", tc.name, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := run(t, fault.Config{Seed: seed, Send: tc.send}, fault.Config{Seed: seed + 1, Recv: tc.recv}, n)
					t.Log(s.sent, "|", s.recv)
					tc.check(t, s)
					last := -1
					for _, a := range s.data() {
						if tc.noCorruption && !bytes.Equal(a.data, msg(a.idx)) {
							t.Fatalf("datagram %d arrived damaged", a.idx)
						}
						if tc.inOrder && a.idx <= last {
							t.Fatalf("datagram %d after %d", a.idx, last)
						}
						last = a.idx
					}
				})
			})
		}
	}
}

// checkCorrupted: no loss or reordering was configured, so arrival k is
// datagram k; exactly the counted number differ, each in some bits only.
func checkCorrupted(t *testing.T, s scenario, counted uint64) {
	t.Helper()
	d := s.data()
	var bad uint64
	for k, a := range d {
		want := msg(k)
		if len(a.data) != len(want) {
			t.Fatalf("arrival %d: %d bytes, want %d: corruption changes bits, not lengths", k, len(a.data), len(want))
		}
		if !bytes.Equal(a.data, want) {
			bad++
		}
	}
	if bad != counted {
		t.Errorf("%d arrivals differ from what was sent, Stats count %d", bad, counted)
	}
}

// checkReordered: every datagram arrives exactly once, and the number that
// arrive after a higher-numbered one is what Stats count.
func checkReordered(t *testing.T, s scenario, n int, counted uint64) {
	t.Helper()
	seen := make([]int, n)
	var late uint64
	highest := -1
	for _, a := range s.data() {
		seen[a.idx]++
		if a.idx < highest {
			late++
		}
		highest = max(highest, a.idx)
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("datagram %d arrived %d times", i, k)
		}
	}
	if late != counted || late == 0 {
		t.Errorf("%d datagrams arrived after a later one, Stats count %d", late, counted)
	}
}

// TestDeterminism runs a scenario with every fault twice per seed and
// expects identical arrivals (content, order and fake time) and counters.
func TestDeterminism(t *testing.T) {
	all := fault.Direction{Loss: 0.05, Duplicate: 0.05, Reorder: 0.05, Corrupt: 0.05, Delay: 3 * time.Millisecond, Jitter: 2 * time.Millisecond}
	send := all
	send.EAGAINBurst = fault.Burst{P: 0.01, Len: 3}
	recv := all
	recv.OverrunBurst = fault.Burst{P: 0.01, Len: 2}
	var prev string
	for _, seed := range seeds()[:2] {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			var runs [2]string
			for i := range runs {
				synctest.Test(t, func(t *testing.T) {
					s := run(t, fault.Config{Seed: seed, Send: send}, fault.Config{Seed: seed, Recv: recv}, 2000)
					var sb strings.Builder
					fmt.Fprintln(&sb, s.sent, s.recv, s.refusals)
					for _, a := range s.arrivals {
						fmt.Fprintf(&sb, "%v %x %v\n", a.at, a.data, a.overrun)
					}
					runs[i] = sb.String()
				})
			}
			if runs[0] != runs[1] {
				t.Fatalf("two runs with seed %d differ", seed)
			}
			if runs[0] == prev {
				t.Fatalf("seed %d ran exactly as the previous seed", seed)
			}
			prev = runs[0]
		})
	}
}

func TestEAGAINBurst(t *testing.T) {
	const n, burstLen = 3000, 4
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := run(t, fault.Config{Seed: seed, Send: fault.Direction{EAGAINBurst: fault.Burst{P: 0.02, Len: burstLen}}}, fault.Config{}, n)
				var total uint64
				bursts := 0
				for i, k := range s.refusals {
					// A datagram retried through one burst sees Len
					// refusals; back-to-back bursts make multiples.
					if k%burstLen != 0 {
						t.Fatalf("datagram %d refused %d times: not whole bursts of %d", i, k, burstLen)
					}
					total += uint64(k)
					bursts += k / burstLen
				}
				if total != s.sent.Send.EAGAIN {
					t.Errorf("%d refusals seen, Stats count %d", total, s.sent.Send.EAGAIN)
				}
				within(t, "bursts started", uint64(bursts), n+int(total)-bursts*(burstLen-1), 0.02)
				if d := s.data(); len(d) != n {
					t.Fatalf("%d of %d arrived: a refused send must not be sent", len(d), n)
				}
			})
		})
	}
}

func TestOverrunBurst(t *testing.T) {
	const n = 3000
	for _, burstLen := range []int{0, 1, 5} {
		for _, seed := range seeds() {
			t.Run(fmt.Sprintf("len=%d/seed=%d", burstLen, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := run(t, fault.Config{}, fault.Config{Seed: seed, Recv: fault.Direction{OverrunBurst: fault.Burst{P: 0.01, Len: burstLen}}}, n)
					// Each report is followed by a gap of exactly Len
					// datagrams (unless the run ends inside a burst).
					next, reports := 0, 0
					var dropped uint64
					pendingGap := -1
					for _, a := range s.arrivals {
						if a.overrun {
							reports++
							pendingGap = max(pendingGap, 0) + burstLen
							continue
						}
						gap := a.idx - next
						if pendingGap >= 0 && gap != pendingGap || pendingGap < 0 && gap != 0 {
							t.Fatalf("datagram %d arrived when %d was next (report pending: %v): want a gap of exactly the burst", a.idx, next, pendingGap >= 0)
						}
						dropped += uint64(gap)
						pendingGap = -1
						next = a.idx + 1
					}
					dropped += uint64(n - next)
					if uint64(reports) != s.recv.Recv.Overruns || dropped != s.recv.Recv.DroppedInOverrun {
						t.Errorf("%d reports and %d datagrams dropped; Stats: %v", reports, dropped, s.recv)
					}
					if reports == 0 {
						t.Errorf("no overrun in %d datagrams at p=0.01", n)
					}
				})
			})
		}
	}
}

// TestDelay checks latencies in fake time: Delay is exact, Jitter adds
// [0, Jitter), and the two directions add up.
func TestDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := run(t,
			fault.Config{Seed: 1, Send: fault.Direction{Delay: 5 * time.Millisecond}},
			fault.Config{Seed: 2, Recv: fault.Direction{Delay: 10 * time.Millisecond, Jitter: 4 * time.Millisecond}}, 200)
		jittered := false
		for _, a := range s.data() {
			// Sending takes no fake time: every datagram leaves at 0.
			if a.at < 15*time.Millisecond || a.at >= 19*time.Millisecond {
				t.Fatalf("datagram %d arrived at %v, want within [15ms, 19ms)", a.idx, a.at)
			}
			jittered = jittered || a.at != 15*time.Millisecond
		}
		if len(s.data()) != 200 || !jittered {
			t.Fatalf("%d arrivals, jitter seen: %v", len(s.data()), jittered)
		}
		if s.sent.Send.Delayed != 200 || s.recv.Recv.Delayed != 200 {
			t.Fatalf("Delayed counts: %v | %v", s.sent, s.recv)
		}
	})
}

// TestReceiveBlocksInBubble: a Receive with nothing to read is durably
// blocked, so fake time advances through a delayed datagram's delay.
func TestReceiveBlocksInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(memnet.Config{})
		ia, _ := net.Open(0)
		ib, _ := net.Open(0)
		b := fault.Wrap(ib, fault.Config{Recv: fault.Direction{Delay: time.Hour}})
		defer b.Close()
		defer ia.Close()
		start := time.Now()
		if err := ia.Send(transport.Addr{Port: b.LocalPort()}, []byte("x")); err != nil {
			t.Fatal(err)
		}
		p, err := b.Receive(make([]byte, 8))
		if err != nil || string(p.Data) != "x" || time.Since(start) != time.Hour {
			t.Fatalf("got %q, %v after %v; want \"x\" after exactly 1h", p.Data, err, time.Since(start))
		}
	})
}

// TestCloseStopsTimers: datagrams still delayed at Close are never
// delivered, Close unblocks Receive, and nothing of the Conn survives it
// (synctest.Test fails if a goroutine of the bubble is left).
func TestCloseStopsTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(memnet.Config{})
		ia, _ := net.Open(0)
		ib, _ := net.Open(0)
		defer ib.Close()
		a := fault.Wrap(ia, fault.Config{Send: fault.Direction{Delay: time.Hour, Reorder: 0.5}})
		for range 10 {
			if err := a.Send(transport.Addr{Port: ib.LocalPort()}, []byte("late")); err != nil {
				t.Fatal(err)
			}
		}
		c := fault.Wrap(ib, fault.Config{Recv: fault.Direction{Delay: time.Hour}})
		errc := make(chan error)
		go func() {
			_, err := c.Receive(make([]byte, 8))
			errc <- err
		}()
		synctest.Wait()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		if s := ib.Stats(); s.DatagramsReceived+uint64(s.Queued) != 0 {
			t.Fatalf("a datagram delayed at Close was sent afterwards: %+v", s)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Receive after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// TestCloseRealTime is the same promise checked with goleak on real
// timers and goroutines.
func TestCloseRealTime(t *testing.T) {
	net := memnet.New(memnet.Config{})
	ia, _ := net.Open(0)
	ib, _ := net.Open(0)
	cfg := fault.Direction{Delay: time.Millisecond, Jitter: 5 * time.Millisecond, Reorder: 0.3, Duplicate: 0.3}
	a := fault.Wrap(ia, fault.Config{Seed: 7, Send: cfg})
	b := fault.Wrap(ib, fault.Config{Seed: 8, Recv: cfg})
	buf := make([]byte, 64)
	for i := range 50 {
		if err := a.Send(transport.Addr{Port: b.LocalPort()}, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		if _, err := b.Receive(buf); err != nil {
			t.Fatal(err)
		}
	}
	_ = a.Close()
	_ = b.Close()
	goleak.VerifyNone(t)
}

func TestSetConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(memnet.Config{})
		ia, _ := net.Open(0)
		ib, _ := net.Open(0)
		defer ib.Close()
		a := fault.Wrap(ia, fault.Config{Seed: 3, Send: fault.Direction{Loss: 1}})
		defer a.Close()
		dst := transport.Addr{Port: ib.LocalPort()}
		for range 10 {
			_ = a.Send(dst, []byte{1})
		}
		a.SetConfig(fault.Config{Seed: 99})
		for range 10 {
			_ = a.Send(dst, []byte{2})
		}
		if q := ib.Stats().Queued; q != 10 {
			t.Fatalf("%d queued, want the 10 sent after loss was turned off", q)
		}
		if s := a.Stats(); s.Seed != 3 || a.Seed() != 3 || s.Send.Lost != 10 || s.Send.Passed != 10 {
			t.Fatalf("Stats %v, want seed 3, 10 lost, 10 passed", s)
		}
		// A burst in progress ends with SetConfig.
		a.SetConfig(fault.Config{Send: fault.Direction{EAGAINBurst: fault.Burst{P: 1, Len: 1000}}})
		if err := a.Send(dst, []byte{3}); !errors.Is(err, transport.ErrPeerBusy) {
			t.Fatalf("in a burst: %v", err)
		}
		a.SetConfig(fault.Config{})
		if err := a.Send(dst, []byte{3}); err != nil {
			t.Fatalf("after SetConfig ended the burst: %v", err)
		}
	})
}

// TestBuffersNotKept: the caller may reuse its buffer as soon as Send
// returns, corruption damages a copy, and every received copy (duplicates
// included) owns its bytes: traffic is spread over time so that buffers
// are recycled between the two copies of a datagram.
func TestBuffersNotKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(memnet.Config{})
		ia, _ := net.Open(0)
		ib, _ := net.Open(0)
		a := fault.Wrap(ia, fault.Config{Seed: 5, Send: fault.Direction{Delay: time.Millisecond, Corrupt: 0.5}})
		b := fault.Wrap(ib, fault.Config{Seed: 6, Recv: fault.Direction{Duplicate: 1, Jitter: 10 * time.Millisecond}})
		defer a.Close()
		defer b.Close()
		const n = 200
		intact := map[int]int{}
		got := make(chan struct{})
		go func() {
			defer close(got)
			buf := make([]byte, 64)
			for range 2 * n {
				p, err := b.Receive(buf)
				if err != nil {
					t.Error(err)
					return
				}
				if i := int(binary.LittleEndian.Uint32(p.Data)); i < n && bytes.Equal(p.Data, msg(i)) {
					intact[i]++
				}
			}
		}()
		b2 := make([]byte, 24)
		for i := range n {
			copy(b2, msg(i))
			if err := a.Send(transport.Addr{Port: b.LocalPort()}, b2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b2, msg(i)) {
				t.Fatalf("Send modified the caller's buffer")
			}
			clear(b2)
			time.Sleep(time.Millisecond)
		}
		<-got
		s := a.Stats()
		// Every datagram that was not corrupted arrives twice, intact.
		if uint64(len(intact)) != n-s.Send.Corrupted {
			t.Fatalf("%d datagrams arrived intact, want %d (%v)", len(intact), n-s.Send.Corrupted, s)
		}
		for i, k := range intact {
			if k != 2 {
				t.Fatalf("datagram %d arrived intact %d times, want 2", i, k)
			}
		}
	})
}

// TestInnerOverrunPassesThrough: the wrapped transport's own overrun
// report reaches the caller.
func TestInnerOverrunPassesThrough(t *testing.T) {
	net := memnet.New(memnet.Config{})
	ia, _ := net.Open(0)
	ib, _ := net.Open(0)
	_ = ib.SetReadBuffer(1)
	_ = ib.JoinGroup(2)
	b := fault.Wrap(ib, fault.Config{})
	defer b.Close()
	defer ia.Close()
	for range 5 {
		_ = ia.Send(transport.Addr{Group: 2}, []byte("m"))
	}
	if p, err := b.Receive(make([]byte, 8)); err != nil || !p.Overrun {
		t.Fatalf("got %+v, %v; want the overrun report", p, err)
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []fault.Config{
		{Send: fault.Direction{Loss: 1.5}},
		{Recv: fault.Direction{Corrupt: -0.1}},
		{Send: fault.Direction{Duplicate: math.NaN()}},
		{Send: fault.Direction{Delay: -1}},
		{Send: fault.Direction{OverrunBurst: fault.Burst{P: 0.1}}},
		{Recv: fault.Direction{EAGAINBurst: fault.Burst{P: 0.1}}},
		{Recv: fault.Direction{OverrunBurst: fault.Burst{P: 0.1, Len: -1}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Wrap accepted %+v", cfg)
				}
			}()
			fault.Wrap(nil, cfg)
		}()
	}
}

func TestStatsString(t *testing.T) {
	s := fault.Stats{Seed: 12345, Send: fault.DirStats{Lost: 7}, Recv: fault.DirStats{Overruns: 2}}
	str := s.String()
	for _, want := range []string{"seed=12345", "lost=7", "overruns=2"} {
		if !strings.Contains(str, want) {
			t.Errorf("%q lacks %q", str, want)
		}
	}
	if strings.Contains(str, "\n") {
		t.Errorf("%q is not one line", str)
	}
}
