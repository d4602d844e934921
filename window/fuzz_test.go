package window

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"
)

// FuzzSenderReceiver drives a Sender and a Receiver connected by two lossy,
// reordering, duplicating channels with a stream of operations taken from
// the input, and checks both against the reference models of model_test.go
// after every operation, plus the structural invariants of each. In the
// honest mode it finally repairs everything and checks that every message
// was delivered exactly once, in order, and released exactly once; in the
// hostile mode forged acknowledgements are mixed in, and it checks that
// nothing panics, nothing is released twice and the models still agree.
func FuzzSenderReceiver(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzOps(t, data)
	})
}

// fuzzSeeds are inputs that reach the interesting states quickly; the
// committed corpus under testdata/fuzz holds more.
func fuzzSeeds() [][]byte {
	return [][]byte{
		{},
		// In-order exchange.
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 4, 6, 0, 7, 0},
		// Loss of the first of four, SACK, packet threshold, retransmit.
		{0x00, 0x10, 0x03, 0x01, 0, 0, 0, 0, 3, 0, 1, 0, 1, 0, 1, 0, 6, 0, 9, 4, 7, 0, 10, 1, 0, 4, 6, 0, 7, 0},
		// Near 2^32, hostile acks.
		{0x81, 0x40, 0x07, 0x05, 0, 0, 0, 0, 0, 0, 15, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 0, 15, 9, 9, 9, 9, 9, 9, 9, 9},
		// Timeouts, duplicates, clock.
		{0x02, 0x05, 0x02, 0x02, 0, 0, 0, 0, 2, 0, 2, 0, 9, 50, 11, 10, 1, 1, 0, 6, 0, 7, 0, 13, 14, 20, 9, 200, 13},
	}
}

type fuzzFrame struct {
	seq Seq
	val uint64
}

type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) done() bool { return len(r.b) == 0 }

type fuzzRun struct {
	t        *testing.T
	hostile  bool
	now      time.Duration
	snd      *Sender[uint64]
	rcv      *Receiver[uint64]
	ms       *refSender
	mr       *refReceiver
	data     []fuzzFrame // sender to receiver
	acks     []Ack       // receiver to sender
	pushed   uint64      // values 0..pushed-1 were pushed
	popped   uint64      // values 0..popped-1 were popped, in this order
	released map[Seq]bool
	received map[Seq]bool // ever accepted by the receiver
	log      []string
}

func (fr *fuzzRun) fatalf(format string, args ...any) {
	fr.t.Helper()
	start := max(len(fr.log)-30, 0)
	fr.t.Fatalf("%s\nlast operations:\n  %s", fmt.Sprintf(format, args...), joinLines(fr.log[start:]))
}

func joinLines(l []string) string {
	s := ""
	for i, x := range l {
		if i > 0 {
			s += "\n  "
		}
		s += x
	}
	return s
}

func runFuzzOps(t *testing.T, data []byte) { runFuzzOpsRing(t, data, 0) }

// runFuzzOpsRing is runFuzzOps with rings that start at initial slots (0: as
// NewSender and NewReceiver start them).
func runFuzzOpsRing(t *testing.T, data []byte, initial int) {
	r := &fuzzReader{b: data}
	// Configuration from the first bytes.
	mode := r.byte()
	isns := []Seq{0, 0xFFFFFFF0, 0x7FFFFFF8, 0xFFFFFFFF}
	var isn Seq
	if i := int(mode>>1) & 7; i < len(isns) {
		isn = isns[i]
	} else {
		isn = Seq(binary.LittleEndian.Uint32([]byte{r.byte(), r.byte(), r.byte(), r.byte()}))
	}
	scfg := SenderConfig{
		Window:           1 + int(r.byte())%150,
		PacketThreshold:  1 + int(r.byte())%4,
		ReorderWindowMin: time.Duration(r.byte()%4) * 250 * time.Microsecond,
	}
	if mode&0x20 != 0 {
		scfg.MaxPacketThreshold = -1 // fixed threshold
	}
	if scfg.ReorderWindowMin == 0 {
		scfg.ReorderWindowMin = -1
	}
	rcfg := ReceiverConfig{MaxRanges: 1 + int(r.byte())%8}
	rcfg.Window = scfg.Window
	if mode&0x10 != 0 {
		rcfg.Window = 1 + int(r.byte())%150 // windows that disagree
	}
	fr := &fuzzRun{
		t:        t,
		hostile:  mode&1 != 0,
		snd:      NewSender[uint64](isn, scfg),
		rcv:      NewReceiver[uint64](isn, rcfg),
		ms:       newRefSender(isn, scfg),
		mr:       newRefReceiver(isn, rcfg),
		released: map[Seq]bool{},
		received: map[Seq]bool{},
	}
	if initial != 0 {
		fr.snd, fr.rcv = newSender[uint64](isn, scfg, initial), newReceiver[uint64](isn, rcfg, initial)
	}
	steps := 0
	for !r.done() && steps < 4000 {
		steps++
		fr.step(r)
		fr.checkAll()
	}
	if !fr.hostile {
		fr.repair()
	}
	fr.drain()
}

