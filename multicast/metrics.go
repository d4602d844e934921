package multicast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/cnlink/cnlink"
)

// This file connects a Publisher or a Subscriber to OpenTelemetry.
// docs/OBSERVABILITY.md (section "Multicast") lists every instrument; keep
// the two in step (TestMetricsDocumented checks them against each other).
//
// Cost model, as in package reliable: every instrument is observable. The
// engine keeps its Stats counters in atomics anyway; the callback
// registered here reads Stats() when the SDK collects, so metrics add no
// call, no atomic and no allocation per message or per datagram; with the
// default no-op provider the callback never runs. Registration builds the
// attribute sets once and parks one goroutine per endpoint, which
// unregisters the callback when the endpoint ends (as proc's
// RegisterMetrics does).
//
// Attributes, as in package reliable: every series carries
// cnlink.local.port, the endpoint's own netlink port, so that several
// publishers or subscribers in one process report separate series
// (OpenTelemetry forbids two observations of one instrument with one
// attribute set in a collection); an application that wants one series
// per process drops it with a View (docs/OBSERVABILITY.md). The
// publisher's port, as seen by a subscriber, is not an attribute: it is
// kernel-assigned and changes with every publisher restart, and the
// subscriber's own port already keeps series apart. Group, channel and
// role say which stream and which end.

// instrumentationName is the scope of the package's meter: its import
// path, at version cnlink.Version.
const instrumentationName = "github.com/cnlink/cnlink/multicast"

// Attribute keys (OpenTelemetry's attribute naming: namespaced under
// cnlink., lower snake_case). cnlink.local.port and cnlink.channel are the
// keys package reliable uses.
const (
	attrLocalPort  = attribute.Key("cnlink.local.port")
	attrChannel    = attribute.Key("cnlink.channel")
	attrGroup      = attribute.Key("cnlink.multicast.group")
	attrRole       = attribute.Key("cnlink.multicast.role")
	attrNakOutcome = attribute.Key("cnlink.multicast.nak.outcome")
	attrRepairMode = attribute.Key("cnlink.multicast.repair.mode")
	attrEvict      = attribute.Key("cnlink.multicast.evict.reason")
	attrReject     = attribute.Key("cnlink.reject.reason")
)

// otherReason is the cnlink.reject.reason of drops whose reason Stats
// does not name (OpenTelemetry's value for an unknown enumeration member).
const otherReason = "_OTHER"

// Roles, the values of cnlink.multicast.role.
const (
	rolePublisher  = "publisher"
	roleSubscriber = "subscriber"
)

// Descriptions of the instruments both ends register: the SDK takes two
// registrations of one name as one instrument only if they agree.
const (
	descPeerBusy = "Unicast sends refused with EAGAIN and retried later: publisher: repair datagrams; subscriber: NAK and STATUS frames"
	descStatus   = "STATUS frames (position reports): publisher: handled; subscriber: sent"
	descRejected = "Datagrams and frames dropped on receipt, by reason (docs/PROTOCOL.md §16.8)"
	descLag      = "Messages behind: subscriber: known to exist and not yet delivered (Known - Position); publisher: published and not yet delivered by the slowest registered subscriber (Next - Slowest)"
)

// Eviction reasons, the values of cnlink.multicast.evict.reason, in the
// order of evictedByReason's results.
var evictReasonNames = [...]string{"timeout", "laggard", "refused"}

// evictedByReason splits a publisher's evictions by reason. (An abort's
// EVICT 4 ends the publisher and is not counted.)
func evictedByReason(st *PublisherStats) [len(evictReasonNames)]int64 {
	return [...]int64{u(st.EvictedTimeout), u(st.EvictedLaggard), u(st.EvictedRefused)}
}

// metricsMeter returns the package's meter from mp (nil: the global
// provider, a no-op until the application installs an SDK).
func metricsMeter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(instrumentationName, metric.WithInstrumentationVersion(cnlink.Version))
}

// instrumentFactory creates observable instruments on one meter and
// remembers the first error (invalid name or unit: the tests rule them
// out; the instrument returned then is a no-op).
type instrumentFactory struct {
	m    metric.Meter
	errs []error
	all  []metric.Observable
}

func (f *instrumentFactory) note(err error) {
	if err != nil {
		f.errs = append(f.errs, err)
	}
}

// counter: a cumulative count (a Prometheus counter, _total).
func (f *instrumentFactory) counter(name, unit, desc string) metric.Int64ObservableCounter {
	c, err := f.m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	f.note(err)
	f.all = append(f.all, c)
	return c
}

