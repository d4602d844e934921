package window

import (
	"fmt"
	"unsafe"
)

// DefaultMaxRanges is the MaxRanges used when a ReceiverConfig leaves it
// zero.
const DefaultMaxRanges = 8

// ReceiverConfig configures a Receiver. The zero value gives the defaults.
type ReceiverConfig struct {
	// Window is the capacity of the reorder buffer: the receiver accepts
	// sequence numbers from NextPop up to, not including, NextPop+Window.
	// Zero means DefaultWindow; it must not exceed MaxWindow.
	Window int
	// MaxRanges is the most SACK ranges an Ack reports. Zero means
	// DefaultMaxRanges; it must not exceed MaxAckRanges.
	MaxRanges int
}

func (c ReceiverConfig) withDefaults() ReceiverConfig {
	if c.Window < 0 || c.Window > MaxWindow {
		panic(fmt.Sprintf("window: ReceiverConfig.Window %d out of [0, %d]", c.Window, MaxWindow))
	}
	if c.MaxRanges < 0 || c.MaxRanges > MaxAckRanges {
		panic(fmt.Sprintf("window: ReceiverConfig.MaxRanges %d out of [0, %d]", c.MaxRanges, MaxAckRanges))
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MaxRanges == 0 {
		c.MaxRanges = DefaultMaxRanges
	}
	return c
}

// Verdict says what Receiver.Push did with a value.
type Verdict int

const (
	// Accepted: the value is new and was stored.
	Accepted Verdict = iota
	// Duplicate: the value was received before (it comes before Cum or is
	// already buffered) and was dropped. Every sequence number before
	// NextPop counts as a duplicate, however far behind: serial arithmetic
	// cannot tell a very old number from a very new one, and a number
	// beyond any honest window is garbage either way.
	Duplicate
	// OutOfWindow: the sequence number lies a window or more past NextPop;
	// the value was dropped, and the sender will send it again.
	OutOfWindow
)

func (v Verdict) String() string {
	switch v {
	case Accepted:
		return "Accepted"
	case Duplicate:
		return "Duplicate"
	case OutOfWindow:
		return "OutOfWindow"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// ReceiverStats holds cumulative counters of a Receiver.
type ReceiverStats struct {
	Accepted    uint64 // values stored
	Duplicates  uint64 // values dropped as duplicates
	OutOfWindow uint64 // values dropped as out of window
	Popped      uint64 // values delivered by Pop
	Released    uint64 // values released by Drain
}

// Receiver is the receive side of a reliable window: a reorder buffer that
// delivers values exactly once and in sequence order whatever order, and how
// many times, they arrive in; it builds the acknowledgements (cumulative,
// SACK, duplicate report and flow-control limit) that drive a Sender.
//
// Values are kept in a ring indexed by sequence number, with a bitmap of the
// slots in use. The ring starts small and doubles when a value arrives that
// lies beyond it, up to the window rounded up to a power of two; it never
// shrinks, so once it is as large as the traffic needs nothing is allocated
// per value. Two positions move through the sequence space:
//
//	NextPop <= Cum <= (highest received) + 1
//
// NextPop is the next value Pop returns; Cum is the first sequence number not
// received. Values in [NextPop, Cum) are ready for Pop; values above Cum wait
// for the gap below them to fill. A caller that pops everything it can after
// each Push keeps NextPop == Cum.
//
// A Receiver is not safe for concurrent use. It does no I/O.
type Receiver[T any] struct {
	vals  []T     // the ring: the value of seq is at seq & vmask
	vmask uint32  // len(vals)-1
	have  bitRing // numbers held; as large as vals, and at least 64
	room  int     // min(window, len(vals)): Push takes its slow path from this distance on

	window    int
	maxRanges int

	base     Seq // NextPop
	cum      Seq // first sequence number not received
	highest  Seq // highest sequence number received; Cum-1 if none above Cum
	recent   Seq // most recently received number that went above Cum
	buffered int

	dupValid bool
	dup      Seq

	ranges []Range // reused by Ack

	stats ReceiverStats
}

// NewReceiver returns a Receiver that expects isn first. It panics if cfg is
// invalid.
func NewReceiver[T any](isn Seq, cfg ReceiverConfig) *Receiver[T] {
	return newReceiver[T](isn, cfg, min(minRing, pow2(cfg.Window)))
}

// newReceiver is NewReceiver with a ring that starts at initial slots
// (rounded up to a power of two, and at most ringSize(Window): the size it
// had when it was allocated whole). Tests start it at 1, to make it grow as
// often as it can, and at ringSize(Window), to compare with the whole ring.
func newReceiver[T any](isn Seq, cfg ReceiverConfig, initial int) *Receiver[T] {
	cfg = cfg.withDefaults()
	size := min(pow2(initial), ringSize(cfg.Window))
	return &Receiver[T]{
		vals:      make([]T, size),
		vmask:     uint32(size - 1),
		room:      min(cfg.Window, size),
		have:      newBitRing(max(size, 64)),
		window:    cfg.Window,
		maxRanges: cfg.MaxRanges,
		base:      isn,
		cum:       isn,
		highest:   isn.Add(-1),
		recent:    isn.Add(-1),
		ranges:    make([]Range, 0, cfg.MaxRanges),
	}
}

// Push offers the value with sequence number seq. A new value within the
// window is stored (Accepted); a value received before is dropped and
// remembered for the next Ack's duplicate report (Duplicate); a value a
// window or more ahead of NextPop is dropped (OutOfWindow).
func (r *Receiver[T]) Push(seq Seq, v T) Verdict {
	d := seq.Sub(r.base)
	if uint(d) >= uint(r.room) {
		// Before NextPop, out of window, or beyond the ring (so not
		// held: everything held lies in [NextPop, NextPop+len(vals))).
		return r.pushOutside(seq, v, d)
	}
	if r.have.get(seq) {
		return r.duplicate(seq)
	}
	r.vals[uint32(seq)&r.vmask] = v
	r.have.set(seq)
	r.buffered++
	r.stats.Accepted++
	if r.highest.Less(seq) {
		r.highest = seq
	}
	if seq == r.cum {
		// Everything received above the gap this value filled is now in
		// order too. It all lies in [NextPop, NextPop+len(vals)): the
		// run must stop there, and not come round to NextPop.
		r.cum = seq.Add(r.have.runUp(seq, len(r.vals)-d, true))
	} else {
		r.recent = seq
	}
	return Accepted
}

// Pop returns the next value in sequence order, if it has been received.
func (r *Receiver[T]) Pop() (v T, ok bool) {
	if r.base == r.cum {
		return v, false
	}
	i := uint32(r.base) & r.vmask
	v = r.vals[i]
	var zero T
	r.vals[i] = zero // let the value be collected
	r.have.clear(r.base)
	r.base++
	r.buffered--
	r.stats.Popped++
	return v, true
}

// Cum returns the next expected sequence number: every number before it has
// been received. It is the Cum of the next Ack.
func (r *Receiver[T]) Cum() Seq { return r.cum }

// NextPop returns the sequence number of the value the next successful Pop
// returns; every value before it has been popped. It is the start of the
// window.
func (r *Receiver[T]) NextPop() Seq { return r.base }

// Buffered returns how many values the Receiver holds (ready or not) that
// have not been popped.
func (r *Receiver[T]) Buffered() int { return r.buffered }

// Window returns the configured window.
func (r *Receiver[T]) Window() int { return r.window }

// Ack builds an acknowledgement of everything received so far and clears the
// duplicate report. backlog is how many popped values the caller still
// holds undelivered; it reduces the credit so that the receiver's total
// memory (buffer plus backlog) stays within the window:
//
//	Limit = NextPop + max(0, Window - backlog)
//
// Values waiting in the buffer are not subtracted: they lie in
// [NextPop, NextPop+Window) already, so they are inside the window, as
// out-of-order data is inside TCP's receive window (RFC 9293 section 3.4:
// RCV.NXT "is the left or lower edge of the receive window"). Subtracting
// them would pull the right edge back each time one arrives, and "shrinking
// the window" is "strongly discouraged" (RFC 9293 section 3.8.6).
//
// The returned Ranges slice is reused by the next call: encode or copy it
// (Ack.Clone) before calling Ack again.
func (r *Receiver[T]) Ack(backlog int) Ack {
	credit := max(r.window-max(backlog, 0), 0)
	a := Ack{
		Cum:      r.cum,
		Limit:    r.base.Add(credit),
		DupValid: r.dupValid,
		Dup:      r.dup,
	}
	r.dupValid = false
	a.Ranges = r.sackRanges()
	return a
}

// sackRanges fills r.ranges with the received ranges above Cum: first the
// one holding the most recent arrival (RFC 2018 section 4), then the others
// from the highest down. RFC 2018 fills the rest with the most recently
// reported blocks; the highest blocks are where new data lands, and when the
// cap bites it is the lowest, oldest blocks that are left out, as quic-go's
// received_packet_history drops its lowest range.
func (r *Receiver[T]) sackRanges() []Range {
	rs := r.ranges[:0]
	if !r.cum.Less(r.highest) {
		r.ranges = rs
		return nil // nothing above Cum
	}
	var first Range
	hasFirst := false
	if r.cum.Less(r.recent) && r.recent.LessEq(r.highest) && r.have.get(r.recent) {
		// recent lies in (Cum, highest] and is held. (It always is when it
		// comes after Cum, since only Pop clears bits and only below Cum;
		// the checks guard against a recent left 2^31 behind by a long run
		// of in-order arrivals, which reads as ahead.)
		lo := r.recent.Add(1 - r.have.runDown(r.recent, r.recent.Sub(r.cum), true))
		hi := r.recent.Add(r.have.runUp(r.recent, r.highest.Sub(r.recent)+1, true) - 1)
		first, hasFirst = Range{lo, hi}, true
		rs = append(rs, first)
	}
	top := r.highest
	for len(rs) < r.maxRanges && r.cum.Less(top) {
		k := r.have.runDown(top, top.Sub(r.cum), true) // >= 1: top is held
		rg := Range{top.Add(1 - k), top}
		if !hasFirst || rg != first {
			rs = append(rs, rg)
		}
		top = top.Add(-k)
		top = top.Add(-r.have.runDown(top, top.Sub(r.cum), false)) // skip the gap
	}
	r.ranges = rs
	return rs
}

// AppendMissing appends to dst the gaps between Cum and the highest number
// received, lowest first, at most max of them, and returns the extended
// slice. A receiver that repairs loss by asking (a NACK, as a multicast
// subscriber would) sends these.
func (r *Receiver[T]) AppendMissing(dst []Range, max int) []Range {
	s := r.cum
	for n := 0; n < max && s.Less(r.highest); n++ {
		g := r.have.runUp(s, r.highest.Sub(s), false)
		dst = append(dst, Range{s, s.Add(g - 1)})
		s = s.Add(g)
		s = s.Add(r.have.runUp(s, r.highest.Sub(s)+1, true))
	}
	return dst
}

// Drain calls release for every value held, ready or not, in sequence
// order, and forgets them. Afterwards NextPop is Cum and nothing is buffered;
// values above Cum are forgotten and would be accepted again. It is meant for
// the end of a session.
func (r *Receiver[T]) Drain(release func(T)) {
	var zero T
	if r.base.LessEq(r.highest) {
		n := r.highest.Sub(r.base) + 1
		for k := 0; k < n; k++ {
			seq := r.base.Add(k)
			if !r.have.get(seq) {
				continue
			}
			i := uint32(seq) & r.vmask
			v := r.vals[i]
			r.vals[i] = zero
			r.stats.Released++
			release(v)
		}
	}
	r.have.reset()
	r.buffered = 0
	r.base = r.cum
	r.highest = r.cum.Add(-1)
	r.recent = r.highest
}

// Stats returns the cumulative counters.
func (r *Receiver[T]) Stats() ReceiverStats { return r.stats }

// pushOutside is Push for a seq, d after NextPop, that lies outside the
// window or the ring: a duplicate if it comes before NextPop, out of window
// if it lies a window or more past it, and otherwise accepted once the ring
// has grown to hold it. (It is a function of its own, called last, so that
// the compiler does not save registers for a call on every Push.)
func (r *Receiver[T]) pushOutside(seq Seq, v T, d int) Verdict {
	switch {
	case d < 0:
		return r.duplicate(seq)
	case d >= r.window:
		return r.outOfWindow()
	}
	r.grow(d)
	return r.Push(seq, v)
}

func (r *Receiver[T]) duplicate(seq Seq) Verdict {
	r.dupValid, r.dup = true, seq
	r.stats.Duplicates++
	return Duplicate
}

func (r *Receiver[T]) outOfWindow() Verdict {
	r.stats.OutOfWindow++
	return OutOfWindow
}

// grow doubles the ring until it holds NextPop+d, where d is below the
// window, and moves the values held into their new slots: a value's slot is
// its sequence number masked by the ring's size, so it changes with the size
// (and the values on either side of 2^32 stop, or start, sharing an end).
func (r *Receiver[T]) grow(d int) {
	size := len(r.vals)
	for size <= d {
		size <<= 1
	}
	vals := make([]T, size)
	mask := uint32(size - 1)
	// Everything held lies in [base, highest], within the old ring.
	n := 0
	if r.base.LessEq(r.highest) {
		n = r.highest.Sub(r.base) + 1
	}
	for k := 0; k < n; k++ {
		k += r.have.runUp(r.base.Add(k), n-k, false) // skip what is not held
		if k >= n {
			break
		}
		q := r.base.Add(k)
		vals[uint32(q)&mask] = r.vals[uint32(q)&r.vmask]
	}
	if size > r.have.size() {
		r.have.resize(size, r.base, n)
	}
	r.vals, r.vmask = vals, mask
	r.room = min(r.window, size)
}

// Footprint returns roughly how many bytes the Receiver's rings hold now:
// the ring of values, its bitmap and the buffer Ack reuses for SACK ranges.
// It starts at a few hundred bytes whatever the window, and grows with the
// spread of the sequence numbers held, up to about the window times the
// size of a T.
func (r *Receiver[T]) Footprint() int {
	var v T
	return cap(r.vals)*int(unsafe.Sizeof(v)) +
		cap(r.have.w)*8 +
		cap(r.ranges)*int(unsafe.Sizeof(Range{}))
}

// Shrink returns the ring to the size a new Receiver starts with, when it
// holds nothing (Buffered is 0), and reports whether it did: it frees what
// a burst of traffic grew, for a session that goes idle.
func (r *Receiver[T]) Shrink() bool {
	size := min(minRing, pow2(r.window))
	if r.buffered != 0 || len(r.vals) <= size {
		return false
	}
	r.vals = make([]T, size)
	r.vmask = uint32(size - 1)
	r.have = newBitRing(max(size, 64))
	r.room = min(r.window, size)
	return true
}
