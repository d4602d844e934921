package window

import (
	"fmt"
	"time"
	"unsafe"
)

// Defaults and limits of SenderConfig and ReceiverConfig.
const (
	// DefaultWindow is the window used when a config leaves Window zero.
	DefaultWindow = 1024
	// MaxWindow is the largest window a config may ask for. It keeps every
	// honest sequence number within 2^31 of every other, which serial
	// arithmetic (RFC 1982) needs, and bounds the memory a window takes.
	MaxWindow = 1 << 24
	// DefaultPacketThreshold is RFC 9002's kPacketThreshold: "The
	// RECOMMENDED initial value for the packet reordering threshold
	// (kPacketThreshold) is 3, based on best practices for TCP loss
	// detection" (section 6.1.1).
	DefaultPacketThreshold = 3
	// DefaultMaxPacketThreshold is how far the packet threshold may grow
	// when reordering is observed: Linux's default tcp_max_reordering.
	DefaultMaxPacketThreshold = 300
	// DefaultReorderWindowMin is RFC 9002's kGranularity: the time threshold
	// "MUST be set to at least the local timer granularity, as indicated by
	// the kGranularity constant" (section 6.1.2), whose recommended value is
	// 1 ms.
	DefaultReorderWindowMin = time.Millisecond
)

// SenderConfig configures a Sender. The zero value gives the defaults.
type SenderConfig struct {
	// Window is the most records the sender keeps between the oldest
	// unacknowledged record and Next: a record cannot be pushed while
	// Next()-oldest unacknowledged >= Window. It bounds the sender's ring,
	// which starts small and grows with the records in flight. Zero means
	// DefaultWindow; it must not exceed MaxWindow.
	Window int
	// PacketThreshold is the packet reordering threshold: a record is lost
	// once a record transmitted PacketThreshold or more transmissions after
	// it has been acknowledged (RFC 9002 section 6.1.1). Zero means
	// DefaultPacketThreshold. RFC 9002 says implementations "SHOULD NOT use
	// a packet threshold less than 3".
	PacketThreshold int
	// MaxPacketThreshold bounds the adaptive packet threshold. When a record
	// that was never retransmitted is acknowledged after a record sent d
	// transmissions later had been, the network reordered by d, and the
	// threshold grows to d+1 so that the same reordering no longer makes
	// spurious losses; it returns to PacketThreshold after 16 loss episodes
	// without reordering. RFC 9002 section 6.1.1 allows this ("Implementers
	// MAY use algorithms developed for TCP, such as TCP-NCR [RFC4653], to
	// improve QUIC's reordering resilience"); Linux TCP does the same with
	// tp->reordering. Zero means DefaultMaxPacketThreshold; a value at or
	// below PacketThreshold (a negative one, say) turns adaptation off.
	MaxPacketThreshold int
	// ReorderWindowMin is the least reordering window of the time threshold
	// (see Sender.ReorderWindow). Zero means DefaultReorderWindowMin; a
	// negative value means no minimum.
	ReorderWindowMin time.Duration
}

