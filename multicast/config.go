package multicast

import (
	"errors"
	"fmt"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/repair"
	"github.com/cnlink/cnlink/transport"
	"go.opentelemetry.io/otel/metric"
)

// DefaultChannel is the connector channel (cb_id) streams use when none is
// given. Kernel connectors use idx 1..10; this is not one of them.
var DefaultChannel = transport.CbID{Idx: 0x434e4c4b, Val: 2} // "CNLK", 2

// Limits of the datagram and message sizes.
const (
	// DefaultMaxDatagram is the largest datagram a publisher sends unless
	// configured: small enough that a subscriber with a 4 KiB receive
	// buffer (8 KiB after the kernel doubles it) still queues one.
	DefaultMaxDatagram = 8192
	// MaxDatagramLimit is the largest MaxDatagram allowed.
	MaxDatagramLimit = 65536
	// frameOverhead is nlmsghdr + cn_msg + the cnlink header.
	frameOverhead = transport.FrameHeaderLen + wire.HeaderLen
	// minDatagram fits the largest control frame, so nothing is ever
	// unsendable.
	minDatagram = frameOverhead + wire.NakFixedLen + wire.MaxRanges*wire.RangeLen
)

// ErrInvalidConfig: a Config the publisher or subscriber cannot use; the
// message names each field at fault.
var ErrInvalidConfig = errors.New("cnlink/multicast: invalid config")

// PublisherConfig configures a Publisher. The zero value, with Group set,
// is usable; zero fields take the defaults in brackets.
type PublisherConfig struct {
	// Group is the multicast group (1..32) to publish on. Use an even
	// group: only CAP_NET_ADMIN can join those, while any process can join
	// an odd one. Required.
	Group uint32
	// Channel is the connector channel [DefaultChannel].
	Channel transport.CbID

	// History bounds the messages kept for repair [4096]; it is also the
	// most a registered subscriber may fall behind before Publish blocks.
	History int
	// HistoryBytes bounds the payload bytes kept for repair [4 MiB].
	HistoryBytes int
	// MaxDatagram is the largest datagram sent [8192], at least 308 and
	// at most 65536. Messages are coalesced into datagrams up to it.
	MaxDatagram int
	// MaxMessage is the largest message Publish accepts [MaxDatagram - 48].
	MaxMessage int
	// QueueLen bounds the messages Publish queues before the owner takes
	// them [1024].
	QueueLen int

	// WaitSubscribers holds the first message back until this many
	// subscribers have registered (heartbeats keep announcing the stream
	// meanwhile), so that subscribers started before the publisher get
	// the stream from its first message, whatever the loss. 0: publish at
	// once; a subscriber then starts where it first hears the stream.
	WaitSubscribers int

	// MaxSubscribers bounds the subscriber ports the publisher keeps state
	// for (registered, or asking for repairs) [64].
	MaxSubscribers int
	// SubscriberTimeout drops a registered subscriber whose STATUS has not
	// been heard for this long, with EVICT timeout [2 s].
	SubscriberTimeout time.Duration
	// LaggardTimeout, if positive, drops a registered subscriber that
	// alone holds the publisher back (Publish blocked on its position) for
	// this long, with EVICT laggard [0: never; the publisher waits].
	LaggardTimeout time.Duration
	// Allow, if set, decides whether a subscriber may register and have
	// repairs (it is asked once per port and credentials). A refused
	// subscriber's STATUS gets EVICT refused, which ends it; its NAKs are
	// dropped. (Anyone in the group receives the multicast itself: keep a
	// private stream on an even group.)
	Allow func(port uint32, creds transport.Creds) bool

	// HeartbeatMin and HeartbeatMax pace heartbeats: the first after
	// HeartbeatMin of quiet following data, then doubling up to
	// HeartbeatMax while idle [1 ms, 100 ms].
	HeartbeatMin, HeartbeatMax time.Duration
	// NakRate and NakBurst bound the NAK frames handled per second
	// [10000, 1000]; the excess is dropped and counted.
	NakRate  float64
	NakBurst int
	// RepairHoldoff: an MSN repaired by multicast is not repaired again
	// within this time [1 ms].
	RepairHoldoff time.Duration
	// UnicastRepairs turns off repair by multicast: every repair goes
	// only to the subscriber that asked.
	UnicastRepairs bool

	// MeterProvider receives the metrics of docs/OBSERVABILITY.md; nil means
	// the global provider, a no-op until the application installs an SDK.
	MeterProvider metric.MeterProvider
}

