//go:build linux && cnlink_floods

package hostile

// Case 5: floods during a legitimate stream. These compare stream rates
// with and without a flood, which a busy machine (go test ./... running
// packages side by side under -race) turns into noise: so they carry the
// build tag cnlink_floods, and `make test` runs them on their own after
// the other tests (`make hostile-floods`).
//
// Case 5: floods during a legitimate stream. Each test streams both ways,
// then alternates unflooded and flooded periods (floodRounds of
// floodPeriod each: about 2 s of flood in all) and compares the stream's
// rate in the two; it must keep at least half. The rates, the flood's
// size and the memory figures are logged for the issue notes.

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

const (
	floodRounds = 4
	floodPeriod = 500 * time.Millisecond
)

// pace calls send about perSec times a second until ctx ends and
// returns how many times it did.
func pace(ctx context.Context, perSec float64, send func(i int)) int {
	start, n := time.Now(), 0
	for ctx.Err() == nil {
		due := int(time.Since(start).Seconds() * perSec)
		for ; n < due && ctx.Err() == nil; n++ {
			send(n)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return n
}

// pool prebuilds n datagrams with build, so that the flooder spends its
// time in sendto, not in encoding: the rates compare the victim's cost,
// not the attacker's (which shares the machine).
func pool(n int, build func(i int) []byte) [][]byte {
	p := make([][]byte, n)
	for i := range p {
		p[i] = build(i)
	}
	return p
}

// floodSetup is the common part: the pair streaming both ways.
func floodSetup(t *testing.T) (*legit, []*flow) {
	l := newLegit(t, nil)
	flows := []*flow{
		startFlow("peer→victim", 0x7777, l.ps, l.vs),
		startFlow("victim→peer", 0x8888, l.vs, l.ps),
	}
	time.Sleep(200 * time.Millisecond) // past the start
	return l, flows
}

// floodEnd finishes the streams and checks the session.
func floodEnd(t *testing.T, l *legit, flows []*flow, mem *memWatch, what string, memBound uint64) {
	t.Helper()
	l.alive(t, "after the flood")
	for _, f := range flows {
		f.finish(t)
	}
	l.alive(t, "at the end")
	mem.check(t, what, memBound)
	l.closeGracefully(t)
}

// RST flood from a third port: RSTs with random epochs, nlmsg_pid the
// peer's, answering the DSNs in flight. None ends the session; each is
// rejected as no_session and draws no answer.
func TestFloodRST(t *testing.T) {
	l, flows := floodSetup(t)
	a := newAttacker(t)
	pid, vport := l.p.LocalPort(), l.v.LocalPort()
	mem := watchMem()
	st0 := l.v.Stats()
	const perDgram, dgramsPerSec = 32, 2000
	var frames atomic.Int64
	rng := rand.New(rand.NewPCG(5, 1))
	v := l.tap.view()
	dgrams := pool(256, func(int) []byte {
		var b []byte
		for k := range perDgram {
			b = frame(b, wire.Frame{ID: reliable.DefaultChannel, Port: pid, Seq: uint32(v.victimNext) + uint32(k), Ack: rng.Uint32(), Type: wire.TypeRst, Arg: wire.RstAbort}, nil, nil)
		}
		return b
	})
	off, on, ft := l.abMeasure(floodRounds, floodPeriod, flows, func(ctx context.Context) {
		pace(ctx, dgramsPerSec, func(i int) {
			a.send(t, vport, dgrams[i%len(dgrams)])
			frames.Add(perDgram)
		})
	})
	st1 := settle(l.v, st0, "no_session", uint64(frames.Load()))
	d := rejectedDelta(st0, st1)
	t.Logf("RST flood: %d RST frames in %d datagrams over %v (%.0f frames/s; %d datagrams refused busy); victim Rejected delta %v; answers at the attacker %d",
		frames.Load(), a.sent.Load(), ft.Round(time.Millisecond), float64(frames.Load())/ft.Seconds(), a.busy.Load(), d, a.dgrams.Load())
	checkRates(t, "RST flood", flows, off, on)
	if a.busy.Load() == 0 && d["no_session"] != uint64(frames.Load()) {
		t.Errorf("Rejected[no_session] grew by %d, want %d", d["no_session"], frames.Load())
	}
	if n := a.dgrams.Load(); n != 0 {
		t.Errorf("the victim answered RSTs with %d datagrams", n)
	}
	floodEnd(t, l, flows, mem, "RST flood", 8<<20)
}

// ACK flood, from both sides of the fence: a third port sends ACKs with
// guessed epochs, 32 SACK ranges each (rejected as no_session), and from
// inside the session the peer's latest ACK is replayed over and over (a
// hostile peer, or a path duplicating ACKs wildly): stale duplicates the
// victim must absorb without disturbing its stream.
func TestFloodACK(t *testing.T) {
	l, flows := floodSetup(t)
	a := newAttacker(t)
	pid, vport := l.p.LocalPort(), l.v.LocalPort()
	mem := watchMem()
	st0, vs0 := l.v.Stats(), l.vs.Stats()
	const perDgram, dgramsPerSec = 16, 1000
	var outside, inside atomic.Int64
	rng := rand.New(rand.NewPCG(5, 2))
	v := l.tap.view()
	dgrams := pool(256, func(int) []byte {
		var b []byte
		var rs []wire.Range
		for k := range uint32(32) {
			rs = append(rs, wire.Range{Start: uint32(v.victimNext) - 64*k, End: uint32(v.victimNext) - 64*k + 32})
		}
		body := ackBody(uint32(v.victimNext)+1<<20, rs...)
		for range perDgram {
			b = frame(b, wire.Frame{ID: reliable.DefaultChannel, Port: pid, Seq: uint32(v.peerNext) - 1, Ack: rng.Uint32(), Type: wire.TypeAck, Arg: uint32(v.victimNext)}, body, nil)
		}
		return b
	})
	off, on, ft := l.abMeasure(floodRounds, floodPeriod, flows, func(ctx context.Context) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			var b []byte
			pace(ctx, dgramsPerSec, func(int) {
				b = l.tap.replayAck(b[:0], perDgram)
				if len(b) > 0 {
					l.tap.inject(t, b)
					inside.Add(perDgram)
				}
			})
		}()
		pace(ctx, dgramsPerSec, func(i int) {
			a.send(t, vport, dgrams[i%len(dgrams)])
			outside.Add(perDgram)
		})
		<-done
	})
	st1, vs1 := settle(l.v, st0, "no_session", uint64(outside.Load())), l.vs.Stats()
	d := rejectedDelta(st0, st1)
	t.Logf("ACK flood: %d ACKs with 32 ranges from a third port, %d replays of the peer's ACK from its port, over %v (%.0f ACKs/s; busy: %d outside, %d inside); victim Rejected delta %v; victim retransmits +%d, spurious +%d",
		outside.Load(), inside.Load(), ft.Round(time.Millisecond), float64(outside.Load()+inside.Load())/ft.Seconds(), a.busy.Load(), l.tap.injectBusy.Load(),
		d, vs1.Retransmits-vs0.Retransmits, st1.SpuriousRetransmits-st0.SpuriousRetransmits)
	checkRates(t, "ACK flood", flows, off, on)
	if a.busy.Load() == 0 && d["no_session"] != uint64(outside.Load()) {
		t.Errorf("Rejected[no_session] grew by %d, want %d", d["no_session"], outside.Load())
	}
	if inside.Load() == 0 {
		t.Errorf("no ACK was replayed from inside the session")
	}
	floodEnd(t, l, flows, mem, "ACK flood", 8<<20)
}

