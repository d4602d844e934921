package reliable

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// chaosScenarios is the number of seeded scenarios of TestChaos.
const chaosScenarios = 240

// scenario is one randomly drawn mix of faults.
type scenario struct {
	seed     uint64
	dir      fault.Direction // applied to sends of both endpoints
	recv     fault.Direction // applied to receives of both endpoints
	msgs     int
	maxSize  int
	requests int
}

func drawScenario(seed uint64) scenario {
	r := rand.New(rand.NewPCG(seed, 0x6368616f73))
	pick := func(p float64, v float64) float64 {
		if r.Float64() < p {
			return v
		}
		return 0
	}
	sc := scenario{seed: seed, msgs: 200 + r.IntN(600), maxSize: 8 + r.IntN(3000), requests: r.IntN(20)}
	sc.dir = fault.Direction{
		Loss:      r.Float64() * 0.30,
		Duplicate: pick(0.5, r.Float64()*0.10),
		Reorder:   pick(0.5, r.Float64()*0.20),
		Corrupt:   pick(0.4, r.Float64()*0.05),
	}
	if r.IntN(2) == 0 {
		sc.dir.Delay = time.Duration(r.IntN(200)) * time.Microsecond
		sc.dir.Jitter = time.Duration(r.IntN(300)) * time.Microsecond
	}
	if r.IntN(3) == 0 {
		sc.dir.EAGAINBurst = fault.Burst{P: r.Float64() * 0.05, Len: 1 + r.IntN(20)}
	}
	if r.IntN(3) == 0 {
		sc.recv.OverrunBurst = fault.Burst{P: r.Float64() * 0.03, Len: r.IntN(8)}
	}
	if r.IntN(4) == 0 {
		sc.recv.Duplicate = r.Float64() * 0.05
	}
	return sc
}

func (sc scenario) String() string {
	return fmt.Sprintf("seed=%d loss=%.0f%% dup=%.0f%% reorder=%.0f%% corrupt=%.1f%% delay=%v+%v eagain=%v overrun=%v msgs=%d size<=%d req=%d",
		sc.seed, sc.dir.Loss*100, sc.dir.Duplicate*100, sc.dir.Reorder*100, sc.dir.Corrupt*100,
		sc.dir.Delay, sc.dir.Jitter, sc.dir.EAGAINBurst, sc.recv.OverrunBurst, sc.msgs, sc.maxSize, sc.requests)
}

// TestChaos runs seeded scenarios mixing 0-30% loss, duplication,
// reordering, delay and jitter, corruption, overrun and EAGAIN bursts over
// the in-memory network, in deterministic time. Each checks exactly-once,
// in-order, byte-exact delivery in both directions and request/reply, and
// that the injected faults really happened. Rerun one with
// -run 'TestChaos/seed=N$'.
func TestChaos(t *testing.T) {
	for seed := uint64(1); seed <= chaosScenarios; seed++ {
		sc := drawScenario(seed)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { runScenario(t, sc) })
		})
	}
}

func runScenario(t *testing.T, sc scenario) {
	var conns []*fault.Conn
	wrap := func(tr transport.Transport, i int) transport.Transport {
		c := fault.Wrap(tr, fault.Config{Seed: sc.seed*2 + uint64(i), Send: sc.dir, Recv: sc.recv})
		conns = append(conns, c)
		return c
	}
	cfg := &Config{Window: 64 + int(sc.seed%4)*128, MaxMessage: 4096, DeadPeerTimeout: 30 * time.Second}
	p := newPair(t, cfg, wrap)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	r := rand.New(rand.NewPCG(sc.seed, 1))
	sizes := make([]int, sc.msgs)
	for i := range sizes {
		sizes[i] = 8 + r.IntN(sc.maxSize)
	}
	errc := make(chan error, 4)
	send := func(s *Session) {
		for i, n := range sizes {
			if err := s.Send(ctx, msg(i, n)); err != nil {
				errc <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}
	recv := func(s *Session, name string) {
		for i, n := range sizes {
			select {
			case m := <-s.Recv():
				if err := checkMsg(m, i, n); err != nil {
					errc <- fmt.Errorf("%s: %w", name, err)
					return
				}
			case <-s.Done():
				errc <- fmt.Errorf("%s: session ended after %d of %d: %w", name, i, len(sizes), s.Err())
				return
			}
		}
		errc <- nil
	}
	go send(p.sa)
	go send(p.sb)
	go recv(p.sb, "a->b")
	go recv(p.sa, "b->a")
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatalf("%v\n%v\n%v", err, conns[0].Stats(), conns[1].Stats())
		}
	}
	// Requests: the handler must run exactly once per request.
	handled := make(map[string]int)
	hdone := make(chan struct{})
	go func() {
		defer close(hdone)
		for range sc.requests {
			select {
			case q := <-p.sb.Requests():
				handled[string(q.Data)]++
				if err := q.Reply(ctx, append([]byte("re:"), q.Data...)); err != nil {
					t.Errorf("reply: %v", err)
				}
			case <-p.sb.Done():
				return
			}
		}
	}()
	for i := range sc.requests {
		q := msg(i, 16+i)
		got, err := p.sa.Request(ctx, q)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(got) != "re:"+string(q) {
			t.Fatalf("request %d: wrong reply", i)
		}
	}
	<-hdone
	for k, n := range handled {
		if n != 1 {
			t.Fatalf("request %x handled %d times", k[:8], n)
		}
	}
	// Nothing extra may be pending: a duplicate delivery would be here.
	synctest.Wait()
	select {
	case m := <-p.sb.Recv():
		t.Fatalf("extra message at b: %x", m[:8])
	case m := <-p.sa.Recv():
		t.Fatalf("extra message at a: %x", m[:8])
	default:
	}
	checkFaultsHappened(t, sc, conns)
	t.Logf("%v | a: %+v | b: %+v", sc, p.sa.Stats(), p.sb.Stats())
}

// checkFaultsHappened proves that the scenario really injected what it
// asked for, so that a silently disabled injector cannot pass.
func checkFaultsHappened(t *testing.T, sc scenario, conns []*fault.Conn) {
	var st fault.DirStats
	var rs fault.DirStats
	for _, c := range conns {
		s := c.Stats()
		st.Passed += s.Send.Passed
		st.Lost += s.Send.Lost
		st.Duplicated += s.Send.Duplicated
		st.Reordered += s.Send.Reordered
		st.Corrupted += s.Send.Corrupted
		st.EAGAIN += s.Send.EAGAIN
		rs.Overruns += s.Recv.Overruns
	}
	n := float64(st.Passed + st.Lost)
	// Expect at least a quarter of the mean when the mean is large
	// enough for that to be all but certain.
	check := func(name string, p float64, got uint64) {
		if mean := p * n; mean >= 20 && float64(got) < mean/4 {
			t.Errorf("%s: injected %d, expected about %.0f: %v", name, got, mean, sc)
		}
	}
	check("loss", sc.dir.Loss, st.Lost)
	check("duplication", sc.dir.Duplicate, st.Duplicated)
	check("corruption", sc.dir.Corrupt, st.Corrupted)
	check("eagain bursts", sc.dir.EAGAINBurst.P, st.EAGAIN)
	check("overrun bursts", sc.recv.OverrunBurst.P, rs.Overruns)
}