// SubscriberConfig configures a Subscriber. Zero fields take the defaults
// in brackets.
type SubscriberConfig struct {
	// Group is the multicast group (1..32) to join. Required. Joining an
	// even group needs CAP_NET_ADMIN.
	Group uint32
	// Channel is the connector channel [DefaultChannel].
	Channel transport.CbID
	// Publisher, if non-zero, is the only port whose stream is accepted;
	// otherwise the first publisher heard on the channel is (and pinned,
	// with its credentials: another process on its port ends the
	// subscription with ErrPublisherGone).
	Publisher uint32
	// AcceptPublisher, if set, must return true for a datagram's source
	// port and credentials (SCM_CREDENTIALS, stamped by the kernel) before
	// anything in it counts: e.g. require uid 0, or the daemon's pid.
	AcceptPublisher func(port uint32, creds transport.Creds) bool

	// Window is the reorder buffer in messages [4096]. A registered
	// subscriber announces the smaller of it and what its socket's receive
	// buffer holds (so that the publisher does not overrun it), and the
	// publisher never runs further ahead.
	Window int
	// NoRegister: do not register with the publisher (it will not wait
	// for this subscriber; falling behind its history loses messages).
	NoRegister bool
	// FromOldest starts at the publisher's oldest retained message
	// instead of its newest (late join).
	FromOldest bool
	// OnLoss says what happens when messages are gone for good (the
	// publisher no longer holds them) [Fail].
	OnLoss LossPolicy
	// RecvBuffer is the capacity of the Recv channel [256].
	RecvBuffer int

	// PublisherTimeout ends the subscription with ErrPublisherGone when
	// nothing has been heard from the publisher for this long [2 s].
	PublisherTimeout time.Duration
	// StatusInterval is the pace of position reports while the position
	// moves [10 ms]; KeepaliveInterval while it does not [500 ms], or the
	// publisher's keepalive (a quarter of its SubscriberTimeout, which its
	// heartbeats announce) if that is shorter.
	StatusInterval, KeepaliveInterval time.Duration
	// NakDelay and NakMax pace repeated NAKs of the same gap [2 ms, 100 ms].
	NakDelay, NakMax time.Duration
	// Seed seeds the NAK jitter, for reproducible tests (0: random).
	Seed uint64

	// MeterProvider receives the metrics of docs/OBSERVABILITY.md; nil means
	// the global provider, a no-op until the application installs an SDK.
	MeterProvider metric.MeterProvider
}

// LossPolicy says what a subscriber does with messages lost for good.
type LossPolicy int

const (
	// Fail ends the subscription with a *LostError after delivering
	// every message before the gap.
	Fail LossPolicy = iota
	// Continue skips to the publisher's oldest retained message and
	// reports the gap as Message.Lost on the next message delivered.
	Continue
)

func (p LossPolicy) String() string {
	switch p {
	case Fail:
		return "Fail"
	case Continue:
		return "Continue"
	}
	return fmt.Sprintf("LossPolicy(%d)", int(p))
}

func configErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

