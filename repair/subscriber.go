package repair

import (
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/window"
)

// SubscriberConfig configures a Subscriber. Zero fields take the defaults
// in brackets.
type SubscriberConfig struct {
	Window   int           // reorder buffer, messages [4096]
	NakDelay time.Duration // first NAK retry, and the least spacing of NAKs [2 ms]
	NakMax   time.Duration // NAK retry cap [100 ms]
	// NoRepair reports every gap as loss at once instead of asking for
	// repair (an unprivileged subscriber cannot send NAKs).
	NoRepair bool
	// Seed seeds the NAK schedule's jitter (0: random).
	Seed uint64
}

// Defaults.
const (
	DefaultWindow   = 4096
	DefaultNakDelay = 2 * time.Millisecond
	DefaultNakMax   = 100 * time.Millisecond
)

// WithDefaults returns c with every zero field set to its default.
func (c SubscriberConfig) WithDefaults() SubscriberConfig {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	c.Window = min(c.Window, window.MaxWindow)
	if c.NakDelay <= 0 {
		c.NakDelay = DefaultNakDelay
	}
	if c.NakMax <= 0 {
		c.NakMax = DefaultNakMax
	}
	c.NakMax = max(c.NakMax, c.NakDelay)
	return c
}

// Delivery is one message ready for the application, in MSN order. Lost
// counts the messages just before it that will never come (only when loss
// is accepted: NoRepair, or SkipTo).
type Delivery struct {
	MSN  window.Seq
	Data []byte
	Lost uint64
}

type item struct {
	msn  window.Seq
	data []byte
}

// Subscriber is the sans-IO state of a subscriber: what it holds, what it
// misses, when to NAK, and what is lost for good.
type Subscriber struct {
	cfg     SubscriberConfig
	started bool
	rx      *window.Receiver[item]
	// known is one past the highest MSN the publisher is known to have
	// sent (data seen, or a heartbeat's next).
	known  window.Seq
	oldest window.Seq // the publisher's oldest retained MSN, as last heard
	// skipped holds deliveries drained by SkipTo, before rx's.
	skipped []Delivery
	lost    uint64 // loss to report on the next delivery

	nakAt, lastNak time.Duration // next NAK due (-1 none), last sent (-1 never)
	sched          *retry.Schedule
	// urgent: the socket overran. The first gap found after it is NAKed
	// at once, without the NakDelay spacing; if no data arrives to show
	// the gap (the publisher went quiet), the NAK due after NakDelay asks
	// for the open tail.
	urgent, dataSince bool
	progressAt        window.Seq
	hi                window.Seq // highest MSN accepted (valid with hasHi)
	hasHi             bool
	missing           []window.Range
}

// NewSubscriber returns a Subscriber that has not seen the stream yet.
func NewSubscriber(cfg SubscriberConfig) *Subscriber {
	cfg = cfg.WithDefaults()
	return &Subscriber{
		cfg:     cfg,
		nakAt:   -1,
		lastNak: -1,
		sched: retry.NewSchedule(retry.ScheduleConfig{
			Initial: cfg.NakDelay, Max: cfg.NakMax, Multiplier: 2, Jitter: 0.25, Seed: cfg.Seed,
		}),
	}
}

// Config returns the configuration with defaults applied.
func (s *Subscriber) Config() SubscriberConfig { return s.cfg }

// Started reports whether the stream's start is set.
func (s *Subscriber) Started() bool { return s.started }

// Start sets the first MSN to deliver (late join: the publisher's
// position; or its oldest retained message).
func (s *Subscriber) Start(first window.Seq) {
	s.rx = window.NewReceiver[item](first, window.ReceiverConfig{Window: s.cfg.Window})
	s.known, s.oldest, s.progressAt = first, first, first
	s.started = true
}

// Position returns the next MSN to deliver: every one before it has been
// delivered (or reported lost).
func (s *Subscriber) Position() window.Seq {
	if !s.started {
		return 0
	}
	return s.rx.NextPop()
}

// Known returns one past the newest MSN known to exist.
func (s *Subscriber) Known() window.Seq { return s.known }

// Buffered returns the messages held (ready or not).
func (s *Subscriber) Buffered() int {
	if !s.started {
		return 0
	}
	return s.rx.Buffered() + len(s.skipped)
}

func (s *Subscriber) learn(next, oldest window.Seq) {
	if s.known.Less(next) && next.Sub(s.known) <= window.MaxWindow*2 {
		s.known = next
	}
	if s.oldest.Less(oldest) {
		s.oldest = oldest
	}
}

