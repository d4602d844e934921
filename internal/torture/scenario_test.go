package torture

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// Drawing a run. Everything a run does, except the schedule of its
// goroutines, comes from here and so from its seed: a replayed seed gets
// the same endpoints, faults, streams, readers and endings.

// draw builds the run of seed.
func draw(seed uint64, netlink bool) *runPlan {
	r := rand.New(rand.NewPCG(seed, 0x746f7274757265))
	p := &runPlan{seed: seed, netlink: netlink, procs: []int{1, 2, 4}[r.IntN(3)], epClose: -1}
	// One loss level for the run, varied per endpoint, so that some runs
	// are clean, some mildly lossy and some brutal.
	lossLevel := []float64{0, 0, 0.02, 0.08, 0.15, 0.30}[r.IntN(6)]
	for range 2 + r.IntN(2) {
		p.eps = append(p.eps, drawEndpoint(r, netlink, lossLevel))
	}
	// The fault injector hands delayed and reordered datagrams to the
	// wrapped socket later, from a timer, and a receiver's full queue
	// (EAGAIN) then only counts as Failed: the datagram is lost. The
	// kernel never drops unicast that way (a sender gets EAGAIN and
	// waits), and behind a tiny receive queue it turns a burst into near
	// total loss, which cnlink, having no congestion control, repairs only
	// at retransmission-timeout pace (a 10 s stall was seen). Keep tiny
	// queues (real EAGAIN) to runs whose faults are all synchronous.
	for _, e := range p.eps {
		if f := e.faults; f != nil && (f.Send.Delay > 0 || f.Send.Jitter > 0 || f.Send.Reorder > 0) {
			for i := range p.eps {
				if p.eps[i].readBuf > 0 && p.eps[i].readBuf < 1<<20 {
					p.eps[i].readBuf = 0
				}
			}
			break
		}
	}
	for id := range 1 + r.IntN(4) {
		p.sessions = append(p.sessions, drawSession(r, p, id))
	}
	if r.IntN(100) < 20 {
		p.epClose = r.IntN(len(p.eps))
		p.epCloseAt = time.Duration(r.IntN(200)) * time.Millisecond
		p.epCrash = r.IntN(2) == 0
	}
	p.linger = r.IntN(100) < 5
	return p
}

// logUniform draws from [lo, hi], evenly over orders of magnitude.
func logUniform(r *rand.Rand, lo, hi int) int {
	v := math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo))))
	return min(hi, max(lo, int(v)))
}

func ms(r *rand.Rand, lo, hi int) time.Duration {
	return time.Duration(lo+r.IntN(hi-lo+1)) * time.Millisecond
}

func drawEndpoint(r *rand.Rand, netlink bool, lossLevel float64) epPlan {
	var c reliable.Config
	c.Window = logUniform(r, 16, 4096)
	c.RecvBuffer = logUniform(r, 1, 2048)
	if r.IntN(3) == 0 {
		c.SendBuffer = logUniform(r, 1, c.Window)
	}
	switch r.IntN(4) {
	case 0:
		c.MaxMessage = logUniform(r, 16, 4096)
	case 1:
		c.MaxMessage = logUniform(r, 4096, reliable.MaxMessageLimit)
	case 2:
		c.MaxMessage = reliable.MaxMessageLimit
	default:
		c.MaxMessage = 16384
	}
	// The smallest datagram that holds one frame of MaxMessage (and at
	// least a SYNACK), or more.
	least := max(transport.FrameLen(wire.HeaderLen+c.MaxMessage), reliable.MinDatagram)
	if r.IntN(2) == 0 || least >= 65536 {
		c.MaxDatagram = least
	} else {
		c.MaxDatagram = least + r.IntN(65536-least+1)
	}
	c.KeepAlive = ms(r, 50, 200)
	c.DeadPeerTimeout = ms(r, 1000, 2000)
	c.CloseTimeout = ms(r, 1000, 3000)
	c.HandshakeTimeout = handshakeTimeout

	ep := epPlan{cfg: c}
	if r.IntN(100) < 30 {
		ep.readBuf = 4096 // the kernel doubles it: ~8 KiB, a few datagrams
	} else if netlink && r.IntN(2) == 0 {
		ep.readBuf = 4 << 20
	}
	if lossLevel > 0 || r.IntN(4) == 0 {
		ep.faults = drawFaults(r, lossLevel)
	}
	return ep
}

