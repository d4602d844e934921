package multicast

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns matches one of them,
// the caller's context error, or ErrInvalidConfig, with errors.Is.
var (
	// ErrClosed: the publisher or subscriber was closed locally.
	ErrClosed = errors.New("cnlink/multicast: closed")
	// ErrPublisherGone: nothing heard from the publisher for
	// PublisherTimeout, or its port has no socket any more.
	ErrPublisherGone = errors.New("cnlink/multicast: publisher gone")
	// ErrPublisherRestarted: the publisher's port sent a stream with a new
	// epoch: it restarted, and the old stream's undelivered messages are
	// gone. Subscribe again to follow the new stream.
	ErrPublisherRestarted = errors.New("cnlink/multicast: publisher restarted")
	// ErrEvicted: the publisher dropped this subscriber (see *EvictedError).
	ErrEvicted = errors.New("cnlink/multicast: evicted by the publisher")
	// ErrLost: messages were lost for good (see *LostError).
	ErrLost = errors.New("cnlink/multicast: messages lost")
	// ErrMessageTooLarge: Publish of a message over MaxMessage.
	ErrMessageTooLarge = errors.New("cnlink/multicast: message too large")
	// ErrPermission: the kernel refused a send (EPERM): publishing to a
	// group, or a subscriber's NAK and STATUS, need CAP_NET_ADMIN.
	ErrPermission = errors.New("cnlink/multicast: permission denied (needs CAP_NET_ADMIN)")
	// ErrTransport: the socket failed; the cause says how.
	ErrTransport = errors.New("cnlink/multicast: transport failed")
)

// Eviction reasons, as carried by EVICT frames.
type EvictReason uint32

const (
	EvictTimeout EvictReason = 1 // no STATUS heard for the publisher's SubscriberTimeout
	EvictLaggard EvictReason = 2 // held the publisher back longer than its LaggardTimeout
	EvictRefused EvictReason = 3 // registration refused (subscriber limit or Allow)
	EvictAborted EvictReason = 4 // the publisher aborted
)

func (r EvictReason) String() string {
	switch r {
	case EvictTimeout:
		return "timed out"
	case EvictLaggard:
		return "too slow (laggard)"
	case EvictRefused:
		return "registration refused"
	case EvictAborted:
		return "publisher aborted"
	}
	return fmt.Sprintf("reason %d", uint32(r))
}

// EvictedError: the publisher dropped this subscriber. Position is the
// next message the subscriber would have delivered; Newest is one past the
// newest the publisher had announced, so Newest-Position messages (at
// least) were not delivered.
type EvictedError struct {
	Reason           EvictReason
	Position, Newest uint32
}

func (e *EvictedError) Error() string {
	return fmt.Sprintf("cnlink/multicast: evicted by the publisher: %v (position %d, publisher at %d)", e.Reason, e.Position, e.Newest)
}

// Is matches ErrEvicted, and ErrLost when messages are known undelivered.
func (e *EvictedError) Is(target error) bool {
	return target == ErrEvicted || (target == ErrLost && e.Newest != e.Position)
}

// LostError: messages are gone for good. First is the first lost MSN;
// Count how many messages between First and Resume were lost (some in
// between may have been delivered); Resume is the publisher's oldest
// retained message when the loss was found.
type LostError struct {
	First, Resume uint32
	Count         uint64
}

func (e *LostError) Error() string {
	return fmt.Sprintf("cnlink/multicast: %d messages lost for good (from MSN %d; the publisher keeps only from %d)", e.Count, e.First, e.Resume)
}

// Is matches ErrLost.
func (e *LostError) Is(target error) bool { return target == ErrLost }