// OnData takes MDATA msn (data kept, not copied) carrying the publisher's
// oldest retained MSN. It reports what the reorder buffer did.
func (s *Subscriber) OnData(msn, oldest window.Seq, data []byte, now time.Duration) window.Verdict {
	s.learn(msn+1, oldest)
	if s.cfg.NoRepair && s.rx.Cum().Less(msn) && msn.Sub(s.rx.Cum()) < s.cfg.Window {
		s.skipTo(msn)
	}
	s.dataSince = true
	v := s.rx.Push(msn, item{msn, data})
	if v == window.Accepted && (!s.hasHi || s.hi.Less(msn)) {
		s.hi, s.hasHi = msn, true
	}
	s.gapCheck(now)
	return v
}

// OnHeartbeat takes a HEARTBEAT's next MSN and oldest retained MSN.
func (s *Subscriber) OnHeartbeat(next, oldest window.Seq, now time.Duration) {
	s.learn(next, oldest)
	if s.cfg.NoRepair && s.rx.Cum().Less(next) && s.rx.Cum() == s.rx.NextPop() && s.rx.Buffered() == 0 {
		s.skipTo(next)
	}
	s.gapCheck(now)
}

// OnOverrun tells the subscriber its socket overran (ENOBUFS): frames are
// lost that no sequence number shows yet. The next NAK, due at once unless
// one went out less than NakDelay ago, asks for the open tail.
func (s *Subscriber) OnOverrun(now time.Duration) {
	if s.cfg.NoRepair || !s.started {
		return
	}
	s.urgent, s.dataSince = true, false
	if at := now + s.cfg.NakDelay; s.nakAt < 0 || at < s.nakAt {
		s.nakAt = at
	}
}

// gapCheck schedules a NAK when something is missing and none is due.
func (s *Subscriber) gapCheck(now time.Duration) {
	if s.cfg.NoRepair {
		return
	}
	if s.progressAt.Less(s.rx.Cum()) {
		// Progress: the repair works; retry patiently from the start.
		s.progressAt = s.rx.Cum()
		if s.sched.Attempts() > 0 {
			s.sched.Reset(now)
		}
	}
	if !s.Missing() {
		s.nakAt = -1
		s.urgent = false
		return
	}
	switch {
	case s.urgent && s.dataSince:
		s.nakAt = now
	case s.nakAt < 0:
		s.schedule(now)
	}
}

func (s *Subscriber) schedule(now time.Duration) {
	at := now
	if s.lastNak >= 0 && now-s.lastNak < s.cfg.NakDelay {
		at = s.lastNak + s.cfg.NakDelay
	}
	if s.nakAt < 0 || at < s.nakAt {
		s.nakAt = at
	}
}

// Missing reports whether a message known to exist has not arrived.
func (s *Subscriber) Missing() bool {
	return s.started && (s.rx.Cum().Less(s.known))
}

// NakDeadline returns when the next NAK is due, or -1.
func (s *Subscriber) NakDeadline() time.Duration { return s.nakAt }

// Nak is one NAK to send.
type Nak struct {
	Ranges    []window.Range // valid until the next call
	Tail      bool
	TailStart window.Seq
}

// TakeNak returns the NAK due at now, if any, and schedules the next one
// on the backoff. The ranges are the gaps in the reorder buffer and, when
// the tail is unknown (after an overrun) or known to be missing, the tail
// from the highest MSN held on.
func (s *Subscriber) TakeNak(now time.Duration, maxRanges int) (Nak, bool) {
	if s.nakAt < 0 || now < s.nakAt || !s.started {
		return Nak{}, false
	}
	if !s.Missing() && !s.urgent {
		s.nakAt = -1
		return Nak{}, false
	}
	s.missing = s.rx.AppendMissing(s.missing[:0], maxRanges)
	n := Nak{Ranges: s.missing}
	// Above everything held: the known tail, open-ended after an overrun.
	top := s.rx.Cum()
	if s.hasHi && top.LessEq(s.hi) {
		top = s.hi + 1
	}
	if top.Less(s.known) || (s.urgent && !s.dataSince) {
		n.Tail, n.TailStart = true, top
	}
	if len(n.Ranges) == 0 && !n.Tail {
		s.nakAt = -1
		return Nak{}, false
	}
	s.urgent = false
	s.lastNak = now
	wait, _ := s.sched.Next(now)
	s.nakAt = now + max(wait, s.cfg.NakDelay)
	return n, true
}