func (fr *fuzzRun) pick(r *fuzzReader, n int) int { return int(r.byte()) % n }

func (fr *fuzzRun) step(r *fuzzReader) {
	op := r.byte() % 19
	switch op {
	case 0, 16: // push
		if fr.snd.CanSend() != fr.ms.canSend() {
			fr.fatalf("CanSend %v, model %v", fr.snd.CanSend(), fr.ms.canSend())
		}
		if !fr.snd.CanSend() {
			fr.log = append(fr.log, "push: blocked")
			return
		}
		v := fr.pushed
		fr.pushed++
		seq := fr.snd.Push(fr.now, v)
		if mseq := fr.ms.push(fr.now, v); seq != mseq {
			fr.fatalf("Push got %#x, model %#x", uint32(seq), uint32(mseq))
		}
		fr.data = append(fr.data, fuzzFrame{seq, v})
		fr.log = append(fr.log, fmt.Sprintf("push %#x", uint32(seq)))
	case 1, 2, 17: // deliver a data frame; 2 keeps a copy (duplication)
		if len(fr.data) == 0 {
			return
		}
		i := fr.pick(r, len(fr.data))
		f := fr.data[i]
		if op != 2 {
			fr.data = slices.Delete(fr.data, i, i+1)
		}
		got := fr.rcv.Push(f.seq, f.val)
		want := fr.mr.push(f.seq, f.val)
		fr.log = append(fr.log, fmt.Sprintf("deliver %#x: %v", uint32(f.seq), got))
		if got != want {
			fr.fatalf("Receiver.Push(%#x) = %v, model %v", uint32(f.seq), got, want)
		}
		if got == Accepted {
			fr.received[f.seq] = true
		}
	case 3: // drop a data frame
		if len(fr.data) == 0 {
			return
		}
		i := fr.pick(r, len(fr.data))
		fr.log = append(fr.log, fmt.Sprintf("drop %#x", uint32(fr.data[i].seq)))
		fr.data = slices.Delete(fr.data, i, i+1)
	case 4: // pop everything ready
		for fr.popOne() {
		}
	case 5:
		fr.popOne()
	case 6: // the receiver sends an Ack
		backlog := int(r.byte()%8) - 2
		a := fr.rcv.Ack(backlog)
		m := fr.mr.ack(backlog)
		fr.log = append(fr.log, fmt.Sprintf("ack(%d): %s", backlog, fmtAck(a)))
		if !ackEqual(a, m) {
			fr.fatalf("Ack = %s, model %s", fmtAck(a), fmtAck(m))
		}
		fr.acks = append(fr.acks, a.Clone())
	case 7: // the sender takes an Ack
		if len(fr.acks) == 0 {
			return
		}
		i := fr.pick(r, len(fr.acks))
		a := fr.acks[i]
		fr.acks = slices.Delete(fr.acks, i, i+1)
		fr.onAck(a)
	case 8: // an Ack is lost
		if len(fr.acks) == 0 {
			return
		}
		i := fr.pick(r, len(fr.acks))
		fr.acks = slices.Delete(fr.acks, i, i+1)
	case 9:
		fr.now += time.Duration(r.byte()) * 50 * time.Microsecond
		fr.log = append(fr.log, fmt.Sprintf("now %v", fr.now))
	case 10: // retransmit
		seq, v, ok := fr.snd.PopLost(fr.now)
		mseq, mv, mok := fr.ms.popLost(fr.now)
		fr.log = append(fr.log, fmt.Sprintf("poplost %#x %v", uint32(seq), ok))
		if seq != mseq || v != mv || ok != mok {
			fr.fatalf("PopLost = %#x %d %v, model %#x %d %v", uint32(seq), v, ok, uint32(mseq), mv, mok)
		}
		if ok {
			fr.data = append(fr.data, fuzzFrame{seq, v})
		}
	case 11:
		n, m := fr.snd.MarkAllLost(), fr.ms.markAllLost()
		fr.log = append(fr.log, fmt.Sprintf("timeout: %d", n))
		if n != m {
			fr.fatalf("MarkAllLost (timeout) = %d, model %d", n, m)
		}
	case 12:
		if b := r.byte(); b%2 == 0 {
			n, m := fr.snd.MarkAllLost(), fr.ms.markAllLost()
			fr.log = append(fr.log, fmt.Sprintf("markalllost: %d", n))
			if n != m {
				fr.fatalf("MarkAllLost = %d, model %d", n, m)
			}
		} else {
			cutoff := fr.now - time.Duration(b/2)*50*time.Microsecond
			n, m := fr.snd.MarkLostSentBefore(cutoff), fr.ms.markLostSentBefore(cutoff)
			fr.log = append(fr.log, fmt.Sprintf("marklostsentbefore %v: %d", cutoff, n))
			if n != m {
				fr.fatalf("MarkLostSentBefore(%v) = %d, model %d", cutoff, n, m)
			}
		}
	case 13:
		n, m := fr.snd.DetectLoss(fr.now), fr.ms.detect(fr.now, fr.snd.ReorderWindow(), fr.snd.PacketThreshold())
		fr.log = append(fr.log, fmt.Sprintf("detectloss: %d", n))
		if n != m {
			fr.fatalf("DetectLoss = %d, model %d", n, m)
		}
	case 18: // a negative acknowledgement
		base := fr.snd.Base()
		rg := Range{base.Add(int(int8(r.byte()))), 0}
		rg.End = rg.Start.Add(int(int8(r.byte())))
		n, m := fr.snd.MarkLost(rg), fr.ms.markLost(rg)
		fr.log = append(fr.log, fmt.Sprintf("marklost [%#x,%#x]: %d", uint32(rg.Start), uint32(rg.End), n))
		if n != m {
			fr.fatalf("MarkLost = %d, model %d", n, m)
		}
	case 14:
		srtt := time.Duration(r.byte()) * 100 * time.Microsecond
		fr.snd.SetSRTT(srtt)
		fr.log = append(fr.log, fmt.Sprintf("srtt %v", srtt))
	case 15: // a forged Ack, or in honest mode a late duplicate of one
		if !fr.hostile {
			if len(fr.acks) > 0 {
				a := fr.acks[fr.pick(r, len(fr.acks))]
				fr.onAck(a) // the channel duplicated it
			}
			return
		}
		fr.onAck(fr.forgeAck(r))
	}
}

