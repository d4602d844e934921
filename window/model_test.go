package window

import (
	"slices"
	"time"
)

// This file holds reference models of Sender and Receiver: maps and full
// scans, written straight from the rules, with none of the lists, bitmaps,
// cursors or early exits of the real thing. The fuzz target checks the real
// thing against them after every operation.

type refRecord struct {
	val      uint64
	sentAt   time.Duration
	xmit     uint64
	acked    bool
	lost     bool
	retx     bool
	spurious bool
}

type refSender struct {
	window    int
	ring      int // ring size of the real Sender: how far back duplicate reports are matched
	pktThresh int // configured
	pktMax    int
	recs      map[Seq]*refRecord // every record ever pushed
	base      Seq
	next      Seq
	limit     Seq
	xmits     uint64
	rackXmit  uint64
	rackRTT   time.Duration
	minRTT    time.Duration
	hasRTT    bool
}

func newRefSender(isn Seq, cfg SenderConfig) *refSender {
	cfg = cfg.withDefaults()
	return &refSender{
		window:    cfg.Window,
		ring:      ringSize(cfg.Window),
		pktThresh: cfg.PacketThreshold,
		pktMax:    cfg.MaxPacketThreshold,
		recs:      map[Seq]*refRecord{},
		base:      isn,
		next:      isn,
		limit:     isn.Add(cfg.Window),
	}
}

func (m *refSender) canSend() bool {
	return m.next.Sub(m.base) < m.window && m.next.Less(m.limit)
}

func (m *refSender) push(now time.Duration, v uint64) Seq {
	m.xmits++
	seq := m.next
	m.recs[seq] = &refRecord{val: v, sentAt: now, xmit: m.xmits}
	m.next++
	return seq
}

// unacked returns the records in [base, next) not acknowledged, in
// sequence order.
func (m *refSender) unacked() []Seq {
	var out []Seq
	for q := m.base; q != m.next; q++ {
		if !m.recs[q].acked {
			out = append(out, q)
		}
	}
	return out
}

func (m *refSender) inFlight() int { return len(m.unacked()) }

func (m *refSender) nlost() int {
	n := 0
	for _, q := range m.unacked() {
		if m.recs[q].lost {
			n++
		}
	}
	return n
}

// onAck returns the released sequence numbers (sorted) and the result
// without NewlyLost, which the caller gets from detect with the reordering
// window the real Sender ended up with.
func (m *refSender) onAck(now time.Duration, a Ack) ([]Seq, AckResult) {
	var res AckResult
	if m.next.Less(a.Cum) {
		res.Ignored = true
		return nil, res
	}
	newly := map[Seq]bool{}
	stale := a.Cum.Less(m.base)
	if !stale {
		for q := m.base; q != a.Cum; q++ {
			newly[q] = true
		}
	}
	ranges := a.Ranges
	if len(ranges) > MaxAckRanges {
		ranges = ranges[:MaxAckRanges]
	}
	for _, r := range ranges {
		if r.End.Less(r.Start) {
			continue
		}
		for q := m.base; q != m.next; q++ {
			if r.Start.LessEq(q) && q.LessEq(r.End) {
				newly[q] = true
			}
		}
	}
	var released []Seq
	var rttXmit uint64
	var rttSent time.Duration
	for q := range newly {
		rec := m.recs[q]
		if rec.acked {
			continue
		}
		rec.acked = true
		rec.lost = false
		released = append(released, q)
		if !rec.retx && rec.xmit > rttXmit {
			rttXmit, rttSent = rec.xmit, rec.sentAt
		}
		ambiguous := rec.retx && m.hasRTT && now-rec.sentAt < m.minRTT
		if !ambiguous && rec.xmit > m.rackXmit {
			m.rackXmit, m.rackRTT = rec.xmit, max(now-rec.sentAt, 0)
		}
	}
	slices.SortFunc(released, func(a, b Seq) int { return a.Sub(b) })
	res.Acked = len(released)
	for m.base != m.next && m.recs[m.base].acked {
		m.base++
	}
	if rttXmit != 0 {
		res.RTTValid, res.RTT = true, max(now-rttSent, 0)
		if !m.hasRTT || res.RTT < m.minRTT {
			m.minRTT, m.hasRTT = res.RTT, true
		}
	}
	if !stale {
		lim := a.Limit
		if lim.Less(a.Cum) {
			lim = a.Cum
		}
		res.LimitMoved = lim != m.limit
		m.limit = lim
	}
	if a.DupValid {
		d := m.next.Sub(a.Dup)
		if rec := m.recs[a.Dup]; rec != nil && d >= 1 && d <= m.ring && rec.retx && !rec.spurious {
			rec.spurious = true
			res.Spurious = 1
		}
	}
	return released, res
}