// Unrepairable returns how many missing messages lie below the publisher's
// oldest retained MSN: they can never be repaired.
func (s *Subscriber) Unrepairable() (first window.Seq, count int) {
	if !s.started || !s.rx.Cum().Less(s.oldest) {
		return 0, 0
	}
	// Not held in [Cum, Oldest): the holes below the highest held, then
	// everything above it.
	s.missing = s.rx.AppendMissing(s.missing[:0], s.cfg.Window)
	c := 0
	for _, r := range s.missing {
		if !r.Start.Less(s.oldest) {
			break
		}
		end := r.End
		if s.oldest.LessEq(end) {
			end = s.oldest - 1
		}
		c += end.Sub(r.Start) + 1
	}
	top := s.rx.Cum()
	if s.hasHi && top.LessEq(s.hi) {
		top = s.hi + 1
	}
	if top.Less(s.oldest) {
		c += s.oldest.Sub(top)
	}
	return s.rx.Cum(), c
}

// SkipTo gives up on every message before to that has not arrived: what
// is held before it is delivered, with the gaps counted as Lost on the
// message after each. It returns how many messages it gave up.
func (s *Subscriber) SkipTo(to window.Seq) uint64 {
	before := s.lost
	for _, d := range s.skipped {
		before += d.Lost
	}
	s.skipTo(to)
	after := s.lost
	for _, d := range s.skipped {
		after += d.Lost
	}
	return after - before
}

func (s *Subscriber) skipTo(to window.Seq) {
	if !s.rx.NextPop().Less(to) {
		return
	}
	expect := s.rx.NextPop()
	var keep []item
	s.rx.Drain(func(it item) {
		if it.msn.Less(to) {
			s.lost += uint64(it.msn.Sub(expect))
			s.skipped = append(s.skipped, Delivery{MSN: it.msn, Data: it.data, Lost: s.lost})
			s.lost = 0
			expect = it.msn + 1
			return
		}
		keep = append(keep, it)
	})
	s.lost += uint64(to.Sub(expect))
	s.rx = window.NewReceiver[item](to, window.ReceiverConfig{Window: s.cfg.Window})
	for _, it := range keep {
		s.rx.Push(it.msn, it)
	}
	if s.known.Less(to) {
		s.known = to
	}
	s.progressAt = s.rx.Cum()
}

// Pop returns the next delivery in order, if ready.
func (s *Subscriber) Pop() (Delivery, bool) {
	if len(s.skipped) > 0 {
		d := s.skipped[0]
		s.skipped[0] = Delivery{}
		s.skipped = s.skipped[1:]
		if len(s.skipped) == 0 {
			s.skipped = nil
		}
		return d, true
	}
	if !s.started {
		return Delivery{}, false
	}
	it, ok := s.rx.Pop()
	if !ok {
		return Delivery{}, false
	}
	d := Delivery{MSN: it.msn, Data: it.data, Lost: s.lost}
	s.lost = 0
	return d, true
}

// Drain releases every held payload (end of the subscription).
func (s *Subscriber) Drain(release func([]byte)) {
	for _, d := range s.skipped {
		release(d.Data)
	}
	s.skipped = nil
	if s.rx != nil {
		s.rx.Drain(func(it item) { release(it.data) })
	}
}

// SetNoRepair stops repair: from now on every gap is reported as loss (an
// unprivileged subscriber finds out it cannot send NAKs). Messages held
// above a gap are delivered after it, the gap counted as Lost.
func (s *Subscriber) SetNoRepair() {
	s.cfg.NoRepair = true
	s.nakAt = -1
	s.urgent = false
	if s.started && s.hasHi && s.rx.Cum().LessEq(s.hi) {
		s.skipTo(s.hi + 1)
	}
}

// PendingLost returns the loss counted but not yet reported on a
// delivery (the stream may end before another message comes to carry it).
func (s *Subscriber) PendingLost() uint64 { return s.lost }

// Oldest returns the publisher's oldest retained MSN as last heard.
func (s *Subscriber) Oldest() window.Seq { return s.oldest }

// Restart moves the start of the stream to at, before anything was
// delivered: what is held from at on is kept, the rest forgotten, and
// nothing is reported lost (a subscriber that joined late and found its
// start already gone starts again at the publisher's oldest message).
func (s *Subscriber) Restart(at window.Seq) {
	var keep []item
	s.rx.Drain(func(it item) {
		if !it.msn.Less(at) {
			keep = append(keep, it)
		}
	})
	s.skipped, s.lost = nil, 0
	s.rx = window.NewReceiver[item](at, window.ReceiverConfig{Window: s.cfg.Window})
	for _, it := range keep {
		s.rx.Push(it.msn, it)
	}
	if s.known.Less(at) {
		s.known = at
	}
	s.progressAt = s.rx.Cum()
}