func drawFaults(r *rand.Rand, lossLevel float64) *fault.Config {
	pick := func(p, v float64) float64 {
		if r.Float64() < p {
			return v
		}
		return 0
	}
	f := &fault.Config{Seed: r.Uint64()}
	f.Send.Loss = lossLevel * (0.5 + r.Float64()/2)
	f.Send.Duplicate = pick(0.4, r.Float64()*0.10)
	f.Send.Reorder = pick(0.4, r.Float64()*0.20)
	f.Send.Corrupt = pick(0.3, r.Float64()*0.05)
	if r.IntN(3) == 0 {
		f.Send.Delay = time.Duration(r.IntN(1000)) * time.Microsecond
		f.Send.Jitter = time.Duration(r.IntN(2000)) * time.Microsecond
	}
	if r.IntN(3) == 0 {
		f.Send.EAGAINBurst = fault.Burst{P: r.Float64() * 0.05, Len: 1 + r.IntN(20)}
	}
	if r.IntN(3) == 0 {
		f.Recv.OverrunBurst = fault.Burst{P: r.Float64() * 0.03, Len: r.IntN(8)}
	}
	if r.IntN(5) == 0 {
		f.Recv.Duplicate = r.Float64() * 0.05
	}
	return f
}

func drawSession(r *rand.Rand, p *runPlan, id int) *sessPlan {
	a := r.IntN(len(p.eps))
	b := (a + 1 + r.IntN(len(p.eps)-1)) % len(p.eps)
	s := &sessPlan{id: id, ch: transport.CbID{Idx: channelIdx, Val: uint32(id + 1)}, ep: [2]int{a, b}}
	s.simOpen = r.IntN(100) < 4
	ca, cb := &p.eps[a].cfg, &p.eps[b].cfg
	maxSize := min(ca.MaxMessage, cb.MaxMessage)
	bigP := []float64{0, 0, 0, 0.01, 0.01, 0.2}[r.IntN(6)]
	primary := r.IntN(2) // the side whose stream the ending is about
	for i := range 2 {
		key := splitmix(p.seed ^ splitmix(uint64(id)<<1|uint64(i)))
		sp := &sidePlan{out: stream{key: key, max: maxSize, bigP: bigP}, oversizeAt: -1}
		n := 0
		if i == primary || r.IntN(100) < 35 {
			n = drawCount(r)
		}
		// Through a small window on a lossy path every loss costs a
		// retransmission timeout: keep such streams short, so that the
		// run is, without changing what it tests.
		if lossy(p.eps[a]) || lossy(p.eps[b]) {
			n = min(n, max(30, 10*min(ca.Window, cb.Window)))
		}
		// So does a tiny receive buffer with tiny datagrams: the
		// receiver's queue holds a handful of messages and the sender
		// spends its time in EAGAIN backoff.
		if rcvEp := p.eps[[2]int{b, a}[i]]; rcvEp.readBuf > 0 && rcvEp.readBuf < 1<<20 && min(ca.MaxDatagram, cb.MaxDatagram) < 4096 {
			n = min(n, 300)
		}
		drawOps(r, sp, n)
		sp.reader = drawReader(r)
		s.side[i] = sp
	}
	drawEnding(r, s, primary)
	return s
}

func lossy(e epPlan) bool { return e.faults != nil && e.faults.Send.Loss > 0 }

// drawCount is a stream length: 0..~3000, mostly short so that runs are.
func drawCount(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 8:
		return 0
	case x < 40:
		return 1 + r.IntN(30)
	case x < 85:
		return 31 + r.IntN(470)
	default:
		return 501 + r.IntN(2500)
	}
}

// maxStreamBytes keeps a run short: huge messages make shorter streams.
const maxStreamBytes = 3 << 20