// DATA flood to unknown sessions: a third port sends DATA on the default
// channel and on random ones, none with a session. Each would be
// answered with RST 2; the answers are limited to 1000 a second with a
// burst of 100 per endpoint, the rest suppressed and counted.
func TestFloodUnknownData(t *testing.T) {
	l, flows := floodSetup(t)
	a := newAttacker(t)
	vport := l.v.LocalPort()
	mem := watchMem()
	st0 := l.v.Stats()
	const perDgram, dgramsPerSec = 32, 2000
	var frames atomic.Int64
	rng := rand.New(rand.NewPCG(5, 3))
	payload := forged("unknown session", 0)
	dgrams := pool(256, func(int) []byte {
		var b []byte
		for k := range perDgram {
			ch := reliable.DefaultChannel
			if k%2 == 1 {
				ch = transport.CbID{Idx: 0x434e4c4b, Val: rng.Uint32()}
			}
			b = frame(b, wire.Frame{ID: ch, Port: a.port(), Seq: rng.Uint32(), Ack: rng.Uint32(), Type: wire.TypeData}, nil, payload)
		}
		return b
	})
	start := time.Now()
	off, on, ft := l.abMeasure(floodRounds, floodPeriod, flows, func(ctx context.Context) {
		pace(ctx, dgramsPerSec, func(i int) {
			a.send(t, vport, dgrams[i%len(dgrams)])
			frames.Add(perDgram)
		})
	})
	st1 := settle(l.v, st0, "no_session", uint64(frames.Load()))
	secs := time.Since(start).Seconds()
	d := rejectedDelta(st0, st1)
	sent, suppressed := st1.ResetsSent-st0.ResetsSent, st1.ResetsSuppressed-st0.ResetsSuppressed
	limit := 100 + uint64(1000*secs)
	t.Logf("DATA flood: %d DATA frames to unknown sessions in %d datagrams over %v flooded, %.2fs in all (%.0f frames/s flooded; %d refused busy); victim Rejected delta %v; ResetsSent +%d (limit %d), ResetsSuppressed +%d; RSTs at the attacker %d",
		frames.Load(), a.sent.Load(), ft.Round(time.Millisecond), secs, float64(frames.Load())/ft.Seconds(), a.busy.Load(), d, sent, limit, suppressed, a.frames[wire.TypeRst].Load())
	checkRates(t, "DATA flood", flows, off, on)
	if sent > limit {
		t.Errorf("ResetsSent grew by %d in %.2fs, above 100 + 1000/s = %d", sent, secs, limit)
	}
	if got := a.frames[wire.TypeRst].Load(); got > limit {
		t.Errorf("the attacker received %d RSTs in %.2fs, above 100 + 1000/s = %d", got, secs, limit)
	}
	if suppressed == 0 {
		t.Errorf("ResetsSuppressed did not move")
	}
	if a.busy.Load() == 0 && d["no_session"] != uint64(frames.Load()) {
		t.Errorf("Rejected[no_session] grew by %d, want %d", d["no_session"], frames.Load())
	}
	if sent+suppressed != uint64(frames.Load()) && a.busy.Load() == 0 {
		t.Errorf("%d RSTs sent + %d suppressed for %d frames", sent, suppressed, frames.Load())
	}
	floodEnd(t, l, flows, mem, "DATA flood", 8<<20)
}

