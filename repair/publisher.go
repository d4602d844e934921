package repair

import (
	"slices"
	"time"

	"github.com/cnlink/cnlink/window"
)

// PublisherConfig configures a Publisher. Zero fields take the defaults in
// brackets.
type PublisherConfig struct {
	History           int           // messages kept for repair [4096]
	HistoryBytes      int           // payload bytes kept for repair [4 MiB]
	MaxSubscribers    int           // ports with state: registered or repairing [64]
	SubscriberTimeout time.Duration // a registered subscriber silent this long is dropped [2 s]
	LaggardTimeout    time.Duration // >0: a subscriber holding the window closed this long is dropped [off]
	RepairHoldoff     time.Duration // an MSN repaired by multicast is not repaired again this soon [1 ms]
	MulticastMin      int           // subscribers missing an MSN for it to be repaired by multicast [2]
	MaxRanges         int           // ranges of one subscriber's repair queue [32]
}

// Defaults.
const (
	DefaultHistory           = 4096
	DefaultHistoryBytes      = 4 << 20
	DefaultMaxSubscribers    = 64
	DefaultSubscriberTimeout = 2 * time.Second
	DefaultRepairHoldoff     = time.Millisecond
	DefaultMulticastMin      = 2
	DefaultMaxRanges         = 32
)

// WithDefaults returns c with every zero field set to its default.
func (c PublisherConfig) WithDefaults() PublisherConfig {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.History, DefaultHistory)
	def(&c.HistoryBytes, DefaultHistoryBytes)
	def(&c.MaxSubscribers, DefaultMaxSubscribers)
	def(&c.MulticastMin, DefaultMulticastMin)
	def(&c.MaxRanges, DefaultMaxRanges)
	if c.SubscriberTimeout <= 0 {
		c.SubscriberTimeout = DefaultSubscriberTimeout
	}
	if c.RepairHoldoff <= 0 {
		c.RepairHoldoff = DefaultRepairHoldoff
	}
	return c
}

// Member is the publisher's state for one subscriber port: a registered
// subscriber (flow control, timeouts) or one that only asks for repairs.
type Member struct {
	Port       uint32
	Registered bool
	Pos        window.Seq // registered: every MSN before it was delivered
	Window     int        // registered: what it buffers from Pos on
	LastHeard  time.Duration
	Pending    Spans         // MSNs to repair to this port by unicast
	BusyUntil  time.Duration // a unicast repair met EAGAIN: wait until then
	blockedAt  time.Duration // holding the window closed since (-1: not)
}

// Eviction is a subscriber the publisher dropped.
type Eviction struct {
	Port   uint32
	Pos    window.Seq
	Reason uint32 // wire.Evict*
}

// Eviction reasons, as on the wire.
const (
	EvictTimeout uint32 = 1
	EvictLaggard uint32 = 2
	EvictRefused uint32 = 3
)

// NakVerdict says what OnNak did.
type NakVerdict int

const (
	NakQueued NakVerdict = iota // some MSNs were queued for repair (or were in flight)
	NakUnsent                   // a range reaches MSNs never sent: rejected whole
	NakTooOld                   // part of it lies below Oldest: answer with a heartbeat
	NakNoRoom                   // too many subscriber ports: dropped
)

// Publisher is the sans-IO state of one multicast stream's publisher.
type Publisher struct {
	cfg     PublisherConfig
	hist    *History
	members map[uint32]*Member
	order   []*Member // iteration order (stable, for determinism)

	recent   Spans // MSNs last repaired by multicast
	recentAt time.Duration
}

// NewPublisher returns a Publisher whose first message will be isn.
func NewPublisher(isn window.Seq, cfg PublisherConfig) *Publisher {
	cfg = cfg.WithDefaults()
	return &Publisher{
		cfg:     cfg,
		hist:    NewHistory(isn, cfg.History, cfg.HistoryBytes),
		members: make(map[uint32]*Member),
		recent:  NewSpans(cfg.MaxRanges),
	}
}

// Config returns the configuration with defaults applied.
func (p *Publisher) Config() PublisherConfig { return p.cfg }

// History returns the history (read it; push through Push).
func (p *Publisher) History() *History { return p.hist }

// Floor returns the lowest registered position: history below it may be
// evicted. With no registered subscriber it is Next.
func (p *Publisher) Floor() window.Seq {
	f := p.hist.Next()
	for _, m := range p.order {
		if m.Registered && m.Pos.Less(f) {
			f = m.Pos
		}
	}
	return f
}

// Limit returns the first MSN flow control forbids: Push may send MSNs
// before it. ok is false when no registered subscriber limits the stream.
func (p *Publisher) Limit() (limit window.Seq, ok bool) {
	for _, m := range p.order {
		if !m.Registered {
			continue
		}
		l := m.Pos.Add(min(m.Window, p.cfg.History))
		if !ok || l.Less(limit) {
			limit, ok = l, true
		}
	}
	return limit, ok
}