// detect is RACK plus the packet threshold by full scan. The reordering
// window and the packet threshold are the real Sender's: they adapt, and
// their adaptation has table tests of its own.
func (m *refSender) detect(now, reo time.Duration, pktThresh int) int {
	n := 0
	for _, q := range m.unacked() {
		rec := m.recs[q]
		if rec.lost || rec.xmit >= m.rackXmit {
			continue
		}
		if m.rackXmit-rec.xmit >= uint64(pktThresh) || now >= rec.sentAt+m.rackRTT+reo {
			rec.lost = true
			n++
		}
	}
	return n
}

func (m *refSender) lossDeadline(reo time.Duration) (time.Duration, bool) {
	var best time.Duration
	ok := false
	for _, q := range m.unacked() {
		rec := m.recs[q]
		if rec.lost || rec.xmit >= m.rackXmit {
			continue
		}
		if t := rec.sentAt + m.rackRTT + reo; !ok || t < best {
			best, ok = t, true
		}
	}
	return best, ok
}

func (m *refSender) oldestSentAt() (time.Duration, bool) {
	var best time.Duration
	ok := false
	for _, q := range m.unacked() {
		if t := m.recs[q].sentAt; !ok || t < best {
			best, ok = t, true
		}
	}
	return best, ok
}

func (m *refSender) markAllLost() int {
	n := 0
	for _, q := range m.unacked() {
		if rec := m.recs[q]; !rec.lost {
			rec.lost = true
			n++
		}
	}
	return n
}

func (m *refSender) markLostSentBefore(cutoff time.Duration) int {
	n := 0
	for _, q := range m.unacked() {
		if rec := m.recs[q]; !rec.lost && rec.sentAt <= cutoff {
			rec.lost = true
			n++
		}
	}
	return n
}

func (m *refSender) markLost(r Range) int {
	if r.End.Less(r.Start) {
		return 0
	}
	n := 0
	for _, q := range m.unacked() {
		if rec := m.recs[q]; r.Contains(q) && !rec.lost {
			rec.lost = true
			n++
		}
	}
	return n
}

func (m *refSender) popLost(now time.Duration) (Seq, uint64, bool) {
	for _, q := range m.unacked() {
		if rec := m.recs[q]; rec.lost {
			m.xmits++
			rec.lost, rec.retx, rec.sentAt, rec.xmit = false, true, now, m.xmits
			return q, rec.val, true
		}
	}
	return 0, 0, false
}

type refReceiver struct {
	window    int
	maxRanges int
	got       map[Seq]uint64 // held, not popped
	pop       Seq
	recent    Seq
	dupValid  bool
	dup       Seq
}

func newRefReceiver(isn Seq, cfg ReceiverConfig) *refReceiver {
	cfg = cfg.withDefaults()
	return &refReceiver{
		window:    cfg.Window,
		maxRanges: cfg.MaxRanges,
		got:       map[Seq]uint64{},
		pop:       isn,
		recent:    isn.Add(-1),
	}
}

func (m *refReceiver) cum() Seq {
	q := m.pop
	for {
		if _, ok := m.got[q]; !ok {
			return q
		}
		q++
	}
}

func (m *refReceiver) push(seq Seq, v uint64) Verdict {
	d := seq.Sub(m.pop)
	_, held := m.got[seq]
	switch {
	case d < 0 || held:
		m.dupValid, m.dup = true, seq
		return Duplicate
	case d >= m.window:
		return OutOfWindow
	}
	c := m.cum()
	m.got[seq] = v
	if seq != c {
		m.recent = seq
	}
	return Accepted
}

func (m *refReceiver) popOne() (uint64, bool) {
	v, ok := m.got[m.pop]
	if ok {
		delete(m.got, m.pop)
		m.pop++
	}
	return v, ok
}

// runs returns the maximal runs of held numbers above Cum, ascending.
func (m *refReceiver) runs() []Range {
	c := m.cum()
	var above []Seq
	for q := range m.got {
		if c.Less(q) {
			above = append(above, q)
		}
	}
	slices.SortFunc(above, func(a, b Seq) int { return a.Sub(b) })
	var out []Range
	for _, q := range above {
		if n := len(out); n > 0 && out[n-1].End.Add(1) == q {
			out[n-1].End = q
		} else {
			out = append(out, Range{q, q})
		}
	}
	return out
}

func (m *refReceiver) ack(backlog int) Ack {
	a := Ack{
		Cum:      m.cum(),
		Limit:    m.pop.Add(max(m.window-max(backlog, 0), 0)),
		DupValid: m.dupValid,
		Dup:      m.dup,
	}
	m.dupValid = false
	runs := m.runs()
	var first Range
	hasFirst := false
	if a.Cum.Less(m.recent) {
		for _, r := range runs {
			if r.Contains(m.recent) {
				first, hasFirst = r, true
				a.Ranges = append(a.Ranges, r)
			}
		}
	}
	for i := len(runs) - 1; i >= 0 && len(a.Ranges) < m.maxRanges; i-- {
		if !hasFirst || runs[i] != first {
			a.Ranges = append(a.Ranges, runs[i])
		}
	}
	return a
}