func (c SenderConfig) withDefaults() SenderConfig {
	if c.Window < 0 || c.Window > MaxWindow {
		panic(fmt.Sprintf("window: SenderConfig.Window %d out of [0, %d]", c.Window, MaxWindow))
	}
	if c.PacketThreshold < 0 {
		panic(fmt.Sprintf("window: SenderConfig.PacketThreshold %d is negative", c.PacketThreshold))
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.PacketThreshold == 0 {
		c.PacketThreshold = DefaultPacketThreshold
	}
	if c.MaxPacketThreshold == 0 {
		c.MaxPacketThreshold = DefaultMaxPacketThreshold
	}
	c.MaxPacketThreshold = max(c.MaxPacketThreshold, c.PacketThreshold)
	switch {
	case c.ReorderWindowMin == 0:
		c.ReorderWindowMin = DefaultReorderWindowMin
	case c.ReorderWindowMin < 0:
		c.ReorderWindowMin = 0
	}
	return c
}

// AckResult says what one acknowledgement did.
type AckResult struct {
	// Acked is how many records this Ack newly acknowledged (and released).
	Acked int
	// RTTValid says that RTT holds an unambiguous round-trip sample: the
	// time since the newest newly acknowledged record that was never
	// retransmitted was sent. Karn's rule (RFC 6298 section 3): "RTT
	// samples MUST NOT be made using segments that were retransmitted".
	RTTValid bool
	RTT      time.Duration
	// NewlyLost is how many records this Ack caused to be declared lost.
	NewlyLost int
	// Spurious is how many retransmissions this Ack revealed as spurious.
	Spurious int
	// LimitMoved says that the peer's flow-control limit changed.
	LimitMoved bool
	// Ignored says that the Ack was dropped whole because its Cum
	// acknowledged sequence numbers never sent: garbage or a hostile peer.
	Ignored bool
}

// SenderStats holds cumulative counters of a Sender.
type SenderStats struct {
	Pushed        uint64 // records pushed
	Acked         uint64 // records acknowledged and released
	Lost          uint64 // loss declarations (a record may be lost more than once)
	Retransmitted uint64 // records handed out by PopLost
	Spurious      uint64 // retransmissions found spurious by a duplicate report
	Reordered     uint64 // records acknowledged after a record sent later: reordering
	IgnoredAcks   uint64 // Acks dropped whole (see AckResult.Ignored)
	Released      uint64 // records released by Drain
}

// Record flags.
const (
	fPushed   uint8 = 1 << iota // the slot holds a record (current or already released)
	fRetx                       // the record was retransmitted at least once
	fSpurious                   // a spurious retransmission of the record was counted
)

// noSlot ends a list.
const noSlot = ^uint32(0)

// sentRecord is one slot of the sender's ring. The slot of sequence number s
// is s & mask. A slot keeps seq and flags after its record is released, until
// a later Push reuses it, so a duplicate report that arrives after the
// acknowledgement can still be matched with the record it is about. While
// the ring is smaller than its final size (see Sender.horizon), a reused
// slot's retransmitted record moves to the retired list first, so that
// duplicate reports are matched as far back as they were when the ring was
// allocated whole.
type sentRecord[T any] struct {
	v      T
	sentAt time.Duration // time of the latest transmission
	xmit   uint64        // transmission number of the latest transmission
	seq    Seq
	prev   uint32 // neighbours in the flight or lost list
	next   uint32
	// lostGap is how many transmissions after this record's the
	// acknowledged one was when the packet threshold last declared it lost
	// (0: declared lost otherwise). If that loss proves spurious, the
	// threshold must exceed it.
	lostGap uint16
	flags   uint8
}

// retiredRecord is what spurious needs of a record that left the ring: one
// that was retransmitted and whose retransmission was not yet found spurious
// when a later Push took its slot, while the ring was still small.
type retiredRecord struct {
	seq     Seq
	lostGap uint16
	flags   uint8
}

// minRetired is the size the retired list starts at, when first needed.
const minRetired = 8

// list is a doubly linked list of ring slots, threaded through sentRecord.
type list struct{ head, tail uint32 }

var emptyList = list{noSlot, noSlot}

// Sender is the send side of a reliable window: it keeps every record pushed
// until it is acknowledged, processes cumulative and selective
// acknowledgements, decides which records are lost, and hands them out again
// for retransmission.
//
// Loss detection follows RACK (RFC 8985) with the packet threshold of RFC 9002
// section 6.1.1. Every transmission, first or retransmission, gets a
// transmission number that only grows, which plays the role of a QUIC packet
// number: "sent later" means a higher transmission number, so a record's
// retransmission is compared with what was sent after it, not with its own
// sequence number.
//
// Unacknowledged records sit in one of two lists ordered by transmission
// number: the flight list (sent, outcome unknown) and the lost list (declared
// lost, waiting for PopLost). Every transmission joins the tail of the flight
// list, so along it both transmission numbers and send times grow; if the
// head of the flight list is not lost by either threshold, nothing after it
// is. Loss detection therefore only looks at the head, which makes it O(1)
// per acknowledgement plus O(1) per lost record. Beside the lists, bitmaps
// over the ring mark which records are acknowledged and which are lost, so
// that SACK ranges and the search for the lowest lost record go 64 records
// at a time.
//
// The ring starts small and doubles when a Push finds it full of records in
// flight, up to the window rounded up to a power of two; it never shrinks, so
// once it is as large as the traffic needs nothing is allocated per record.
//
// A Sender is not safe for concurrent use; one goroutine (the engine's owner)
// must own it. It does no I/O and never reads the clock: now is the caller's
// time since an origin of its choice, and must not go backwards.
type Sender[T any] struct {
	recs  []sentRecord[T]
	mask  uint32  // len(recs)-1
	acked bitRing // acknowledged records in [base, next); as large as recs, and at least 64
	lost  bitRing // records in the lost list; as large as recs, and at least 64

	// Push takes its slow path once the span reaches room, min(Window,
	// len(recs)), or when the slot it takes holds a retransmitted record
	// while the ring is smaller than horizon (retxInRing counts those).
	room       int
	retxInRing int

	window int
	reoMin time.Duration

	// Packet threshold: configured, current (adapted to observed
	// reordering) and cap, with the loss episodes left before the current
	// one returns to the configured one.
	pktThreshBase    uint64
	pktThresh        uint64
	pktThreshMax     uint64
	pktThreshPersist int

	base  Seq // oldest unacknowledged record; all before it are released
	next  Seq // sequence number of the next Push
	limit Seq // peer's flow-control limit

	drained  bool // Drain ended the sender: nothing more may be pushed
	unacked  int  // records in [base, next) not acknowledged
	nlost    int  // records in the lost list
	lostFrom Seq  // no record before lostFrom is in the lost list
	flight   list // unacknowledged, not lost; by transmission number
	lostList list // declared lost, not yet retransmitted; by transmission number
	xmits    uint64

	// RACK state (RFC 8985 section 6.1): the most recently sent record that
	// was delivered, and the round trip measured on it.
	rackXmit uint64 // 0: nothing delivered yet
	rackRTT  time.Duration
	minRTT   time.Duration
	hasRTT   bool
	srtt     time.Duration

	// Reordering window adaptation (RFC 8985 section 6.2 step 4).
	reoMult       int
	reoPersist    int
	dsackRound    Seq
	hasDsackRound bool

	// A loss episode: from the first loss until everything that had been
	// sent by then is acknowledged. Stands for TCP's "Fast or RTO recovery".
	inRecovery  bool
	recoveryEnd Seq

	stats SenderStats

	// horizon is the size the ring had when it was allocated whole,
	// ringSize(Window): how far back from Next a duplicate report is
	// matched with its record (Next-horizon <= seq < Next). While the ring
	// is smaller, retired keeps what spurious needs of the records such a
	// ring would still hold and the small one no longer does: the
	// retransmitted ones not yet found spurious. Push retires records in
	// increasing sequence order (the slot it takes holds Next-len(recs),
	// and the ring only grows), and they leave the horizon in the same
	// order, so retired is a FIFO: a ring buffer of nretired entries from
	// rhead, sorted by sequence number, that doubles when full. Entries
	// that left the horizon go when the next one comes (see expire);
	// retiredAt, the Pushed count at the last retirement, tells when they
	// all have.
	horizon   int
	retired   []retiredRecord
	rhead     int
	nretired  int
	retiredAt uint64
}

// NewSender returns a Sender whose first record gets sequence number isn.
// The peer's limit starts at isn+Window, until the first Ack says otherwise.
// It panics if cfg is invalid.
func NewSender[T any](isn Seq, cfg SenderConfig) *Sender[T] {
	return newSender[T](isn, cfg, min(minRing, pow2(cfg.Window)))
}

// newSender is NewSender with a ring that starts at initial slots (rounded
// up to a power of two, and at most ringSize(Window): the size it had when it
// was allocated whole). Tests start it at 1, to make it grow as often as it
// can, and at ringSize(Window), to compare with the whole ring.
func newSender[T any](isn Seq, cfg SenderConfig, initial int) *Sender[T] {
	cfg = cfg.withDefaults()
	size := min(pow2(initial), ringSize(cfg.Window))
	return &Sender[T]{
		recs:          make([]sentRecord[T], size),
		mask:          uint32(size - 1),
		acked:         newBitRing(max(size, 64)),
		lost:          newBitRing(max(size, 64)),
		horizon:       ringSize(cfg.Window),
		room:          min(cfg.Window, size),
		window:        cfg.Window,
		pktThreshBase: uint64(cfg.PacketThreshold),
		pktThresh:     uint64(cfg.PacketThreshold),
		pktThreshMax:  uint64(cfg.MaxPacketThreshold),
		reoMin:        cfg.ReorderWindowMin,
		base:          isn,
		next:          isn,
		limit:         isn.Add(cfg.Window),
		lostFrom:      isn,
		flight:        emptyList,
		lostList:      emptyList,
		reoMult:       1,
	}
}

// Next returns the sequence number the next Push will get.
func (s *Sender[T]) Next() Seq { return s.next }

// Base returns the oldest unacknowledged sequence number (Next if none):
// every record before it has been acknowledged and released.
func (s *Sender[T]) Base() Seq { return s.base }

// Limit returns the peer's flow-control limit: records before it may be sent.
func (s *Sender[T]) Limit() Seq { return s.limit }

// Window returns the configured window.
func (s *Sender[T]) Window() int { return s.window }

// InFlight returns how many records were pushed and not yet acknowledged,
// including records declared lost and not yet retransmitted.
func (s *Sender[T]) InFlight() int { return s.unacked }

// CanSend reports whether Push may be called: the span from the oldest
// unacknowledged record to Next is below the window (which also bounds
// InFlight, and matches a Receiver with the same window, which refuses what
// lies a window or more past its next expected number), and Next comes before
// the peer's limit. Retransmissions (PopLost) are never held back by either.
// After Drain it is false for good.
func (s *Sender[T]) CanSend() bool {
	return s.next.Sub(s.base) < s.window && s.next.Less(s.limit) && !s.drained
}

// Push records v as a new record sent at now and returns its sequence
// number. It panics if CanSend is false.
func (s *Sender[T]) Push(now time.Duration, v T) Seq {
	seq := s.next
	if seq.Sub(s.base) >= s.room || !seq.Less(s.limit) || s.drained {
		// !CanSend(), or the ring is full. (Tail calls: a call followed
		// by more work would make the compiler save registers on every
		// Push.)
		return s.pushSlow(now, v)
	}
	i := uint32(seq) & s.mask
	r := &s.recs[i]
	if s.retxInRing != 0 && r.flags&fRetx != 0 {
		return s.pushSlow(now, v) // the slot's record may have to retire
	}
	s.xmits++
	// Field by field: a composite literal would be built and then copied
	// whole, which costs more than the rest of Push.
	r.v = v
	r.sentAt = now
	r.xmit = s.xmits
	r.seq = seq
	r.lostGap = 0
	r.flags = fPushed
	s.linkTail(&s.flight, i)
	s.next++
	s.unacked++
	s.stats.Pushed++
	return seq
}

// pushSlow is Push when CanSend is false, which panics, or when the slot of
// Next is not free: it frees it, then pushes. The slot holds either Base, in
// flight, and the ring must grow; or a released record that was
// retransmitted, which retires if a ring of horizon slots would keep it for
// a duplicate report: if it was not yet found spurious and the ring is
// smaller than that.
func (s *Sender[T]) pushSlow(now time.Duration, v T) Seq {
	if !s.CanSend() {
		panic("window: Sender.Push while CanSend is false")
	}
	if s.next.Sub(s.base) >= len(s.recs) {
		s.grow() // Next's slot in the larger ring is free
	} else {
		r := &s.recs[uint32(s.next)&s.mask]
		if r.flags&fSpurious == 0 {
			s.retire(r)
		}
		r.flags = 0 // released, and about to be overwritten
		s.retxInRing--
	}
	return s.Push(now, v)
}

// ackState gathers what OnAck learns while it walks the newly acknowledged
// records.
type ackState struct {
	rttXmit   uint64 // newest newly acknowledged never-retransmitted record
	rttSentAt time.Duration
	rackXmit  uint64 // RACK's transmission number before this Ack
}

// OnAck processes an acknowledgement received at now: cumulative and
// selective acknowledgements, the flow-control limit and the duplicate
// report; then it runs loss detection. It calls release exactly once for
// every record newly acknowledged, in no particular order; release must not
// call the Sender.
//
// Whatever a peer sends, OnAck never panics and never corrupts the Sender:
// an Ack whose Cum comes after Next is dropped whole (AckResult.Ignored);
// the parts of SACK ranges outside [Base, Next) are ignored, as are
// malformed ranges and ranges after the first MaxAckRanges. An Ack whose Cum
// comes before Base is stale (overtaken by a later one): its ranges are
// used, since acknowledgements are final, but its Limit is not.
func (s *Sender[T]) OnAck(now time.Duration, a Ack, release func(seq Seq, v T)) AckResult {
	var res AckResult
	if s.next.Less(a.Cum) {
		s.stats.IgnoredAcks++
		res.Ignored = true
		return res
	}
	st := ackState{rackXmit: s.rackXmit}
	stale := a.Cum.Less(s.base)
	if !stale {
		res.Acked += s.ackCum(now, a.Cum, release, &st)
	}
	ranges := a.Ranges
	if len(ranges) > MaxAckRanges {
		ranges = ranges[:MaxAckRanges]
	}
	for _, r := range ranges {
		if r.End.Less(r.Start) {
			continue // malformed
		}
		// Clamp to [Base, Next) by offsets from Base: serial comparisons
		// are not transitive across half the sequence space, so a range
		// 2^31 away would pass them all (a hostile peer's ACK did).
		n := uint32(s.next) - uint32(s.base)
		a, b := uint32(r.Start)-uint32(s.base), uint32(r.End)-uint32(s.base)
		if a > b {
			a = 0 // starts before Base (a well-formed range cannot wrap)
		}
		if a >= n {
			continue
		}
		lo, hi := s.base.Add(int(a)), s.base.Add(int(min(b, n-1)))
		s.ackRange(now, lo, hi, release, &res, &st)
	}
	s.advanceBase()

	if st.rttXmit != 0 {
		rtt := max(now-st.rttSentAt, 0)
		res.RTTValid, res.RTT = true, rtt
		if !s.hasRTT || rtt < s.minRTT {
			s.minRTT, s.hasRTT = rtt, true
		}
	}

	if !stale {
		limit := a.Limit
		if limit.Less(a.Cum) {
			limit = a.Cum // no credit; also keeps limit within 2^31 of Next
		}
		if limit != s.limit {
			s.limit = limit
			res.LimitMoved = true
		}
	}

	// RFC 8985 section 6.2 step 4, RACK_update_reo_wnd:
	//   If RACK.dsack_round is not None AND SND.UNA >= RACK.dsack_round:
	//       RACK.dsack_round = None
	if s.hasDsackRound && s.dsackRound.LessEq(s.base) {
		s.hasDsackRound = false
	}
	grew := false
	if a.DupValid && s.spurious(a.Dup) {
		res.Spurious++
		// "Grow the reordering window per round that sees DSACK."
		//   If RACK.dsack_round is None AND any DSACK option is present
		//   on latest received ACK:
		//       RACK.dsack_round = SND.NXT
		//       RACK.reo_wnd_mult += 1
		//       RACK.reo_wnd_persist = 16
		// Unlike the RFC, only a duplicate of a record we retransmitted
		// counts: a duplicate made by the network (the fault injector does
		// that) says nothing about our reordering window.
		if !s.hasDsackRound {
			s.hasDsackRound = true
			s.dsackRound = s.next
			if s.reoMult < maxReoMult {
				s.reoMult++
			}
			s.reoPersist = 16
			grew = true
		}
	}
	if s.inRecovery && s.recoveryEnd.LessEq(s.base) {
		s.inRecovery = false
		// "Reset the window after 16 DSACK-free recoveries":
		//   Else if exiting Fast or RTO recovery:
		//       RACK.reo_wnd_persist -= 1
		//       If RACK.reo_wnd_persist <= 0:
		//           RACK.reo_wnd_mult = 1
		if !grew {
			s.reoPersist--
			if s.reoPersist <= 0 {
				s.reoMult = 1
			}
		}
		// The packet threshold goes back the same way.
		if s.pktThresh != s.pktThreshBase {
			s.pktThreshPersist--
			if s.pktThreshPersist <= 0 {
				s.pktThresh = s.pktThreshBase
			}
		}
	}

	res.NewlyLost = s.detectLoss(now)
	return res
}

// maxReoMult caps the reordering window multiplier. The window is capped at
// SRTT anyway, which a multiplier of 4 reaches; the cap only keeps a hostile
// stream of duplicate reports from overflowing the counter.
const maxReoMult = 64

// ackCum acknowledges every record before cum, which lies in [base, next],
// and moves base to cum. It returns how many records it acknowledged. This
// is the path of every message in the steady state, so it sets no bit for
// what it acknowledges and clears the bits of what was SACKed before.
func (s *Sender[T]) ackCum(now time.Duration, cum Seq, release func(Seq, T), st *ackState) int {
	n := 0
	for ; s.base != cum; s.base++ {
		if s.acked.get(s.base) {
			s.acked.clear(s.base)
			continue
		}
		s.ackOne(now, s.base, release, st)
		n++
	}
	return n
}

// ackRange acknowledges every unacknowledged record in [lo, hi], which lies
// within [base, next).
func (s *Sender[T]) ackRange(now time.Duration, lo, hi Seq, release func(Seq, T), res *AckResult, st *ackState) {
	n := hi.Sub(lo) + 1
	for k := 0; k < n; k++ {
		k += s.acked.runUp(lo.Add(k), n-k, true) // skip what is already acknowledged
		if k >= n {
			break
		}
		seq := lo.Add(k)
		s.acked.set(seq)
		s.ackOne(now, seq, release, st)
		res.Acked++
	}
}

// ackOne acknowledges the unacknowledged record seq. The caller sets its
// acked bit, or moves base past it.
func (s *Sender[T]) ackOne(now time.Duration, seq Seq, release func(Seq, T), st *ackState) {
	i := uint32(seq) & s.mask
	r := &s.recs[i]
	if s.nlost != 0 && s.lost.get(seq) {
		// Declared lost but delivered after all (a spurious loss
		// declaration, caught before the retransmission).
		s.lost.clear(seq)
		s.unlink(&s.lostList, i)
		s.nlost--
	} else {
		s.unlink(&s.flight, i)
	}
	s.unacked--
	s.stats.Acked++

	retx := r.flags&fRetx != 0
	if !retx && r.xmit > st.rttXmit {
		st.rttXmit, st.rttSentAt = r.xmit, r.sentAt
	}
	// RFC 8985 section 6.2 step 3, "Detect data segment reordering": "If a
	// never retransmitted segment that's below RACK.fack is (selectively
	// or cumulatively) acknowledged, it has been delivered out of order."
	// Compared with RACK as it stood before this Ack, since the order in
	// which one Ack's records are walked means nothing.
	if !retx && r.xmit < st.rackXmit {
		s.stats.Reordered++
		if d := st.rackXmit - r.xmit + 1; d > s.pktThresh && s.pktThresh < s.pktThreshMax {
			s.pktThresh = min(d, s.pktThreshMax)
			s.pktThreshPersist = 16
		}
	}
	// RFC 8985 section 6.2 step 2, RACK_update():
	//   If Segment.retransmitted is TRUE:
	//       If ... Now() - Segment.xmit_ts < RACK.min_RTT:
	//           Return
	// An acknowledgement that comes back sooner than any round trip is for
	// an earlier transmission, so it says nothing about the latest one.
	if retx && s.hasRTT && now-r.sentAt < s.minRTT {
		// ambiguous: leave RACK alone
	} else if r.xmit > s.rackXmit {
		//   If RACK_sent_after(Segment.xmit_ts, Segment.end_seq,
		//                      RACK.xmit_ts, RACK.end_seq):
		//       RACK.rtt = Now() - Segment.xmit_ts
		//       RACK.xmit_ts = Segment.xmit_ts
		s.rackXmit = r.xmit
		s.rackRTT = max(now-r.sentAt, 0)
	}

	v := r.v
	var zero T
	r.v = zero
	release(seq, v)
}

// advanceBase moves base past the acknowledged records at its front.
func (s *Sender[T]) advanceBase() {
	for s.base != s.next && s.acked.get(s.base) {
		s.acked.clear(s.base)
		s.base++
	}
}

// spurious reports whether a duplicate report for seq reveals a spurious
// retransmission not counted before, and counts it.
func (s *Sender[T]) spurious(seq Seq) bool {
	var lostGap uint16
	r := &s.recs[uint32(seq)&s.mask]
	// The slot still describes seq only if the last record pushed into it
	// was seq; that also rules out numbers never sent.
	if r.flags&fPushed != 0 && r.seq == seq {
		if r.flags&(fRetx|fSpurious) != fRetx {
			return false
		}
		r.flags |= fSpurious
		lostGap = r.lostGap
	} else if e := s.findRetired(seq); e != nil && e.flags&(fRetx|fSpurious) == fRetx {
		e.flags |= fSpurious
		lostGap = e.lostGap
	} else {
		return false
	}
	s.stats.Spurious++
	// The packet threshold declared this record lost too early: the
	// reordering was at least as deep as the gap it judged by.
	if g := uint64(lostGap) + 1; lostGap != 0 && g > s.pktThresh && s.pktThresh < s.pktThreshMax {
		s.pktThresh = min(g, s.pktThreshMax)
		s.pktThreshPersist = 16
	}
	return true
}

// ReorderWindow returns RACK's reordering window (RFC 8985 section 6.2 step 4,
// "return min(RACK.reo_wnd_mult * RACK.min_RTT / 4, SRTT)"), except that the
// base is the SRTT passed to SetSRTT rather than min_RTT, and that the result
// is never below SenderConfig.ReorderWindowMin. Without an SRTT it is
// ReorderWindowMin.
func (s *Sender[T]) ReorderWindow() time.Duration {
	w := s.srtt / 4 * time.Duration(s.reoMult)
	w = min(w, s.srtt)
	return max(w, s.reoMin)
}

// PacketThreshold returns the current packet threshold: the configured one,
// or more if reordering was observed (see SenderConfig.MaxPacketThreshold).
func (s *Sender[T]) PacketThreshold() int { return int(s.pktThresh) }

// SetSRTT tells the Sender the current smoothed round-trip time, which
// scales the reordering window of the time threshold.
func (s *Sender[T]) SetSRTT(srtt time.Duration) { s.srtt = max(srtt, 0) }

// DetectLoss runs the time threshold again at now, typically when the
// LossDeadline has passed. It returns how many records it declared lost.
func (s *Sender[T]) DetectLoss(now time.Duration) int { return s.detectLoss(now) }

// detectLoss is RFC 8985 section 6.2 step 5, RACK_detect_loss():
//
//	For each segment, Segment, not acknowledged yet:
//	    If RACK_sent_after(RACK.xmit_ts, RACK.end_seq,
//	                       Segment.xmit_ts, Segment.end_seq):
//	        remaining = Segment.xmit_ts + RACK.rtt +
//	                    RACK.reo_wnd - Now()
//	        If remaining <= 0:
//	            Segment.lost = TRUE
//
// combined with RFC 9002 section 6.1: a packet is lost if it "was sent prior
// to an acknowledged packet" and it "was sent kPacketThreshold packets before
// an acknowledged packet ..., or it was sent long enough in the past".
// "Sent after" compares transmission numbers. Only the head of the flight
// list needs looking at: later records were sent later, so if the head is not
// lost by either threshold, nothing after it is.
func (s *Sender[T]) detectLoss(now time.Duration) int {
	reo := s.ReorderWindow()
	n := 0
	for s.flight.head != noSlot {
		i := s.flight.head
		r := &s.recs[i]
		if r.xmit >= s.rackXmit {
			break // not sent before the most recently sent delivered record
		}
		gap := s.rackXmit - r.xmit
		byPackets := gap >= s.pktThresh
		if !byPackets && now < r.sentAt+s.rackRTT+reo {
			break
		}
		s.unlink(&s.flight, i)
		s.insertLost(i)
		if !byPackets {
			gap = 0
		}
		s.noteLost(i, gap)
		n++
	}
	return n
}

// LossDeadline returns the earliest time at which a record not yet lost
// becomes lost by the time threshold, if there is such a record: the RACK
// reordering timer (RFC 8985 section 6.2 step 5, "remaining"). Call
// DetectLoss when it passes. The deadline depends on SetSRTT; ask again after
// calling it.
func (s *Sender[T]) LossDeadline() (time.Duration, bool) {
	if s.flight.head == noSlot {
		return 0, false
	}
	r := &s.recs[s.flight.head]
	if r.xmit >= s.rackXmit {
		return 0, false
	}
	return r.sentAt + s.rackRTT + s.ReorderWindow(), true
}

// MarkAllLost declares lost every unacknowledged record not already lost
// (SACKed records are acknowledged, so they are not among them), and
// returns how many. It is what an expired retransmission timer does (RFC
// 8985 section 6.3 marks only the records older than RACK's reordering
// window; here the RTO is the last resort and is meant to be conservative,
// so everything goes): see package loss, which decides when.
func (s *Sender[T]) MarkAllLost() int { return s.markLostBefore(maxTime) }

// MarkLostSentBefore declares lost every unacknowledged record not already
// lost whose latest transmission was at or before cutoff, and returns how
// many. It answers a peer's overrun report (STATUS_REQ) with what the
// report proves missing: a record sent more than a round trip before the
// report would have been acknowledged in it, while a younger one may still
// be on its way and is left to the peer's next report or to the timers.
// Without the cutoff one small report would resend the whole flight.
func (s *Sender[T]) MarkLostSentBefore(cutoff time.Duration) int { return s.markLostBefore(cutoff) }

// maxTime is a cutoff later than any transmission.
const maxTime = time.Duration(1<<63 - 1)

// markLostBefore moves the head of the flight list, up to the first record
// sent after cutoff, into the lost list. Both lists are in transmission
// order (so the flight list's sentAt never decreases), so this is a merge.
func (s *Sender[T]) markLostBefore(cutoff time.Duration) int {
	return s.markLostBeforeFrom(cutoff, s.base)
}

// MarkLostSentBeforeFrom is MarkLostSentBefore for the records at or
// above from only: what an acknowledgement whose SACK ranges may have
// been cut short (the lowest left out) proves missing.
func (s *Sender[T]) MarkLostSentBeforeFrom(cutoff time.Duration, from Seq) int {
	return s.markLostBeforeFrom(cutoff, from)
}

// markLostBeforeFrom walks the flight list (in transmission order, so
// sentAt never decreases) up to the first record sent after cutoff, and
// moves the records at or above from into the lost list: a merge, since
// that list is in transmission order too.
func (s *Sender[T]) markLostBeforeFrom(cutoff time.Duration, from Seq) int {
	n := 0
	at := noSlot // insert after this slot of the lost list (noSlot: at its head)
	for i := s.flight.head; i != noSlot && s.recs[i].sentAt <= cutoff; {
		next := s.recs[i].next
		if s.recs[i].seq.Less(from) {
			i = next
			continue
		}
		x := s.recs[i].xmit
		for {
			nx := s.lostList.head
			if at != noSlot {
				nx = s.recs[at].next
			}
			if nx == noSlot || s.recs[nx].xmit > x {
				break
			}
			at = nx
		}
		s.unlink(&s.flight, i)
		s.insertAfter(&s.lostList, at, i)
		at = i
		s.noteLost(i, 0)
		n++
		i = next
	}
	return n
}

// MarkLost declares lost the unacknowledged records of r that are not lost
// already, and returns how many. It is for negative acknowledgements: a
// receiver that repairs by asking (a multicast subscriber's NACK, see
// Receiver.AppendMissing) names what it misses, and the sender hands those
// records out again through PopLost. The parts of r outside [Base, Next)
// are ignored, as is a malformed r.
func (s *Sender[T]) MarkLost(r Range) int {
	if r.End.Less(r.Start) {
		return 0
	}
	lo, hi := r.Start, r.End
	if lo.Less(s.base) {
		lo = s.base
	}
	if last := s.next.Add(-1); last.Less(hi) {
		hi = last
	}
	n := 0
	for k, span := 0, hi.Sub(lo)+1; k < span; k++ {
		k += s.acked.runUp(lo.Add(k), span-k, true) // skip what is acknowledged
		if k >= span {
			break
		}
		seq := lo.Add(k)
		if s.lost.get(seq) {
			continue
		}
		i := uint32(seq) & s.mask
		s.unlink(&s.flight, i)
		s.insertLost(i)
		s.noteLost(i, 0)
		n++
	}
	return n
}

// insertLost links slot i into the lost list in transmission order. Records
// are usually declared lost oldest first, so the walk back from the tail
// stops at once; only records marked lost out of order by MarkLost make it
// longer.
func (s *Sender[T]) insertLost(i uint32) {
	x := s.recs[i].xmit
	at := s.lostList.tail
	for at != noSlot && s.recs[at].xmit > x {
		at = s.recs[at].prev
	}
	s.insertAfter(&s.lostList, at, i)
}

// noteLost does the bookkeeping of a record just moved into the lost list.
// gap is how many transmissions later the acknowledged record that made the
// packet threshold declare it lost was (0: declared lost otherwise).
func (s *Sender[T]) noteLost(i uint32, gap uint64) {
	r := &s.recs[i]
	r.lostGap = uint16(min(gap, 1<<16-1))
	s.lost.set(r.seq)
	if s.nlost == 0 || r.seq.Less(s.lostFrom) {
		s.lostFrom = r.seq
	}
	s.nlost++
	s.stats.Lost++
	if !s.inRecovery {
		s.inRecovery = true
		s.recoveryEnd = s.next
	}
}

// HasLost reports whether a lost record waits for PopLost.
func (s *Sender[T]) HasLost() bool { return s.nlost > 0 }

// Lost returns how many lost records wait for PopLost.
func (s *Sender[T]) Lost() int { return s.nlost }

// PopLost returns the lost record with the lowest sequence number, to be
// retransmitted at now. The record counts as sent again at now: it is in
// flight and not lost until loss detection says so again. The Sender keeps
// the value until the record is acknowledged.
func (s *Sender[T]) PopLost(now time.Duration) (seq Seq, v T, ok bool) {
	if s.nlost == 0 {
		return seq, v, false
	}
	from := s.lostFrom
	if from.Less(s.base) {
		from = s.base
	}
	n := s.next.Sub(from)
	k := s.lost.runUp(from, n, false)
	if k >= n {
		panic("window: Sender lost count out of sync") // unreachable
	}
	seq = from.Add(k)
	s.lostFrom = seq.Add(1)
	i := uint32(seq) & s.mask
	r := &s.recs[i]
	s.lost.clear(seq)
	s.unlink(&s.lostList, i)
	s.nlost--
	s.xmits++
	r.xmit = s.xmits
	r.sentAt = now
	if r.flags&fRetx == 0 && len(s.recs) < s.horizon {
		s.retxInRing++
	}
	r.flags |= fRetx
	s.linkTail(&s.flight, i)
	s.stats.Retransmitted++
	return seq, r.v, true
}

// OldestSentAt returns the time of the latest transmission of the
// earliest-sent unacknowledged record, lost ones included: the retransmission
// timer should expire an RTO after it. Both lists are in transmission order,
// so it is the earlier of their heads.
func (s *Sender[T]) OldestSentAt() (time.Duration, bool) {
	switch f, l := s.flight.head, s.lostList.head; {
	case f == noSlot && l == noSlot:
		return 0, false
	case f == noSlot:
		return s.recs[l].sentAt, true
	case l == noSlot:
		return s.recs[f].sentAt, true
	default:
		return min(s.recs[f].sentAt, s.recs[l].sentAt), true
	}
}

// Drain calls release for every unacknowledged record, in sequence order,
// and forgets them: Base becomes Next, and no later Ack releases them again.
// It is meant for the end of a session: afterwards CanSend is false and
// Push panics.
func (s *Sender[T]) Drain(release func(seq Seq, v T)) {
	s.drained = true
	var zero T
	for seq := s.base; seq != s.next; seq++ {
		r := &s.recs[uint32(seq)&s.mask]
		if !s.acked.get(seq) {
			v := r.v
			r.v = zero
			s.stats.Released++
			release(seq, v)
		}
	}
	s.acked.reset()
	s.lost.reset()
	s.flight, s.lostList = emptyList, emptyList
	s.base = s.next
	s.lostFrom = s.next
	s.unacked, s.nlost = 0, 0
	s.inRecovery = false
}

// Stats returns the cumulative counters.
func (s *Sender[T]) Stats() SenderStats { return s.stats }

// Footprint returns roughly how many bytes the Sender's rings hold now: the
// ring of records, its two bitmaps and the retired list. It starts at a few
// hundred bytes whatever the window, and grows with the records in flight,
// up to about the window times the size of a record.
func (s *Sender[T]) Footprint() int {
	var r sentRecord[T]
	return cap(s.recs)*int(unsafe.Sizeof(r)) +
		(cap(s.acked.w)+cap(s.lost.w))*8 +
		cap(s.retired)*int(unsafe.Sizeof(retiredRecord{}))
}

// grow doubles the ring. Push calls it when the ring is full of records in
// flight; the window bounds that, so the ring never outgrows horizon. A
// record's slot is its sequence number masked by the ring's size, so every
// record moves (and records on either side of 2^32 stop, or start, sharing
// an end of the ring), and the flight and lost lists, which link slots, are
// relinked. The slots hold distinct numbers from the last len(recs) pushed,
// which keep distinct slots in a larger ring.
func (s *Sender[T]) grow() {
	old := s.recs
	size := 2 * len(old)
	recs := make([]sentRecord[T], size)
	mask := uint32(size - 1)
	slot := func(i uint32) uint32 {
		if i == noSlot {
			return noSlot
		}
		return uint32(old[i].seq) & mask
	}
	for j := range old {
		r := &old[j]
		if r.flags&fPushed == 0 {
			continue
		}
		n := &recs[uint32(r.seq)&mask]
		*n = *r
		n.prev, n.next = slot(r.prev), slot(r.next)
	}
	s.flight = list{slot(s.flight.head), slot(s.flight.tail)}
	s.lostList = list{slot(s.lostList.head), slot(s.lostList.tail)}
	s.recs, s.mask = recs, mask
	s.room = min(s.window, size)
	if size == s.horizon {
		// The ring is whole: nothing more retires.
		s.retxInRing = 0
		if s.nretired == 0 || s.allExpired() {
			s.retired, s.rhead, s.nretired = nil, 0, 0
		}
	}
	if size > s.acked.size() {
		span := s.next.Sub(s.base)
		s.acked.resize(size, s.base, span)
		s.lost.resize(size, s.base, span)
	}
}

// retire keeps what spurious needs of r, a retransmitted record released
// and not yet found spurious, whose slot Push is about to reuse. r comes
// after every record retired before (see Sender.retired).
func (s *Sender[T]) retire(r *sentRecord[T]) {
	s.expire()
	if s.nretired == len(s.retired) {
		old := s.retired
		s.retired = make([]retiredRecord, max(2*len(old), minRetired))
		for k := range s.nretired {
			s.retired[k] = old[(s.rhead+k)&(len(old)-1)]
		}
		s.rhead = 0
	}
	s.retired[(s.rhead+s.nretired)&(len(s.retired)-1)] = retiredRecord{seq: r.seq, lostGap: r.lostGap, flags: r.flags}
	s.nretired++
	s.retiredAt = s.stats.Pushed
}

// allExpired reports whether every retired entry has left the horizon: the
// last one came more than horizon pushes ago. Otherwise every entry is
// within twice the horizon of Next (they were all within the horizon when
// the last came, see expire), far from the 2^31 where serial arithmetic
// would mistake an old number for a recent one; so an entry's distance from
// Next tells whether it is still in the horizon.
func (s *Sender[T]) allExpired() bool {
	return s.stats.Pushed-s.retiredAt > uint64(s.horizon)
}

// expire drops the retired entries that have left the horizon: those a ring
// of horizon slots would have overwritten, horizon or more pushes ago. They
// are the oldest.
func (s *Sender[T]) expire() {
	if s.allExpired() {
		s.rhead, s.nretired = 0, 0
	}
	for s.nretired != 0 && s.next.Sub(s.retired[s.rhead].seq) > s.horizon {
		s.rhead = (s.rhead + 1) & (len(s.retired) - 1)
		s.nretired--
	}
}

// findRetired returns the retired entry of seq, or nil if seq lies outside
// the horizon or has no entry. The entries are sorted, lowest first.
func (s *Sender[T]) findRetired(seq Seq) *retiredRecord {
	if d := s.next.Sub(seq); s.nretired == 0 || d < 1 || d > s.horizon || s.allExpired() {
		return nil
	}
	mask := len(s.retired) - 1
	lo, hi := 0, s.nretired // the first entry not before seq is in [lo, hi]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.retired[(s.rhead+m)&mask].seq.Less(seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == s.nretired {
		return nil
	}
	if e := &s.retired[(s.rhead+lo)&mask]; e.seq == seq {
		return e
	}
	return nil
}