func (fr *fuzzRun) forgeAck(r *fuzzReader) Ack {
	base := fr.snd.Base()
	var a Ack
	if b := r.byte(); b&1 != 0 {
		a.Cum = Seq(binary.LittleEndian.Uint32([]byte{r.byte(), r.byte(), r.byte(), r.byte()}))
	} else {
		a.Cum = base.Add(int(int8(r.byte())))
	}
	a.Limit = a.Cum.Add(int(int8(r.byte())) * 4)
	n := int(r.byte() % 6)
	if n == 5 {
		n = MaxAckRanges + 3 // over the cap
	}
	for range n {
		start := base.Add(int(int8(r.byte())))
		a.Ranges = append(a.Ranges, Range{start, start.Add(int(int8(r.byte())))})
	}
	if b := r.byte(); b&1 != 0 {
		a.DupValid, a.Dup = true, base.Add(int(int8(b)))
	}
	return a
}

func (fr *fuzzRun) popOne() bool {
	v, ok := fr.rcv.Pop()
	mv, mok := fr.mr.popOne()
	if v != mv || ok != mok {
		fr.fatalf("Pop = %d %v, model %d %v", v, ok, mv, mok)
	}
	if ok {
		if v != fr.popped {
			fr.fatalf("Pop delivered %d, want %d: out of order or duplicated", v, fr.popped)
		}
		fr.popped++
		fr.log = append(fr.log, fmt.Sprintf("pop %d", v))
	}
	return ok
}

