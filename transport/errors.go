package transport

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Sentinel errors. Transport errors wrap one of these together with the
// underlying errno, so both errors.Is(err, ErrPeerBusy) and
// errors.Is(err, unix.EAGAIN) hold.
var (
	// ErrPeerBusy: the destination's receive queue is full (EAGAIN on a
	// non-blocking unicast). Nothing was sent; retry on a timer, because
	// the kernel never signals the sender when the peer drains.
	ErrPeerBusy = errors.New("cnlink/transport: peer busy (receive queue full)")
	// ErrPeerGone: no socket holds the destination port (ECONNREFUSED).
	ErrPeerGone = errors.New("cnlink/transport: peer gone (no socket on port)")
	// ErrPermission: sending to a user port or group over NETLINK_CONNECTOR
	// needs CAP_NET_ADMIN (EPERM).
	ErrPermission = errors.New("cnlink/transport: permission denied (sending to a user port or group needs CAP_NET_ADMIN)")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("cnlink/transport: closed")
	// ErrTooLarge: the datagram exceeds what the transport can carry.
	ErrTooLarge = errors.New("cnlink/transport: datagram too large")
	// ErrUnsupported: the platform has no netlink connector (non-Linux).
	ErrUnsupported = errors.New("cnlink/transport: netlink connector not supported on this platform")
)

// OpError describes a failed transport operation. Unwrap yields both the
// sentinel Kind (ErrPeerBusy, ...) and the underlying Err (an errno), so
// errors.Is works with either.
type OpError struct {
	Op   string // "send", "receive", "bind", "join", ...
	Addr Addr   // destination or group, where it applies
	Kind error  // one of the sentinels above, or nil
	Err  error  // underlying cause, usually a unix.Errno
}

// prefix starts every message of this package, once.
const prefix = "cnlink/transport: "

func (e *OpError) Error() string {
	s := prefix + e.Op
	if e.Op == "send" || e.Addr != (Addr{}) {
		s += fmt.Sprintf(" port=%d group=%d", e.Addr.Port, e.Addr.Group)
	}
	// One "cnlink/transport:" per message: the sentinel's own is dropped.
	switch {
	case e.Kind != nil && e.Err != nil:
		return s + ": " + strings.TrimPrefix(e.Kind.Error(), prefix) + ": " + e.Err.Error()
	case e.Kind != nil:
		return s + ": " + strings.TrimPrefix(e.Kind.Error(), prefix)
	case e.Err != nil:
		return s + ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the sentinel and the cause.
func (e *OpError) Unwrap() []error {
	switch {
	case e.Kind != nil && e.Err != nil:
		return []error{e.Kind, e.Err}
	case e.Kind != nil:
		return []error{e.Kind}
	case e.Err != nil:
		return []error{e.Err}
	}
	return nil
}

// Is reports whether target is e's Kind or its errno itself. errors.Is
// consults it before Unwrap, whose []error result is a fresh allocation:
// a sender polling a busy peer checks errors.Is(err, ErrPeerBusy) on every
// refused datagram, and that check must not allocate.
func (e *OpError) Is(target error) bool {
	if target == nil {
		return false
	}
	if e.Kind != nil && target == e.Kind {
		return true
	}
	errno, ok := e.Err.(syscall.Errno)
	return ok && target == error(errno)
}