func drawOps(r *rand.Rand, sp *sidePlan, n int) {
	reqP := []float64{0, 0, 0.01, 0.05}[r.IntN(4)]
	flushP := []float64{0, 0.005, 0.02}[r.IntN(3)]
	batchP := r.Float64()
	maxBatch := 2 + r.IntN(63)
	requests, bytes := 0, 0
	pos := 0
	for pos < n && bytes < maxStreamBytes {
		switch x := r.Float64(); {
		case x < reqP && requests < 20:
			sp.ops = append(sp.ops, op{kind: opRequest, n: 1})
			requests++
		case x < reqP+flushP:
			sp.ops = append(sp.ops, op{kind: opFlush})
			continue
		case x < reqP+flushP+batchP*(1-reqP-flushP):
			k := min(n-pos, 1+r.IntN(maxBatch))
			sp.ops = append(sp.ops, op{kind: opBatch, n: k})
		default:
			sp.ops = append(sp.ops, op{kind: opSend, n: 1})
		}
		o := sp.ops[len(sp.ops)-1]
		for range o.n {
			sp.isReq = append(sp.isReq, o.kind == opRequest)
			bytes += sp.out.size(pos)
			pos++
		}
	}
	sp.msgs = pos
	if r.IntN(100) < 15 {
		sp.shortCtx = time.Duration(100+r.IntN(5000)) * time.Microsecond
	}
	if r.IntN(100) < 10 {
		sp.oversizeAt = r.IntN(pos + 1)
	}
}

func drawReader(r *rand.Rand) readerPlan {
	var rp readerPlan
	switch x := r.IntN(100); {
	case x < 28:
		rp.kind = readFast
	case x < 50:
		rp.kind, rp.batch = readBatch, 1+r.IntN(128)
	case x < 65:
		rp.kind = readSlow
		lo := 10 + r.IntN(100)
		rp.slow = [2]time.Duration{time.Duration(lo) * time.Microsecond, time.Duration(lo+r.IntN(200-lo+1)) * time.Microsecond}
	case x < 80:
		rp.kind = readStalled
		rp.stalls = make(map[int]time.Duration)
		for range 1 + r.IntN(2) {
			rp.stalls[r.IntN(1000)] = ms(r, 50, 500)
		}
	case x < 92:
		rp.kind = readVanish // the action that follows is drawn with the ending
	default:
		rp.kind = readStopAtDone
	}
	return rp
}

// drawEnding gives the session the actions that end it. Whatever is
// drawn, some action is sure to fire, so every session has an end.
func drawEnding(r *rand.Rand, s *sessPlan, primary int) {
	snd, rcv := s.side[primary], s.side[1-primary]
	add := func(sp *sidePlan, a action) { sp.actions = append(sp.actions, a) }
	closeOrAbort := func() actKind { return actKind(r.IntN(2)) }
	// Readers count plain messages (requests go to another goroutine).
	readPoint := func() int { return r.IntN(snd.plain() + 1) }
	switch x := r.IntN(100); {
	case x < 42:
		s.ending = "sender closes after its last send"
		add(snd, action{what: actClose, when: afterSends, flush: r.IntN(100) < 30})
	case x < 50:
		s.ending = "sender closes mid-stream (from another goroutine)"
		add(snd, action{what: actClose, when: atTime, at: ms(r, 0, 150)})
	case x < 62:
		s.ending = "sender aborts mid-stream"
		if r.IntN(2) == 0 {
			add(snd, action{what: actAbort, when: afterOps, n: r.IntN(len(snd.ops) + 1)})
		} else {
			add(snd, action{what: actAbort, when: atTime, at: ms(r, 0, 150)})
		}
	case x < 80:
		what := closeOrAbort()
		s.ending = [...]string{"receiver closes mid-stream", "receiver aborts mid-stream"}[what]
		if r.IntN(2) == 0 {
			add(rcv, action{what: what, when: afterRead, n: readPoint(), at: ms(r, 0, 50)})
		} else {
			add(rcv, action{what: what, when: atTime, at: ms(r, 0, 150)})
		}
		if r.IntN(2) == 0 { // and the sender races it with its own close
			add(snd, action{what: actClose, when: afterSends})
		}
	case x < 92:
		s.ending = "both close at once"
		add(snd, action{what: actClose, when: afterBothSent})
		add(rcv, action{what: actClose, when: afterBothSent})
	default:
		s.ending = "sender closes, then the receiver closes after Done"
		add(snd, action{what: actClose, when: afterSends})
		add(rcv, action{what: actClose, when: afterRead, n: math.MaxInt})
	}
	// A vanishing reader stops for good and then ends its side itself.
	for _, sp := range s.side {
		if sp.reader.kind == readVanish {
			peer := s.side[0]
			if sp == peer {
				peer = s.side[1]
			}
			sp.reader.vanishAfter = r.IntN(peer.plain() + 1)
			add(sp, action{what: closeOrAbort(), when: afterRead, n: sp.reader.vanishAfter, at: ms(r, 0, 150)})
		}
	}
}