// CanPush reports whether a message of size bytes may be sent now.
func (p *Publisher) CanPush(size int) bool {
	if l, ok := p.Limit(); ok && !p.hist.Next().Less(l) {
		return false
	}
	return p.hist.Room(size, p.Floor())
}

// Push records msg as sent and returns its MSN and the payloads the
// history evicted (appended to evicted). ok is false if CanPush is.
func (p *Publisher) Push(msg []byte, evicted [][]byte) (window.Seq, [][]byte, bool) {
	if l, ok := p.Limit(); ok && !p.hist.Next().Less(l) {
		return 0, evicted, false
	}
	return p.hist.Push(msg, p.Floor(), evicted)
}

// SetBlocked tells the publisher whether messages are waiting that flow
// control holds back, so that it can time laggards.
func (p *Publisher) SetBlocked(now time.Duration, blocked bool) {
	l, ok := p.Limit()
	for _, m := range p.order {
		holding := blocked && ok && m.Registered && m.Pos.Add(min(m.Window, p.cfg.History)) == l
		switch {
		case !holding:
			m.blockedAt = -1
		case m.blockedAt < 0:
			m.blockedAt = now
		}
	}
}

// Member returns the state of port, if any.
func (p *Publisher) Member(port uint32) *Member { return p.members[port] }

// Members returns the members in a stable order; do not modify the slice.
func (p *Publisher) Members() []*Member { return p.order }

// Registered counts registered subscribers.
func (p *Publisher) Registered() int {
	n := 0
	for _, m := range p.order {
		if m.Registered {
			n++
		}
	}
	return n
}

func (p *Publisher) member(port uint32, now time.Duration) *Member {
	if m := p.members[port]; m != nil {
		return m
	}
	if len(p.order) >= p.cfg.MaxSubscribers {
		return nil
	}
	m := &Member{Port: port, LastHeard: now, Pending: NewSpans(p.cfg.MaxRanges), blockedAt: -1}
	p.members[port] = m
	p.order = append(p.order, m)
	return m
}

// dropRepairOnly makes room for a registration by forgetting the
// unregistered port heard from least recently (its queued repairs with
// it: it asks again): ports that only NAK must not keep subscribers out.
func (p *Publisher) dropRepairOnly() bool {
	var victim *Member
	for _, m := range p.order {
		if !m.Registered && (victim == nil || m.LastHeard < victim.LastHeard) {
			victim = m
		}
	}
	if victim == nil {
		return false
	}
	p.Remove(victim.Port)
	return true
}

// Remove forgets port.
func (p *Publisher) Remove(port uint32) {
	m := p.members[port]
	if m == nil {
		return
	}
	delete(p.members, port)
	p.order = slices.DeleteFunc(p.order, func(x *Member) bool { return x == m })
}

// StatusResult says what OnStatus did.
type StatusResult int

const (
	StatusUpdated    StatusResult = iota // a registered subscriber's position
	StatusRegistered                     // a new registration: answer with a heartbeat
	StatusLeft                           // unregistered
	StatusRefused                        // no room: answer with EVICT refused
	StatusStale                          // a position beyond Next (never sent): ignored
)

// OnStatus takes a STATUS from port: its position and window, or leave.
// A position may move backwards only at registration (a subscriber that
// joined late, or asks from the oldest message); after that a lower
// position is an old STATUS overtaken by a newer one and is ignored.
func (p *Publisher) OnStatus(port uint32, pos window.Seq, win int, leave bool, now time.Duration) StatusResult {
	if leave {
		if m := p.members[port]; m != nil && m.Registered {
			p.Remove(port)
			return StatusLeft
		}
		return StatusLeft
	}
	if p.hist.Next().Less(pos) {
		return StatusStale
	}
	m := p.member(port, now)
	if m == nil && p.dropRepairOnly() {
		m = p.member(port, now)
	}
	if m == nil {
		return StatusRefused
	}
	m.LastHeard = now
	w := max(1, win)
	if !m.Registered {
		// Never let a registration pin what is already gone.
		if pos.Less(p.hist.Oldest()) {
			pos = p.hist.Oldest()
		}
		m.Registered, m.Pos, m.Window = true, pos, w
		m.blockedAt = -1
		return StatusRegistered
	}
	if m.Pos.Less(pos) {
		m.Pos = pos
		m.blockedAt = -1
	}
	m.Window = w
	return StatusUpdated
}