func (fr *fuzzRun) onAck(a Ack) {
	fr.log = append(fr.log, fmt.Sprintf("onack %s", fmtAck(a)))
	var rel []Seq
	res := fr.snd.OnAck(fr.now, a, func(seq Seq, v uint64) {
		if fr.released[seq] {
			fr.fatalf("%#x released twice", uint32(seq))
		}
		if want := fr.ms.recs[seq]; want == nil || want.val != v {
			fr.fatalf("%#x released with value %d, pushed with %+v", uint32(seq), v, want)
		}
		if !fr.hostile && !fr.received[seq] {
			fr.fatalf("%#x released but never received", uint32(seq))
		}
		fr.released[seq] = true
		rel = append(rel, seq)
	})
	mrel, mres := fr.ms.onAck(fr.now, a)
	if !mres.Ignored {
		mres.NewlyLost = fr.ms.detect(fr.now, fr.snd.ReorderWindow(), fr.snd.PacketThreshold())
	}
	slices.SortFunc(rel, func(a, b Seq) int { return a.Sub(b) })
	if !slices.Equal(rel, mrel) {
		fr.fatalf("OnAck released %v, model %v", rel, mrel)
	}
	if res != mres {
		fr.fatalf("OnAck = %+v, model %+v", res, mres)
	}
	fr.log = append(fr.log, fmt.Sprintf("  -> %+v", res))
}

func (fr *fuzzRun) checkAll() {
	if err := fr.snd.check(); err != nil {
		fr.fatalf("sender invariant: %v", err)
	}
	if err := fr.rcv.check(); err != nil {
		fr.fatalf("receiver invariant: %v", err)
	}
	s, m := fr.snd, fr.ms
	if p := s.PacketThreshold(); p < m.pktThresh || p > max(m.pktThresh, m.pktMax) {
		fr.fatalf("PacketThreshold %d out of [%d, %d]", p, m.pktThresh, m.pktMax)
	}
	if s.InFlight() != m.inFlight() || s.Lost() != m.nlost() || s.HasLost() != (m.nlost() > 0) {
		fr.fatalf("InFlight %d Lost %d, model %d %d", s.InFlight(), s.Lost(), m.inFlight(), m.nlost())
	}
	if s.Base() != m.base || s.Next() != m.next || s.Limit() != m.limit || s.CanSend() != m.canSend() {
		fr.fatalf("Base/Next/Limit %#x/%#x/%#x, model %#x/%#x/%#x",
			uint32(s.Base()), uint32(s.Next()), uint32(s.Limit()), uint32(m.base), uint32(m.next), uint32(m.limit))
	}
	t1, ok1 := s.OldestSentAt()
	t2, ok2 := m.oldestSentAt()
	if t1 != t2 || ok1 != ok2 {
		fr.fatalf("OldestSentAt = %v %v, model %v %v", t1, ok1, t2, ok2)
	}
	d1, ok1 := s.LossDeadline()
	d2, ok2 := m.lossDeadline(s.ReorderWindow())
	if d1 != d2 || ok1 != ok2 {
		fr.fatalf("LossDeadline = %v %v, model %v %v", d1, ok1, d2, ok2)
	}
	if fr.rcv.Cum() != fr.mr.cum() || fr.rcv.NextPop() != fr.mr.pop || fr.rcv.Buffered() != len(fr.mr.got) {
		fr.fatalf("Receiver Cum/NextPop/Buffered %#x/%#x/%d, model %#x/%#x/%d",
			uint32(fr.rcv.Cum()), uint32(fr.rcv.NextPop()), fr.rcv.Buffered(),
			uint32(fr.mr.cum()), uint32(fr.mr.pop), len(fr.mr.got))
	}
	// What the receiver's gaps say agrees with its SACK runs.
	missing := fr.rcv.AppendMissing(nil, 1<<30)
	runs := fr.mr.runs()
	if len(missing) != len(runs) {
		fr.fatalf("AppendMissing %v with runs %v", missing, runs)
	}
	for i := range missing {
		if missing[i].End.Add(1) != runs[i].Start {
			fr.fatalf("AppendMissing %v with runs %v", missing, runs)
		}
	}
}