// updown: a current count that adds up across endpoints (OpenTelemetry's
// conventions ask for an up-down counter; a Prometheus gauge).
func (f *instrumentFactory) updown(name, unit, desc string) metric.Int64ObservableUpDownCounter {
	c, err := f.m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	f.note(err)
	f.all = append(f.all, c)
	return c
}

// gauge: a current value that does not add up (a lag).
func (f *instrumentFactory) gauge(name, unit, desc string) metric.Int64ObservableGauge {
	c, err := f.m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	f.note(err)
	f.all = append(f.all, c)
	return c
}

// register registers cb for every instrument created, and returns an
// idempotent unregister that also runs when done closes (the endpoint
// ended: its series go). Without an error it never returns nil.
func (f *instrumentFactory) register(cb metric.Callback, done <-chan struct{}) (func(), error) {
	if len(f.errs) > 0 {
		return func() {}, fmt.Errorf("cnlink/multicast: metrics: %w", errors.Join(f.errs...))
	}
	reg, err := f.m.RegisterCallback(cb, f.all...)
	if err != nil {
		return func() {}, fmt.Errorf("cnlink/multicast: metrics: %w", err)
	}
	stop := make(chan struct{})
	var once sync.Once
	unregister := func() {
		once.Do(func() {
			close(stop)
			_ = reg.Unregister()
		})
	}
	if done != nil {
		// Like proc.Monitor.RegisterMetrics: the series go when the
		// endpoint ends, whether or not its owner calls unregister.
		go func() {
			select {
			case <-done:
				unregister()
			case <-stop:
			}
		}()
	}
	return unregister, nil
}

// baseAttrs are the attributes of every series of one endpoint.
func baseAttrs(role string, group uint32, ch fmt.Stringer, port uint32) []attribute.KeyValue {
	return []attribute.KeyValue{
		attrRole.String(role),
		attrGroup.Int64(int64(group)),
		attrChannel.String(ch.String()),
		attrLocalPort.Int64(int64(port)),
	}
}

// withAttrs returns an ObserveOption of base plus kv, built once.
func withAttrs(base []attribute.KeyValue, kv ...attribute.KeyValue) metric.ObserveOption {
	all := make([]attribute.KeyValue, 0, len(base)+len(kv))
	all = append(append(all, base...), kv...)
	return metric.WithAttributeSet(attribute.NewSet(all...))
}

// u converts a counter for ObserveInt64.
func u(v uint64) int64 { return int64(min(v, math.MaxInt64)) }

// ahead returns how far a is ahead of b in MSN space (serial arithmetic;
// 0 if it is behind, which two atomics read one after the other may
// briefly show).
func ahead(a, b uint32) int64 { return int64(max(int32(a-b), 0)) }

// rejectedObserver observes cnlink.multicast.frame.rejected by reason,
// caching an attribute set per reason seen (the reasons are few and
// fixed). Reasons never seen stay out, as in package reliable.
type rejectedObserver struct {
	inst metric.Int64ObservableCounter
	base []attribute.KeyValue
	mu   sync.Mutex
	opts map[string]metric.ObserveOption
}

func (r *rejectedObserver) opt(reason string) metric.ObserveOption {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.opts[reason]
	if !ok {
		if r.opts == nil {
			r.opts = make(map[string]metric.ObserveOption)
		}
		o = withAttrs(r.base, attrReject.String(reason))
		r.opts[reason] = o
	}
	return o
}

// observe reports by (counts by reason) and, as _OTHER, what total has
// beyond their sum.
func (r *rejectedObserver) observe(o metric.Observer, by map[string]uint64, total uint64) {
	var sum uint64
	for reason, v := range by {
		sum += v
		if v > 0 {
			o.ObserveInt64(r.inst, u(v), r.opt(reason))
		}
	}
	if total > sum {
		o.ObserveInt64(r.inst, u(total-sum), r.opt(otherReason))
	}
}

// NAK outcomes, the values of cnlink.multicast.nak.outcome, in the order
// of nakOutcomes' results.
var nakOutcomeNames = [...]string{"handled", "unsent", "too_old", "rate_limited", "no_room"}

// nakOutcomes splits the NAKs a publisher received by outcome. Naks counts
// the NAKs that passed the rate limit and parsed; NaksUnsent, NaksTooOld
// and NaksNoRoom are among them, so handled (queued for repair) is the
// rest. The owner counts a NAK in Naks before its outcome and Stats reads
// them one after the other, so handled may read one low or high for an
// instant; hi keeps it monotonic.
func nakOutcomes(st *PublisherStats, hi *atomic.Int64) [len(nakOutcomeNames)]int64 {
	other := st.NaksUnsent + st.NaksTooOld + st.NaksNoRoom
	var handled int64
	if st.Naks > other {
		handled = u(st.Naks - other)
	}
	for {
		old := hi.Load()
		if handled <= old {
			handled = old
			break
		}
		if hi.CompareAndSwap(old, handled) {
			break
		}
	}
	return [...]int64{handled, u(st.NaksUnsent), u(st.NaksTooOld), u(st.NaksRateLimited), u(st.NaksNoRoom)}
}