func (c *PublisherConfig) withDefaults() (PublisherConfig, error) {
	d := *c
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if d.Group < 1 || d.Group > transport.MaxGroup {
		bad("Group %d outside 1..%d", d.Group, transport.MaxGroup)
	}
	if d.Channel == (transport.CbID{}) {
		d.Channel = DefaultChannel
	}
	if d.Channel.Idx >= 1 && d.Channel.Idx <= 10 {
		bad("Channel idx %d is a kernel connector's (1..10)", d.Channel.Idx)
	}
	if d.MaxDatagram == 0 {
		d.MaxDatagram = DefaultMaxDatagram
	}
	if d.MaxDatagram < minDatagram || d.MaxDatagram > MaxDatagramLimit {
		bad("MaxDatagram %d outside %d..%d", d.MaxDatagram, minDatagram, MaxDatagramLimit)
	}
	most := min(d.MaxDatagram, 0xffff+transport.NlmsgHdrLen) - frameOverhead
	if d.MaxMessage == 0 {
		d.MaxMessage = most
	}
	if d.MaxMessage < 1 || d.MaxMessage > most {
		bad("MaxMessage %d outside 1..%d (MaxDatagram - %d)", d.MaxMessage, most, frameOverhead)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"History", &d.History, repair.DefaultHistory},
		{"HistoryBytes", &d.HistoryBytes, repair.DefaultHistoryBytes},
		{"QueueLen", &d.QueueLen, 1024},
		{"MaxSubscribers", &d.MaxSubscribers, repair.DefaultMaxSubscribers},
		{"WaitSubscribers", &d.WaitSubscribers, 0},
		{"NakBurst", &d.NakBurst, 1000},
	} {
		if *f.v < 0 {
			bad("%s negative (%d)", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if d.WaitSubscribers > d.MaxSubscribers {
		bad("WaitSubscribers %d above MaxSubscribers %d", d.WaitSubscribers, d.MaxSubscribers)
	}
	if d.HistoryBytes > 0 && d.HistoryBytes < d.MaxMessage {
		bad("HistoryBytes %d below MaxMessage %d", d.HistoryBytes, d.MaxMessage)
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"SubscriberTimeout", &d.SubscriberTimeout, repair.DefaultSubscriberTimeout},
		{"HeartbeatMin", &d.HeartbeatMin, time.Millisecond},
		{"HeartbeatMax", &d.HeartbeatMax, 100 * time.Millisecond},
		{"RepairHoldoff", &d.RepairHoldoff, repair.DefaultRepairHoldoff},
		{"LaggardTimeout", &d.LaggardTimeout, 0},
	} {
		if *f.v < 0 {
			bad("%s negative (%v)", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if d.HeartbeatMax < d.HeartbeatMin {
		bad("HeartbeatMax %v below HeartbeatMin %v", d.HeartbeatMax, d.HeartbeatMin)
	}
	if d.NakRate < 0 {
		bad("NakRate negative (%v)", d.NakRate)
	}
	if d.NakRate == 0 {
		d.NakRate = 10000
	}
	return d, configErr(errs)
}

func (c *SubscriberConfig) withDefaults() (SubscriberConfig, error) {
	d := *c
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if d.Group < 1 || d.Group > transport.MaxGroup {
		bad("Group %d outside 1..%d", d.Group, transport.MaxGroup)
	}
	if d.Channel == (transport.CbID{}) {
		d.Channel = DefaultChannel
	}
	if d.Window < 0 || d.Window > 1<<20 {
		bad("Window %d outside 0..%d", d.Window, 1<<20)
	}
	if d.Window == 0 {
		d.Window = repair.DefaultWindow
	}
	if d.RecvBuffer < 0 {
		bad("RecvBuffer negative (%d)", d.RecvBuffer)
	}
	if d.RecvBuffer == 0 {
		d.RecvBuffer = 256
	}
	if d.OnLoss != Fail && d.OnLoss != Continue {
		bad("OnLoss %v unknown", d.OnLoss)
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"PublisherTimeout", &d.PublisherTimeout, 2 * time.Second},
		{"StatusInterval", &d.StatusInterval, 10 * time.Millisecond},
		{"KeepaliveInterval", &d.KeepaliveInterval, repair.DefaultSubscriberTimeout / 4},
		{"NakDelay", &d.NakDelay, repair.DefaultNakDelay},
		{"NakMax", &d.NakMax, repair.DefaultNakMax},
	} {
		if *f.v < 0 {
			bad("%s negative (%v)", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return d, configErr(errs)
}