// SYN flood: thousands of SYNs with random epochs from a third port, on
// the default channel. Each new epoch from the port replaces the session
// the previous one opened (the old peer is gone), until the accept
// backlog (64, nobody calls Accept during the flood) is full: from then
// on SYNs are refused (RST 3, rate-limited). Memory is bounded by the
// backlog; afterwards Accept skips every dead session in it and returns
// nothing dead, and a legitimate dialer gets in.
func TestFloodSYN(t *testing.T) {
	l, flows := floodSetup(t)
	a := newAttacker(t)
	vport := l.v.LocalPort()
	mem := watchMem()
	st0 := l.v.Stats()
	const perDgram, dgramsPerSec = 16, 500
	var syns atomic.Int64
	rng := rand.New(rand.NewPCG(5, 4))
	dgrams := pool(2000, func(int) []byte { // every SYN with its own epoch
		var b []byte
		for range perDgram {
			epoch := rng.Uint32() | 1
			isn := rng.Uint32()
			b = frame(b, wire.Frame{ID: reliable.DefaultChannel, Port: a.port(), Seq: isn, Ack: epoch, Type: wire.TypeSyn},
				synBody(wire.Syn{Epoch: epoch, ISN: isn, Window: 1 << 20, MaxMessage: 65523, MaxDatagram: 1 << 20}), nil)
		}
		return b
	})
	start := time.Now()
	off, on, ft := l.abMeasure(floodRounds, floodPeriod, flows, func(ctx context.Context) {
		pace(ctx, dgramsPerSec, func(i int) {
			a.send(t, vport, dgrams[i%len(dgrams)])
			syns.Add(perDgram)
		})
	})
	st1 := settle(l.v, st0, "refused", uint64(syns.Load())-64)
	secs := time.Since(start).Seconds()
	d := rejectedDelta(st0, st1)
	rsts := st1.ResetsSent - st0.ResetsSent
	t.Logf("SYN flood: %d SYNs in %d datagrams over %v flooded (%.0f SYNs/s; %d refused busy); victim Rejected delta %v; SYNACKs at the attacker %d, RSTs %d (ResetsSent +%d, suppressed +%d)",
		syns.Load(), a.sent.Load(), ft.Round(time.Millisecond), float64(syns.Load())/ft.Seconds(), a.busy.Load(), d,
		a.frames[wire.TypeSynAck].Load(), a.frames[wire.TypeRst].Load(), rsts, st1.ResetsSuppressed-st0.ResetsSuppressed)
	checkRates(t, "SYN flood", flows, off, on)
	if limit := 100 + uint64(1000*secs); rsts > limit {
		t.Errorf("ResetsSent grew by %d in %.2fs, above %d", rsts, secs, limit)
	}
	if d["refused"] == 0 {
		t.Errorf("no SYN was refused: the backlog did not fill")
	}
	if n := a.frames[wire.TypeSynAck].Load(); n > 64+16 {
		t.Errorf("%d SYNACKs: more sessions opened than the backlog of 64 holds", n)
	}
	if got, want := d["refused"], uint64(syns.Load())-a.frames[wire.TypeSynAck].Load(); a.busy.Load() == 0 && got != want {
		t.Errorf("Rejected[refused] grew by %d, want %d (every SYN but the %d answered)", got, want, a.frames[wire.TypeSynAck].Load())
	}
	// Memory: the backlog's sessions (dead, but held until Accept takes
	// them) are the flood's whole cost. A session that received no data
	// holds small rings (they grow with the data) and its channels: the
	// bound allows 128 KiB each.
	mem.check(t, "SYN flood (backlog full)", 8<<20+64*(128<<10))

	// Accept skips the dead sessions.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	accepted := 0
	for {
		s, err := l.v.Accept(ctx)
		if err != nil {
			break
		}
		accepted++
		if s.Peer() != a.port() {
			t.Errorf("Accept returned a session from port %d (attacker %d)", s.Peer(), a.port())
		}
		if err := s.Err(); err != nil {
			t.Errorf("Accept returned a dead session: %v", err)
		}
		s.Abort()
	}
	cancel()
	t.Logf("after the flood, Accept returned %d live sessions from the attacker", accepted)

	// A legitimate dialer gets in.
	tc, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := reliable.NewEndpoint(tc, nil)
	if err != nil {
		tc.Close()
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accErr := make(chan error, 1)
	go func() {
		s, err := l.v.Accept(ctx)
		if err == nil && s.Peer() != c.LocalPort() {
			err = errors.New("accepted a session from another port")
		}
		if err == nil {
			s.Abort()
		}
		accErr <- err
	}()
	if _, err := c.Dial(ctx, vport, transport.CbID{}); err != nil {
		t.Errorf("a legitimate Dial after the flood: %v", err)
	}
	if err := <-accErr; err != nil {
		t.Errorf("accepting the legitimate dialer: %v", err)
	}
	floodEnd(t, l, flows, watchMem(), "SYN flood (after)", 8<<20)
}

// STATUS_REQ amplification from inside the session: the peer's socket
// sends PINGs and ACKs with STATUS_REQ as fast as a small frame goes,
// each asking the victim to retransmit everything it has in flight. The
// victim repairs at most once per round trip, so what it sends back stays
// within a window per round trip; the stream keeps its pace.
func TestFloodStatusReq(t *testing.T) {
	l, flows := floodSetup(t)
	mem := watchMem()
	st0, vs0 := l.v.Stats(), l.vs.Stats()
	rx0 := l.tap.rxBytes.Load()
	var reqs, reqBytes atomic.Int64
	rtt := &rttWatch{}
	off, on, ft := l.abMeasure(floodRounds, floodPeriod, flows, func(ctx context.Context) {
		done := make(chan struct{})
		go func() { defer close(done); rtt.sample(ctx, l) }()
		n, b := statusReqFlood(ctx, t, l, 10000)
		reqs.Add(n)
		reqBytes.Add(b)
		<-done
	})
	time.Sleep(50 * time.Millisecond)
	st1, vs1 := l.v.Stats(), l.vs.Stats()
	back := l.tap.rxBytes.Load() - rx0
	repairs := vs1.StatusRepair - vs0.StatusRepair
	retrans := vs1.Retransmits - vs0.Retransmits
	minRTT, srttMean := rtt.min(), rtt.mean()
	frameBytes := uint64(transport.FrameLen(wire.HeaderLen + msgSize))
	t.Logf("STATUS_REQ flood: %d requests (%d bytes) over %v (%.0f/s; %d refused busy); victim: %d repairs, %d retransmits (%d bytes), sent %d bytes to the peer in all (BytesSent +%d); round trip (SRTT of either side, sampled) min %v mean %v, victim's own SRTT at the end %v; Rejected delta %v",
		reqs.Load(), reqBytes.Load(), ft.Round(time.Millisecond), float64(reqs.Load())/ft.Seconds(), l.tap.injectBusy.Load(),
		repairs, retrans, retrans*frameBytes, back, st1.BytesSent-st0.BytesSent, minRTT, srttMean, vs1.SRTT, rejectedDelta(st0, st1))
	if reqBytes.Load() > 0 {
		t.Logf("STATUS_REQ flood: amplification: %.1f retransmitted bytes per request byte", float64(retrans*frameBytes)/float64(reqBytes.Load()))
	}
	if rtt.noSample > 0 {
		t.Logf("STATUS_REQ flood: in %d of the samples the victim had no RTT sample (its SRTT was RTTConfig.Initial)", rtt.noSample)
	}
	checkRates(t, "STATUS_REQ flood", flows, off, on)
	if repairs > 0 {
		t.Logf("STATUS_REQ flood: %.0f bytes retransmitted per honoured request (%.0f x its %d bytes)",
			float64(retrans*frameBytes)/float64(repairs), float64(retrans*frameBytes)/float64(repairs)/float64(reqBytes.Load()/reqs.Load()), reqBytes.Load()/reqs.Load())
	}
	if minRTT > 0 && srttMean > 0 {
		// At most one repair per round trip: each flooded period starts
		// with one, then one per round trip at most. The round trip is
		// sampled every 5 ms, so its minimum may be missed: 1.5 x slack.
		if bound := 1.5*ft.Seconds()/minRTT.Seconds() + 2*floodRounds; float64(repairs) > bound {
			t.Errorf("%d repairs in %v with SRTT >= %v (sampled): more than one per round trip (bound %.0f)", repairs, ft, minRTT, bound)
		}
		// What the victim sends back stays within a small factor of one
		// window per round trip.
		rounds := ft.Seconds() / srttMean.Seconds()
		perRound := float64(retrans*frameBytes) / rounds
		windowBytes := float64(windowSize * frameBytes)
		t.Logf("STATUS_REQ flood: %.0f round trips of %v: %.0f bytes retransmitted per round trip, %.2f windows", rounds, srttMean, perRound, perRound/windowBytes)
		if perRound > 2*windowBytes {
			t.Errorf("the victim retransmitted %.0f bytes per round trip, %.1f windows (bound: 2)", perRound, perRound/windowBytes)
		}
	} else {
		t.Errorf("no round trip measured on either side during the flood")
	}
	floodEnd(t, l, flows, mem, "STATUS_REQ flood", 8<<20)
}

// rttWatch samples the round trip of the session's path: the SRTT of
// either side (a side without an RTT sample reports 0 and is skipped).
type rttWatch struct {
	mu       sync.Mutex
	lo       time.Duration
	sum      time.Duration
	n        int
	noSample int // samples where the victim had no RTT sample
}

func (w *rttWatch) sample(ctx context.Context, l *legit) {
	for ctx.Err() == nil {
		v, p := l.vs.Stats().SRTT, l.ps.Stats().SRTT
		w.mu.Lock()
		if v == 0 {
			w.noSample++
		}
		for _, r := range []time.Duration{v, p} {
			if r > 0 {
				if w.n == 0 || r < w.lo {
					w.lo = r
				}
				w.sum += r
				w.n++
			}
		}
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *rttWatch) min() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lo
}

func (w *rttWatch) mean() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		return 0
	}
	return w.sum / time.Duration(w.n)
}