// registerPublisherMetrics reports p's Stats through mp (nil: the global
// provider) until p ends or unregister is called, whichever comes first.
// Call it once p.cfg, p.tr and p.done are set. It fails only if the
// provider refuses an instrument or the callback; p works either way.
func registerPublisherMetrics(mp metric.MeterProvider, p *Publisher) (unregister func(), err error) {
	f := &instrumentFactory{m: metricsMeter(mp)}
	// Names follow OpenTelemetry's naming guidelines, as package
	// reliable's do: singular namespaces, .count for counts of things,
	// usage/limit for an occupancy and its bound, no unit in the name.
	published := f.counter("cnlink.multicast.message.published", "{message}",
		"Messages published: multicast for the first time (repairs not included)")
	pubBytes := f.counter("cnlink.multicast.payload.published", "By",
		"Payload bytes of the messages in cnlink.multicast.message.published")
	dgrams := f.counter("cnlink.multicast.datagram.count", "{datagram}",
		"Datagrams multicast to the group: data, repairs by multicast and heartbeats")
	heartbeats := f.counter("cnlink.multicast.heartbeat.count", "{heartbeat}",
		"Heartbeats multicast to the group")
	naks := f.counter("cnlink.multicast.nak.received", "{nak}",
		"NAK frames received from subscribers, by outcome: handled (queued for repair), unsent (asked for MSNs never sent: rejected), too_old (partly below the history: answered with a heartbeat), rate_limited (dropped), no_room (too many subscriber ports: dropped)")
	repairs := f.counter("cnlink.multicast.repair.sent", "{message}",
		"Messages sent again as repairs, by mode: unicast (to the subscriber that asked) or multicast (to the group, when several miss them)")
	busy := f.counter("cnlink.multicast.send.peer_busy", "{send}",
		descPeerBusy)
	statuses := f.counter("cnlink.multicast.status.count", "{status}",
		descStatus)
	registered := f.counter("cnlink.multicast.subscriber.registered", "{subscriber}",
		"Subscriber registrations accepted (flow control now waits for them)")
	evicted := f.counter("cnlink.multicast.subscriber.evicted", "{subscriber}",
		"Subscribers dropped by the publisher with an EVICT, by reason: timeout (silent for SubscriberTimeout), laggard (LaggardTimeout), refused (registration refused: MaxSubscribers or Allow)")
	active := f.updown("cnlink.multicast.subscriber.active", "{subscriber}",
		"Subscribers registered now")
	histUsage := f.updown("cnlink.multicast.history.usage", "{message}",
		"Messages retained for repair (Next - Oldest)")
	histLimit := f.updown("cnlink.multicast.history.limit", "{message}",
		"The history's bound in messages (PublisherConfig.History)")
	blocked := f.counter("cnlink.multicast.publish.blocked", "{publish}",
		"Publish calls that had to wait for flow control (the queue was full)")
	rejected := &rejectedObserver{inst: f.counter("cnlink.multicast.frame.rejected", "{frame}", descRejected)}
	lag := f.gauge("cnlink.multicast.lag", "{message}", descLag)

	base := baseAttrs(rolePublisher, p.cfg.Group, p.cfg.Channel, p.tr.LocalPort())
	all := withAttrs(base)
	rejected.base = base
	var nakO [len(nakOutcomeNames)]metric.ObserveOption
	for i, name := range nakOutcomeNames {
		nakO[i] = withAttrs(base, attrNakOutcome.String(name))
	}
	uniO, mcO := withAttrs(base, attrRepairMode.String("unicast")), withAttrs(base, attrRepairMode.String("multicast"))
	var evictO [len(evictReasonNames)]metric.ObserveOption
	for i, name := range evictReasonNames {
		evictO[i] = withAttrs(base, attrEvict.String(name))
	}
	limit := int64(p.cfg.History)
	var handledHi atomic.Int64
	return f.register(func(_ context.Context, o metric.Observer) error {
		st := p.Stats()
		o.ObserveInt64(published, u(st.Published), all)
		o.ObserveInt64(pubBytes, u(st.Bytes), all)
		o.ObserveInt64(dgrams, u(st.Datagrams), all)
		o.ObserveInt64(heartbeats, u(st.Heartbeats), all)
		for i, v := range nakOutcomes(&st, &handledHi) {
			o.ObserveInt64(naks, v, nakO[i])
		}
		o.ObserveInt64(repairs, u(st.RepairsUnicast), uniO)
		o.ObserveInt64(repairs, u(st.RepairsMulticast), mcO)
		o.ObserveInt64(busy, u(st.RepairBusy), all)
		o.ObserveInt64(statuses, u(st.Statuses), all)
		o.ObserveInt64(registered, u(st.Registered), all)
		for i, v := range evictedByReason(&st) {
			o.ObserveInt64(evicted, v, evictO[i])
		}
		o.ObserveInt64(active, int64(st.Subscribers), all)
		o.ObserveInt64(histUsage, ahead(st.Next, st.Oldest), all)
		o.ObserveInt64(histLimit, limit, all)
		o.ObserveInt64(blocked, u(st.Blocked), all)
		rejected.observe(o, st.RejectedBy, st.Rejected)
		o.ObserveInt64(lag, ahead(st.Next, st.Slowest), all)
		return nil
	}, p.done)
}