func (s *Sender[T]) linkTail(l *list, i uint32) {
	r := &s.recs[i]
	r.prev, r.next = l.tail, noSlot
	if l.tail == noSlot {
		l.head = i
	} else {
		s.recs[l.tail].next = i
	}
	l.tail = i
}

// insertAfter links slot i into l after slot at, or at the head if at is
// noSlot.
func (s *Sender[T]) insertAfter(l *list, at, i uint32) {
	r := &s.recs[i]
	r.prev = at
	if at == noSlot {
		r.next = l.head
		l.head = i
	} else {
		r.next = s.recs[at].next
		s.recs[at].next = i
	}
	if r.next == noSlot {
		l.tail = i
	} else {
		s.recs[r.next].prev = i
	}
}

func (s *Sender[T]) unlink(l *list, i uint32) {
	r := &s.recs[i]
	if r.prev == noSlot {
		l.head = r.next
	} else {
		s.recs[r.prev].next = r.next
	}
	if r.next == noSlot {
		l.tail = r.prev
	} else {
		s.recs[r.next].prev = r.prev
	}
	r.prev, r.next = noSlot, noSlot
}

// Shrink returns the ring to the size a new Sender starts with, when no
// record is unacknowledged (Base == Next), and reports whether it did: it
// frees what a burst of traffic grew, for a session that goes idle. The
// retransmitted records the ring still describes and a ring of horizon
// slots would keep for duplicate reports retire first, as when Push
// reuses their slots, so that Shrink changes nothing but the memory held.
func (s *Sender[T]) Shrink() bool {
	size := min(minRing, pow2(s.window))
	if s.base != s.next || len(s.recs) <= size {
		return false
	}
	n := len(s.recs)
	for k := n; k > 0; k-- { // oldest first: retired stays sorted
		seq := s.next.Add(-k)
		r := &s.recs[uint32(seq)&s.mask]
		if r.flags&fPushed != 0 && r.seq == seq && r.flags&(fRetx|fSpurious) == fRetx {
			s.retire(r)
		}
	}
	s.recs = make([]sentRecord[T], size)
	s.mask = uint32(size - 1)
	s.room = min(s.window, size)
	s.retxInRing = 0
	s.acked = newBitRing(max(size, 64))
	s.lost = newBitRing(max(size, 64))
	s.flight, s.lostList = emptyList, emptyList
	return true
}
