// Package reliable runs cnlink sessions: reliable, ordered, exactly-once
// message streams over netlink connector sockets (or any
// transport.Transport).
//
// An Endpoint owns one transport (one netlink port) and multiplexes any
// number of sessions over it, keyed by the peer's port and the connector
// channel (cb_id). Dial opens a session, Accept takes one a peer opened:
//
//	tr, err := transport.Open(transport.Config{})
//	ep, err := reliable.NewEndpoint(tr, nil)
//	s, err := ep.Dial(ctx, peerPort, transport.CbID{})
//	err = s.Send(ctx, []byte("hello"))
//	msg := <-s.Recv()
//
// One goroutine per endpoint (the owner) runs every session's state
// machine with a single timer; a reader goroutine feeds it datagrams and a
// small pump goroutine per session hands messages to the application.
// The wire format is in docs/PROTOCOL.md.
//
// # Ordering
//
// Messages sent on one session are delivered exactly once, in the order
// Send (or SendBatch, or Reply, or Request) queued them, byte for byte,
// whatever the path loses, duplicates, reorders or corrupts. Requests
// (Session.Requests) and messages (Session.Recv) share that one stream:
// each is handed to its channel in stream order, and a request is not
// handed over before every message sent ahead of it is in Recv's buffer
// (a select over both channels can still pick either first). There is no
// order between different sessions.
//
// # Backpressure
//
// Send blocks while the session's window (Config.Window messages in
// flight) and queue (Config.SendBuffer) are full, and only then. The
// receiver advertises credit: messages the application has not taken
// from Recv count against it, so a slow reader stops a fast sender instead
// of growing memory. Memory per session is bounded by Window, SendBuffer
// and RecvBuffer, whatever the peer sends. When a peer's socket is full
// (EAGAIN) the endpoint retries that peer on a backoff schedule without
// delaying other peers.
//
// # Cancellation
//
// Send, SendBatch, Request, Flush, Dial and Accept honour their context:
// they return the context's error when it ends. A cancelled Send has not
// queued its message; a cancelled Request may still be delivered to the
// peer (its reply is then discarded). Send never keeps the caller's slice
// after it returns. Session.Close drains gracefully within
// Config.CloseTimeout; Session.Abort and Endpoint.Close end at once, and
// every blocked call returns.
//
// # Errors
//
// Errors match the sentinels with errors.Is: ErrClosed (closed locally),
// ErrPeerClosed (the peer closed gracefully; everything it sent was
// delivered), ErrPeerGone (the peer stopped answering for
// Config.DeadPeerTimeout, or no socket holds its port), ErrPeerReset (the
// peer aborted, restarted, or a new process owns its port),
// ErrMessageTooLarge (see MessageSizeError) and ErrTimeout (handshake or
// graceful close). Session errors are *SessionError, which names the peer
// and unwraps to the cause, e.g. a transport error matching
// transport.ErrPeerGone or transport.ErrPermission. Recv and Requests
// channels are never closed: select on Done, then read Err. Messages that
// arrived before the end stay readable from Recv after Done is closed.
package reliable
