package window

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestSimulatedChannel runs a Sender and a Receiver the way an engine
// would (retransmission timer with backoff, loss timer, flow control with a
// slow application, periodic window updates) across a simulated channel that
// loses, duplicates, delays and reorders datagrams in both directions, on a
// fake clock. Each seed picks its own conditions; the seed is in the subtest
// name, so a failure replays with -run 'TestSimulatedChannel/seed=N'.
func TestSimulatedChannel(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runSim(t, seed)
		})
	}
}

type simEvent struct {
	at   time.Duration
	kind int // simData, simAck, simApp
	seq  Seq
	val  int
	ack  Ack
	id   int // tie-break, keeps the order deterministic
}

const (
	simData = iota
	simAck
	simApp
)

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].id < q[j].id
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simParams struct {
	msgs      int
	loss, dup float64
	delay     time.Duration // one-way base delay
	jitter    time.Duration // uniform extra delay: reordering
	sndWindow int
	rcvWindow int
	appEvery  time.Duration // the application drains its backlog this often
	isn       Seq
	pktThresh int
	maxRanges int
	ackEvery  int // the receiver acknowledges every ackEvery arrivals
}

func simParamsFor(rng *rand.Rand) simParams {
	isns := []Seq{0xFFFFFFF0, 0x7FFFFFF0, Seq(rng.Uint32())}
	losses := []float64{0, 0.01, 0.1, 0.3}
	p := simParams{
		msgs:      2000 + rng.IntN(3000),
		loss:      losses[rng.IntN(len(losses))],
		dup:       []float64{0, 0.02, 0.2}[rng.IntN(3)],
		delay:     time.Duration(5+rng.IntN(100)) * time.Microsecond,
		jitter:    time.Duration(rng.IntN(3)) * time.Duration(rng.IntN(200)) * time.Microsecond,
		sndWindow: []int{8, 64, 256, 1024}[rng.IntN(4)],
		appEvery:  time.Duration(rng.IntN(500)) * time.Microsecond,
		isn:       isns[rng.IntN(len(isns))],
		pktThresh: 3,
		maxRanges: 1 + rng.IntN(8),
		ackEvery:  1 + rng.IntN(4),
	}
	p.rcvWindow = p.sndWindow
	if rng.IntN(4) == 0 {
		p.rcvWindow = p.sndWindow/2 + 1 // disagreeing windows
	}
	return p
}