// registerSubscriberMetrics reports s's Stats through mp (nil: the global
// provider) until s ends or unregister is called, whichever comes first.
// Call it once s.cfg, s.tr and s.done are set. It fails only if the
// provider refuses an instrument or the callback; s works either way.
func registerSubscriberMetrics(mp metric.MeterProvider, s *Subscriber) (unregister func(), err error) {
	f := &instrumentFactory{m: metricsMeter(mp)}
	received := f.counter("cnlink.multicast.message.received", "{message}",
		"Messages accepted into the stream, each once: originals and repairs, duplicates not included")
	delivered := f.counter("cnlink.multicast.message.delivered", "{message}",
		"Messages handed to the application (Recv)")
	delivBytes := f.counter("cnlink.multicast.payload.delivered", "By",
		"Payload bytes of the messages in cnlink.multicast.message.delivered")
	repaired := f.counter("cnlink.multicast.repair.received", "{message}",
		"Messages that arrived as repairs (unicast or multicast) and filled a gap")
	dups := f.counter("cnlink.multicast.duplicate.count", "{message}",
		"Messages received again and suppressed (a repair that crossed the original, or a multicast repair meant for others)")
	naks := f.counter("cnlink.multicast.nak.sent", "{nak}",
		"NAK frames sent to the publisher")
	statuses := f.counter("cnlink.multicast.status.count", "{status}",
		descStatus)
	busy := f.counter("cnlink.multicast.send.peer_busy", "{send}",
		descPeerBusy)
	overruns := f.counter("cnlink.multicast.overrun.count", "{overrun}",
		"Receive-queue overruns (ENOBUFS): the kernel dropped datagrams for this socket; repair starts at once")
	lost := f.counter("cnlink.multicast.message.lost", "{message}",
		"Messages lost for good: reported as Message.Lost or a LostError, never delivered")
	rejected := &rejectedObserver{inst: f.counter("cnlink.multicast.frame.rejected", "{frame}", descRejected)}
	lag := f.gauge("cnlink.multicast.lag", "{message}", descLag)
	window := f.updown("cnlink.multicast.window.limit", "{message}",
		"The reorder buffer in messages (SubscriberConfig.Window); the window announced may be smaller")

	base := baseAttrs(roleSubscriber, s.cfg.Group, s.cfg.Channel, s.tr.LocalPort())
	all := withAttrs(base)
	rejected.base = base
	win := int64(s.cfg.Window)
	return f.register(func(_ context.Context, o metric.Observer) error {
		st := s.Stats()
		o.ObserveInt64(received, u(st.Received), all)
		o.ObserveInt64(delivered, u(st.Delivered), all)
		o.ObserveInt64(delivBytes, u(st.Bytes), all)
		o.ObserveInt64(repaired, u(st.Repaired), all)
		o.ObserveInt64(dups, u(st.Duplicates), all)
		o.ObserveInt64(naks, u(st.Naks), all)
		o.ObserveInt64(statuses, u(st.Statuses), all)
		o.ObserveInt64(busy, u(st.SendBusy), all)
		o.ObserveInt64(overruns, u(st.Overruns), all)
		o.ObserveInt64(lost, u(st.Lost), all)
		rejected.observe(o, st.RejectedBy, st.Rejected)
		o.ObserveInt64(lag, ahead(st.Known, st.Position), all)
		o.ObserveInt64(window, win, all)
		return nil
	}, s.done)
}
