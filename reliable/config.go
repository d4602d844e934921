package reliable

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
)

// DefaultChannel is the connector channel (cb_id) sessions use when none
// is given. Kernel connectors use idx 1..10; this one is far from them.
var DefaultChannel = transport.CbID{Idx: 0x434e4c4b, Val: 1} // "CNLK"

// Config tunes an Endpoint. The zero value (or a nil *Config) is valid:
// every zero field means the documented default.
type Config struct {
	// Window is the number of messages in flight per session in each
	// direction, and the receive reorder buffer. Zero means 4096. A large
	// window keeps the pipe full while losses are repaired (at 10% loss,
	// 4096 carries about twice what 1024 does); its rings cost about
	// 100 bytes per slot and session, so an endpoint with thousands of
	// sessions wants a smaller one.
	Window int
	// SendBuffer is how many messages Send may queue per session beyond
	// the window before it blocks. Zero means 256, or Window if smaller.
	SendBuffer int
	// SendBufferBytes bounds the same queue in bytes: Send blocks while
	// the queued messages and the new one would exceed it, except that
	// an empty queue always takes one message. Zero means 1 MiB.
	//
	// The queue only has to keep the window fed: the owner goroutine
	// takes from it as the window opens. A deeper queue buys nothing
	// but copies that go cold before they are sent (measured: 4,096
	// queued 16 KiB messages ran at 0.7x the rate of 64, and 256-byte
	// messages at 0.75x of 256 queued; docs/BENCHMARKS.md).
	SendBufferBytes int
	// RecvBuffer is the capacity of each session's Recv channel, made on
	// the first call to Recv (RecvBatch and RecvIter take messages without
	// it), and how many unread messages may still wait when Done closes.
	// Zero means 1024. The Requests channel holds min(RecvBuffer, 64).
	RecvBuffer int
	// MaxMessage is the largest message accepted, in bytes. Zero means
	// 16384; at most MaxMessageLimit. A session's limit in each direction
	// is the receiver's: what this side sends is bounded by the peer's
	// MaxMessage (Session.MaxMessage tells; a larger Send fails with a
	// *MessageSizeError naming it).
	MaxMessage int
	// MaxDatagram bounds a coalesced datagram (send and receive). Zero
	// means 65536, or one frame of MaxMessage bytes if that is more. It
	// must hold one frame of MaxMessage bytes, and be at least
	// MinDatagram.
	MaxDatagram int
	// AcceptBacklog is how many peer-opened sessions wait for Accept
	// before new ones are refused. Zero means 64. Negative disables
	// accepting: the endpoint only dials.
	AcceptBacklog int
	// HandshakeTimeout bounds Dial when its context has no deadline. Zero
	// means 5s.
	HandshakeTimeout time.Duration
	// KeepAlive is the idle time after which a session probes its peer.
	// Zero means 1s.
	KeepAlive time.Duration
	// DeadPeerTimeout ends a session with ErrPeerGone when nothing was
	// heard from the peer for this long while probing. Zero means 5s.
	DeadPeerTimeout time.Duration
	// CloseTimeout bounds the graceful drain of Session.Close. Zero means 5s.
	CloseTimeout time.Duration
	// AllowCreds, when set, is consulted for every datagram that carries
	// credentials; returning false drops the datagram (counted).
	AllowCreds func(transport.Creds) bool
	// AllowPeer, when set, is asked about every session a peer opens
	// before it exists: the peer's port, the channel and the credentials
	// the kernel stamped on its SYN (Valid is false without SO_PASSCRED).
	// Returning false refuses the SYN with RST 3 (counted as "refused"),
	// so Accept never sees it. The session, once open, is pinned to those
	// credentials (Session.PeerCreds). It runs on the endpoint's goroutine:
	// keep it fast, like a SO_PEERCRED check in a unix-socket server.
	AllowPeer func(port uint32, ch transport.CbID, creds transport.Creds) bool
	// MeterProvider and TracerProvider receive metrics and traces. Nil
	// means the global providers (no-ops until an application installs
	// an SDK).
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// MinDatagram is the smallest MaxDatagram: one SYNACK frame, which also
// holds an ACK without SACK ranges and a DATA frame of a few bytes. A peer
// that announces less is refused with RST 4 (PROTOCOL.md §5.2).
const MinDatagram = 16 + 20 + wire.HeaderLen + wire.SynLen // nlmsghdr, cn_msg, header, Syn body: 68

// MaxMessageLimit is the largest MaxMessage: a cn_msg payload is at most
// 65535 bytes and the cnlink header takes 12 of them.
const MaxMessageLimit = transport.MaxPayload - wire.HeaderLen

func (c *Config) withDefaults() (Config, error) {
	var d Config
	if c != nil {
		d = *c
	}
	def := func(v *int, x int) {
		if *v == 0 {
			*v = x
		}
	}
	defD := func(v *time.Duration, x time.Duration) {
		if *v == 0 {
			*v = x
		}
	}
	def(&d.Window, 4096)
	def(&d.SendBuffer, min(d.Window, 256))
	def(&d.SendBufferBytes, 1<<20)
	def(&d.RecvBuffer, 1024)
	def(&d.MaxMessage, 16384)
	def(&d.MaxDatagram, max(65536, transport.FrameLen(wire.HeaderLen+d.MaxMessage)))
	def(&d.AcceptBacklog, 64)
	defD(&d.HandshakeTimeout, 5*time.Second)
	defD(&d.KeepAlive, time.Second)
	defD(&d.DeadPeerTimeout, 5*time.Second)
	defD(&d.CloseTimeout, 5*time.Second)
	var errs []error
	if d.Window < 1 || d.Window > 1<<20 {
		errs = append(errs, fmt.Errorf("field Window: %d out of range 1..%d", d.Window, 1<<20))
	}
	if d.SendBuffer < 0 || d.RecvBuffer < 0 || d.SendBufferBytes < 0 {
		errs = append(errs, errors.New("fields SendBuffer, SendBufferBytes and RecvBuffer must not be negative"))
	}
	if d.MaxMessage < 1 || d.MaxMessage > MaxMessageLimit {
		errs = append(errs, fmt.Errorf("field MaxMessage: %d out of range 1..%d", d.MaxMessage, MaxMessageLimit))
	}
	if d.MaxDatagram < transport.FrameLen(wire.HeaderLen+d.MaxMessage) {
		errs = append(errs, fmt.Errorf("field MaxDatagram: %d cannot hold one frame of MaxMessage %d bytes (needs %d)",
			d.MaxDatagram, d.MaxMessage, transport.FrameLen(wire.HeaderLen+d.MaxMessage)))
	} else if d.MaxDatagram < MinDatagram {
		errs = append(errs, fmt.Errorf("field MaxDatagram: %d is below MinDatagram (%d, one SYNACK frame)", d.MaxDatagram, MinDatagram))
	}
	if d.KeepAlive < 0 || d.DeadPeerTimeout < 0 || d.CloseTimeout < 0 || d.HandshakeTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if len(errs) > 0 {
		return d, &kindError{kind: ErrInvalidConfig, cause: errors.Join(errs...)}
	}
	return d, nil
}
