package reliable

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error this package returns matches one of them,
// or the caller's context error, with errors.Is; the package doc has the
// table of which call returns which. *SessionError adds which session and
// why.
var (
	// ErrClosed: the session or endpoint was closed locally (Close,
	// Abort, Endpoint.Close).
	ErrClosed = errors.New("cnlink: closed")
	// ErrAborted: the session was aborted locally (Abort, Endpoint.Close,
	// a Dial abandoned after the handshake finished). Errors matching it
	// also match ErrClosed.
	ErrAborted = errors.New("cnlink: aborted")
	// ErrPeerClosed: the peer closed the session gracefully; everything it
	// sent before closing was delivered.
	ErrPeerClosed = errors.New("cnlink: peer closed the session")
	// ErrPeerGone: the peer stopped answering (dead-peer timeout), no
	// socket holds its port any more, or another process holds it now
	// (its datagrams carry other credentials than the handshake's).
	ErrPeerGone = errors.New("cnlink: peer gone")
	// ErrPeerReset: the peer aborted, restarted, refused the session, or
	// does not know it (a new process on the same port).
	ErrPeerReset = errors.New("cnlink: session reset by peer")
	// ErrProtocol: the peer broke the protocol in a way the session cannot
	// recover from (it sent a message larger than the max_message we
	// announced); we sent it RST 6. A bug in the peer, not a network
	// condition: retrying with the same peer will fail again.
	ErrProtocol = errors.New("cnlink: protocol violation by the peer")
	// ErrMessageTooLarge: the message exceeds the session's maximum size.
	ErrMessageTooLarge = errors.New("cnlink: message too large")
	// ErrTimeout: a handshake or graceful close did not finish in time.
	ErrTimeout = errors.New("cnlink: timeout")
	// ErrPermission: the kernel refused to send to the peer (EPERM):
	// sending between netlink user ports needs CAP_NET_ADMIN. Retrying
	// does not help.
	ErrPermission = errors.New("cnlink: permission denied")
	// ErrTransport: the socket failed in a way the protocol cannot
	// recover from; the cause says how.
	ErrTransport = errors.New("cnlink: transport failed")
	// ErrSessionExists: Dial to a (port, channel) that already has a
	// session on this endpoint.
	ErrSessionExists = errors.New("cnlink: session already exists")
	// ErrInvalidConfig: NewEndpoint was given a Config it cannot use; the
	// message names each field at fault.
	ErrInvalidConfig = errors.New("cnlink: invalid config")
	// ErrNotAccepting: Accept on an endpoint configured with
	// AcceptBacklog < 0.
	ErrNotAccepting = errors.New("cnlink: endpoint does not accept sessions")
)

// SessionError says which session ended and why. Unwrap yields the
// sentinel (ErrPeerGone, ...) and the cause, if any.
type SessionError struct {
	Port    uint32 // the peer's port
	Channel string // the connector channel, "idx:val"
	Kind    error  // one of the sentinels
	Cause   error  // underlying error (e.g. a transport error), may be nil
}

func (e *SessionError) Error() string {
	s := fmt.Sprintf("cnlink: session port=%d channel=%s: %s", e.Port, e.Channel, bare(e.Kind))
	if e.Cause != nil {
		s += ": " + bare(e.Cause)
	}
	return s
}

// bare is err's message without the package prefix ("cnlink: " or
// "cnlink/transport: ") it starts with, so that a message that wraps it
// says "cnlink" once.
func bare(err error) string {
	if err == nil {
		return "<nil>"
	}
	s := err.Error()
	for _, p := range []string{"cnlink: ", "cnlink/transport: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// kindError is a sentinel with a cause, in one message with one prefix.
type kindError struct{ kind, cause error }

func (e *kindError) Error() string   { return e.kind.Error() + ": " + bare(e.cause) }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

// permissionError is NewEndpoint's error when the process may not send:
// it matches ErrPermission and the transport's error (EPERM).
type permissionError struct{ cause error }

func (e *permissionError) Error() string {
	return "cnlink: permission denied: this process lacks CAP_NET_ADMIN, which sends between netlink connector user ports need (run it as root, or grant the capability: setcap cap_net_admin+ep <program>)"
}

func (e *permissionError) Unwrap() []error { return []error{ErrPermission, e.cause} }

// Unwrap returns the sentinel and the cause.
func (e *SessionError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// MessageSizeError reports a message over the session's limit; it matches
// ErrMessageTooLarge.
type MessageSizeError struct {
	Size, Max int
}

func (e *MessageSizeError) Error() string {
	return fmt.Sprintf("cnlink: message of %d bytes exceeds the session maximum of %d", e.Size, e.Max)
}

// Is makes errors.Is(err, ErrMessageTooLarge) hold.
func (e *MessageSizeError) Is(target error) bool { return target == ErrMessageTooLarge }