func runSim(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	p := simParamsFor(rng)
	t.Logf("%+v", p)

	snd := NewSender[int](p.isn, SenderConfig{Window: p.sndWindow, PacketThreshold: p.pktThresh})
	rcv := NewReceiver[int](p.isn, ReceiverConfig{Window: p.rcvWindow, MaxRanges: p.maxRanges})

	var (
		now       time.Duration
		q         simQueue
		ids       int
		pushed    int
		delivered int // values taken by the application, in order
		backlog   []int
		released  = make([]bool, p.msgs)
		nreleased int
		arrivals  int
		dropped   int
		events    int
		// RFC 6298 estimator, as the engine's retry package would run it.
		srtt, rttvar time.Duration
		hasRTT       bool
		backoff      = 1
	)
	send := func(e simEvent) {
		if rng.Float64() < p.loss {
			dropped++
			return
		}
		copies := 1
		if rng.Float64() < p.dup {
			copies = 2
		}
		for range copies {
			e.at = now + p.delay
			if p.jitter > 0 {
				e.at += time.Duration(rng.Int64N(int64(p.jitter)))
			}
			ids++
			e.id = ids
			heap.Push(&q, e)
		}
	}
	sendAck := func() {
		send(simEvent{kind: simAck, ack: rcv.Ack(len(backlog)).Clone()})
	}
	rto := func() time.Duration {
		r := time.Second
		if hasRTT {
			r = max(srtt+4*rttvar, 200*time.Microsecond)
		}
		return r * time.Duration(backoff)
	}
	release := func(seq Seq, v int) {
		if released[v] {
			t.Fatalf("value %d released twice", v)
		}
		if seq != p.isn.Add(v) {
			t.Fatalf("value %d released as isn%+d", v, seq.Sub(p.isn))
		}
		released[v] = true
		nreleased++
	}
	transmitLost := func() {
		for {
			seq, v, ok := snd.PopLost(now)
			if !ok {
				return
			}
			send(simEvent{kind: simData, seq: seq, val: v})
		}
	}
	fill := func() {
		for pushed < p.msgs && snd.CanSend() {
			seq := snd.Push(now, pushed)
			send(simEvent{kind: simData, seq: seq, val: pushed})
			pushed++
		}
	}
	deliverApp := func() {
		for _, v := range backlog {
			if v != delivered {
				t.Fatalf("application got %d, want %d", v, delivered)
			}
			delivered++
		}
		backlog = backlog[:0]
	}
	if p.appEvery > 0 {
		heap.Push(&q, simEvent{at: p.appEvery, kind: simApp})
	}

	fill()
	const limit = 60 * time.Second
	for delivered < p.msgs || nreleased < p.msgs {
		if now > limit {
			t.Fatalf("stuck at %v: delivered %d, released %d of %d; sender in flight %d, lost %d, base isn%+d, limit isn%+d; receiver cum isn%+d",
				now, delivered, nreleased, p.msgs, snd.InFlight(), snd.Lost(), snd.Base().Sub(p.isn), snd.Limit().Sub(p.isn), rcv.Cum().Sub(p.isn))
		}
		// The next thing to happen: an arrival, the loss timer or the
		// retransmission timer.
		next := limit + time.Second
		if len(q) > 0 {
			next = q[0].at
		}
		lossAt, lossOK := snd.LossDeadline()
		if lossOK && lossAt < next {
			next = lossAt
		}
		oldest, rtoOK := snd.OldestSentAt()
		rtoAt := oldest + rto()
		if rtoOK && rtoAt < next {
			next = rtoAt
		}
		now = max(now, next)

		switch {
		case lossOK && now >= lossAt:
			snd.DetectLoss(now)
			transmitLost()
		case rtoOK && now >= rtoAt:
			snd.MarkAllLost()
			backoff = min(backoff*2, 64)
			transmitLost()
		default:
			e := heap.Pop(&q).(simEvent)
			switch e.kind {
			case simData:
				rcv.Push(e.seq, e.val)
				for {
					v, ok := rcv.Pop()
					if !ok {
						break
					}
					backlog = append(backlog, v)
				}
				if p.appEvery == 0 {
					deliverApp()
				}
				if arrivals++; arrivals%p.ackEvery == 0 || rcv.Cum() != rcv.NextPop() {
					sendAck()
				}
			case simAck:
				res := snd.OnAck(now, e.ack, release)
				if res.Acked > 0 {
					backoff = 1
				}
				if res.RTTValid {
					if !hasRTT {
						srtt, rttvar, hasRTT = res.RTT, res.RTT/2, true
					} else {
						d := srtt - res.RTT
						rttvar = (3*rttvar + max(d, -d)) / 4
						srtt = (7*srtt + res.RTT) / 8
					}
					snd.SetSRTT(srtt)
				}
				transmitLost()
				fill()
			case simApp:
				deliverApp()
				sendAck() // window update; also what a zero window needs
				if delivered < p.msgs || nreleased < p.msgs {
					heap.Push(&q, simEvent{at: now + p.appEvery, kind: simApp})
				}
			}
			// A tail of acknowledgements can be lost while the receiver is
			// idle; like a real engine, the receiver answers the sender's
			// retransmissions, and the sender's timer guarantees they come.
		}
		// The structural checks scan whole rings: run them often, not
		// always, or the race detector makes this test crawl.
		if events++; events%32 == 0 {
			if err := snd.check(); err != nil {
				t.Fatal(err)
			}
			if err := rcv.check(); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := snd.Stats()
	if p.loss > 0 && dropped > 0 && st.Retransmitted == 0 {
		t.Errorf("%d datagrams dropped and nothing retransmitted", dropped)
	}
	if st.Acked != uint64(p.msgs) || st.Pushed != uint64(p.msgs) {
		t.Errorf("stats %+v for %d messages", st, p.msgs)
	}
	t.Logf("done at %v: dropped %d, %+v, receiver %+v", now, dropped, st, rcv.Stats())
}