// statusReqFlood sends PINGs and ACKs with STATUS_REQ from the peer's
// socket, perSec a second, until ctx ends; it returns requests and bytes.
func statusReqFlood(ctx context.Context, t *testing.T, l *legit, perSec float64) (n, bytes int64) {
	pid := l.p.LocalPort()
	var ping, ack []byte
	pace(ctx, perSec, func(i int) {
		if i%500 == 0 { // what the peer would send now (cheap to build)
			v := l.tap.view()
			ping = frame(ping[:0], wire.Frame{ID: reliable.DefaultChannel, Port: pid, Seq: uint32(v.peerNext), Ack: v.peerEpoch, Type: wire.TypePing, Flags: wire.FlagStatusReq}, nil, nil)
			ack = frame(ack[:0], wire.Frame{ID: reliable.DefaultChannel, Port: pid, Seq: uint32(v.peerNext) - 1, Ack: v.victimEpoch + 1, Type: wire.TypeAck, Flags: wire.FlagStatusReq, Arg: v.cum},
				ackBody(v.cum+windowSize), nil)
		}
		b := ping
		if i%2 == 1 {
			b = ack
		}
		l.tap.inject(t, b)
		n++
		bytes += int64(len(b))
	})
	return n, bytes
}

// STATUS_REQ amplification from the start of the session: the same flood
// as TestFloodStatusReq, but it begins before the victim has measured a
// round trip, and runs for the first 2 s of the streams. The unflooded
// reference is a fresh pair measured the same way (its first 2 s, from
// the session's start) just before, whose SRTT is the real round trip.
// The victim must still repair at most once per real round trip,
// resending at most a small factor of one window per round trip, and
// keep half its rate.
//
// (Before its first RTT sample a session's SRTT is RTTConfig.Initial,
// 2 ms; the flood makes every record a retransmission within that time,
// so under Karn's rule no sample ever comes while it lasts.)
func TestFloodStatusReqFromStart(t *testing.T) {
	const period = 2 * time.Second
	// The reference: a pair without flood.
	ref := newLegit(t, nil)
	refFlows := []*flow{
		startFlow("peer→victim", 0xcccc, ref.ps, ref.vs),
		startFlow("victim→peer", 0xdddd, ref.vs, ref.ps),
	}
	t0 := time.Now()
	time.Sleep(period)
	off := []float64{float64(refFlows[0].got.Load()) / time.Since(t0).Seconds(), float64(refFlows[1].got.Load()) / time.Since(t0).Seconds()}
	rtt := ref.vs.Stats().SRTT
	if rtt == 0 {
		rtt = ref.ps.Stats().SRTT
	}
	for _, f := range refFlows {
		f.finish(t)
	}
	ref.closeGracefully(t)

	// The flooded pair.
	l := newLegit(t, nil)
	mem := watchMem()
	vs0 := l.vs.Stats()
	rx0 := l.tap.rxBytes.Load()
	ctx, cancel := context.WithTimeout(context.Background(), period+10*time.Millisecond)
	defer cancel()
	var reqs, reqBytes int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		reqs, reqBytes = statusReqFlood(ctx, t, l, 10000)
	}()
	time.Sleep(10 * time.Millisecond) // the flood first
	l.event("flood on")
	flows := []*flow{
		startFlow("peer→victim", 0xcccc, l.ps, l.vs),
		startFlow("victim→peer", 0xdddd, l.vs, l.ps),
	}
	t0 = time.Now()
	<-done
	floodTime := time.Since(t0)
	on := []float64{float64(flows[0].got.Load()) / floodTime.Seconds(), float64(flows[1].got.Load()) / floodTime.Seconds()}
	vs1 := l.vs.Stats()
	back := l.tap.rxBytes.Load() - rx0
	l.event("flood off: victim session %+v", vs1)
	repairs := vs1.StatusRepair - vs0.StatusRepair
	retrans := vs1.Retransmits - vs0.Retransmits
	frameBytes := uint64(transport.FrameLen(wire.HeaderLen + msgSize))
	t.Logf("STATUS_REQ flood from the start: %d requests (%d bytes) in %v; victim: %d repairs, %d retransmits (%d bytes), %d bytes sent to the peer, %d messages sent; victim SRTT at the flood's end %v (0: no sample yet); round trip of the unflooded reference %v",
		reqs, reqBytes, floodTime.Round(time.Millisecond), repairs, retrans, retrans*frameBytes, back, vs1.Sent, vs1.SRTT, rtt)
	checkRates(t, "STATUS_REQ flood from the start", flows, off, on)
	if rtt <= 0 {
		t.Errorf("no round trip measured on the unflooded reference")
	} else {
		rounds := floodTime.Seconds() / rtt.Seconds()
		windowBytes := float64(windowSize * frameBytes)
		perRound := float64(retrans*frameBytes) / rounds
		t.Logf("STATUS_REQ flood from the start: %.0f round trips of %v in the flood: %.1f repairs and %.0f bytes (%.2f windows) retransmitted per round trip",
			rounds, rtt, float64(repairs)/rounds, perRound, perRound/windowBytes)
		if bound := 1.5*rounds + 2; float64(repairs) > bound {
			t.Errorf("%d repairs in %v, with a round trip of %v: more than one per round trip (bound %.0f)", repairs, floodTime.Round(time.Millisecond), rtt, bound)
		}
		if perRound > 2*windowBytes {
			t.Errorf("the victim retransmitted %.0f bytes per round trip, %.1f windows (bound: 2)", perRound, perRound/windowBytes)
		}
	}
	floodEnd(t, l, flows, mem, "STATUS_REQ flood from the start", 8<<20)
}