// OnNak takes a NAK from port: inclusive ranges, and with tail all MSNs
// from tailStart to the newest. A range that reaches Next or beyond (a
// message never sent) rejects the whole NAK. MSNs below Oldest cannot be
// repaired (NakTooOld: the caller answers with a heartbeat that tells the
// subscriber what is gone); the rest are queued, except those repaired by
// multicast less than RepairHoldoff ago, which are in flight.
func (p *Publisher) OnNak(port uint32, ranges []window.Range, tail bool, tailStart window.Seq, now time.Duration) NakVerdict {
	next, old := p.hist.Next(), p.hist.Oldest()
	for _, r := range ranges {
		if r.End.Less(r.Start) || !p.hist.Sent(r.Start) || !p.hist.Sent(r.End) {
			return NakUnsent
		}
	}
	if tail && (next.Less(tailStart) || (tailStart != next && !p.hist.Sent(tailStart))) {
		return NakUnsent
	}
	m := p.member(port, now)
	if m == nil {
		return NakNoRoom
	}
	m.LastHeard = now
	tooOld := false
	fresh := now-p.recentAt < p.cfg.RepairHoldoff
	add := func(r window.Range) {
		if r.Start.Less(old) {
			tooOld = true
			r.Start = old
		}
		if r.End.Less(r.Start) {
			return
		}
		m.Pending.Add(r)
		if fresh {
			for i := 0; i < p.recent.Len(); i++ {
				m.Pending.Remove(p.recent.At(i))
			}
		}
	}
	for _, r := range ranges {
		add(r)
	}
	if tail && tailStart.Less(next) {
		add(window.Range{Start: tailStart, End: next - 1})
	}
	if tooOld {
		return NakTooOld
	}
	return NakQueued
}

// PlanMulticast appends to dst the ranges queued for at least MulticastMin
// ports, removes them from every queue and remembers them for the holdoff;
// the caller multicasts them as repairs. The rest stays queued for unicast
// (NextUnicast).
func (p *Publisher) PlanMulticast(now time.Duration, dst []window.Range) []window.Range {
	type ev struct {
		at    int // offset from Oldest
		delta int
	}
	old := p.hist.Oldest()
	var evs []ev
	registered := 0
	for _, m := range p.order {
		m.Pending.RemoveBelow(old)
		if !m.Registered {
			// Only registered subscribers count: a port that merely
			// NAKs cannot make the publisher multicast to the group.
			continue
		}
		registered++
		for i := 0; i < m.Pending.Len(); i++ {
			r := m.Pending.At(i)
			evs = append(evs, ev{r.Start.Sub(old), 1}, ev{r.End.Sub(old) + 1, -1})
		}
	}
	// On one host a multicast costs the kernel a copy per member, wanted
	// or not, and a duplicate costs each subscriber that did not want it:
	// multicast only what at least half the subscribers miss.
	need := max(p.cfg.MulticastMin, (registered+1)/2)
	if len(evs) < 2*need {
		return dst
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.at != b.at {
			return a.at - b.at
		}
		return a.delta - b.delta // close before open at the same point
	})
	start0 := len(dst)
	depth, from := 0, -1
	for _, e := range evs {
		before := depth
		depth += e.delta
		switch {
		case before < need && depth >= need:
			from = e.at
		case before >= need && depth < need:
			if e.at > from {
				dst = append(dst, window.Range{Start: old.Add(from), End: old.Add(e.at - 1)})
			}
		}
	}
	if len(dst) == start0 {
		return dst
	}
	p.recent.Reset()
	for _, r := range dst[start0:] {
		p.recent.Add(r)
		for _, m := range p.order {
			m.Pending.Remove(r)
		}
	}
	p.recentAt = now
	return dst
}

// Expire drops registered subscribers silent for SubscriberTimeout,
// laggards (LaggardTimeout), and unregistered ports with nothing queued
// and silent as long; it appends the registered ones it dropped to dst.
func (p *Publisher) Expire(now time.Duration, dst []Eviction) []Eviction {
	for i := 0; i < len(p.order); {
		m := p.order[i]
		var reason uint32
		switch {
		case now-m.LastHeard >= p.cfg.SubscriberTimeout && (m.Registered || m.Pending.Empty()):
			reason = EvictTimeout
		case m.Registered && p.cfg.LaggardTimeout > 0 && m.blockedAt >= 0 && now-m.blockedAt >= p.cfg.LaggardTimeout:
			reason = EvictLaggard
		default:
			i++
			continue
		}
		if m.Registered {
			dst = append(dst, Eviction{Port: m.Port, Pos: m.Pos, Reason: reason})
		}
		p.Remove(m.Port)
	}
	return dst
}

// Deadline returns when Expire next has work, or -1.
func (p *Publisher) Deadline() time.Duration {
	d := time.Duration(-1)
	for _, m := range p.order {
		if !m.Registered && !m.Pending.Empty() {
			// Kept until its repairs are sent (Expire skips it): its
			// timeout is no deadline, or a caller would spin on it.
			continue
		}
		t := m.LastHeard + p.cfg.SubscriberTimeout
		if m.Registered && p.cfg.LaggardTimeout > 0 && m.blockedAt >= 0 {
			t = min(t, m.blockedAt+p.cfg.LaggardTimeout)
		}
		if d < 0 || t < d {
			d = t
		}
	}
	return d
}