// repair delivers everything with no more loss until the sender has nothing
// in flight, then checks that every message arrived once, in order.
func (fr *fuzzRun) repair() {
	for round := 0; fr.snd.InFlight() > 0 || fr.pushed != fr.popped; round++ {
		if round > 2*fr.snd.Window()+10 {
			fr.fatalf("no progress after %d repair rounds: in flight %d, pushed %d, popped %d",
				round, fr.snd.InFlight(), fr.pushed, fr.popped)
		}
		for len(fr.data) > 0 {
			f := fr.data[0]
			fr.data = fr.data[1:]
			got, want := fr.rcv.Push(f.seq, f.val), fr.mr.push(f.seq, f.val)
			if got != want {
				fr.fatalf("repair: Push(%#x) = %v, model %v", uint32(f.seq), got, want)
			}
			if got == Accepted {
				fr.received[f.seq] = true
			}
		}
		for fr.popOne() {
		}
		fr.acks = fr.acks[:0]
		fr.now += time.Millisecond
		a := fr.rcv.Ack(0)
		fr.mr.ack(0)
		fr.onAck(a.Clone())
		if fr.snd.InFlight() > 0 {
			fr.snd.MarkAllLost()
			fr.ms.markAllLost()
			for {
				seq, v, ok := fr.snd.PopLost(fr.now)
				fr.ms.popLost(fr.now)
				if !ok {
					break
				}
				fr.data = append(fr.data, fuzzFrame{seq, v})
			}
		}
		fr.checkAll()
	}
	if fr.popped != fr.pushed {
		fr.fatalf("popped %d of %d", fr.popped, fr.pushed)
	}
	if len(fr.released) != int(fr.pushed) {
		fr.fatalf("released %d of %d", len(fr.released), fr.pushed)
	}
}

// drain ends the session and checks that every record was released exactly
// once in all, and that the receiver gives back what it still held.
func (fr *fuzzRun) drain() {
	fr.snd.Drain(func(seq Seq, v uint64) {
		if fr.released[seq] {
			fr.fatalf("Drain released %#x again", uint32(seq))
		}
		fr.released[seq] = true
	})
	if len(fr.released) != int(fr.pushed) || fr.snd.InFlight() != 0 || fr.snd.HasLost() {
		fr.fatalf("after Drain: released %d of %d, in flight %d", len(fr.released), fr.pushed, fr.snd.InFlight())
	}
	if err := fr.snd.check(); err != nil {
		fr.fatalf("sender invariant after Drain: %v", err)
	}
	n := 0
	fr.rcv.Drain(func(uint64) { n++ })
	if n != len(fr.mr.got) || fr.rcv.Buffered() != 0 {
		fr.fatalf("Receiver.Drain released %d, held %d", n, len(fr.mr.got))
	}
	if err := fr.rcv.check(); err != nil {
		fr.fatalf("receiver invariant after Drain: %v", err)
	}
}

func ackEqual(a, b Ack) bool {
	return a.Cum == b.Cum && a.Limit == b.Limit && a.DupValid == b.DupValid &&
		(!a.DupValid || a.Dup == b.Dup) && slices.Equal(a.Ranges, b.Ranges)
}

func fmtAck(a Ack) string {
	s := fmt.Sprintf("{cum %#x limit %#x", uint32(a.Cum), uint32(a.Limit))
	for i, r := range a.Ranges {
		if i == 6 {
			s += fmt.Sprintf(" ...%d ranges", len(a.Ranges))
			break
		}
		s += fmt.Sprintf(" [%#x,%#x]", uint32(r.Start), uint32(r.End))
	}
	if a.DupValid {
		s += fmt.Sprintf(" dup %#x", uint32(a.Dup))
	}
	return s + "}"
}
