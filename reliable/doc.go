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
//	defer ep.Shutdown(ctx) // graceful: what was sent arrives
//	s, err := ep.Dial(ctx, peerPort, transport.CbID{})
//	err = s.Send(ctx, []byte("hello"))
//
// and the peer receives in one for statement, which ends by itself when
// the session does:
//
//	for msg, err := range s.RecvIter(ctx) {
//		if err != nil {
//			return err // reset, peer gone, ctx: not a graceful end
//		}
//		use(msg)
//	}
//
// (package discover finds a peer's port).
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
// flight) and queue (Config.SendBuffer messages, Config.SendBufferBytes
// bytes) are full, and only then. The receiver advertises credit:
// messages the application has not taken from Recv count against it, so
// a slow reader stops a fast sender instead of growing memory. Memory per
// session is bounded by Window, SendBuffer, SendBufferBytes and
// RecvBuffer, whatever the peer sends. When a peer's socket is full
// (EAGAIN) the endpoint retries that peer on a backoff schedule without
// delaying other peers.
//
// # Cancellation
//
// Send, SendBatch, Request, Flush, Dial and Accept honour their context:
// they return the context's error when it ends. A cancelled Send has not
// queued its message; a cancelled Request may still be delivered to the
// peer (its reply is then discarded). Send never keeps the caller's slice
// after it returns.
//
// # Ending a session
//
// Session.Close is graceful: it sends everything queued, then a FIN, and
// returns nil only once the peer's engine has acknowledged the FIN
// cumulatively, that is when it holds every message sent. The peer's
// application then receives all of them, however slowly it reads, before
// its session ends with ErrPeerClosed. Close is a full close: from the
// call on, this side's application reads no more (what it has not taken
// is abandoned), and a side that receives the peer's FIN ends at once,
// even while closing itself. So when both sides Close at once, each Close
// returns nil if the other had acknowledged everything it sent, and an
// error matching ErrPeerClosed otherwise. Session.CloseContext bounds the
// wait with a context (and aborts when it ends). Session.Abort and
// Endpoint.Close end at once (the peer sees ErrPeerReset) and every
// blocked call returns. Endpoint.Shutdown is the graceful end of a whole
// endpoint: it refuses new sessions, closes every open one as Close does
// and waits (bounded by its context) before closing; use it, not Close, in
// a defer when what was sent must arrive.
//
// When the peer closes, its FIN is acknowledged before Done is closed, so
// an application that exits as soon as its session ends does not make the
// peer's Close fail.
//
// Whatever ends a session, every message its engine accepted (and so
// acknowledged to the peer) is delivered to Recv or Requests, unless this
// side's application abandons the session with Close, Abort or
// Endpoint.Close: SessionStats.Received equals Delivered plus Undelivered,
// and Undelivered stays 0 unless the application abandoned the session.
// Done is closed once that delivery is over; messages that arrived before
// the end stay readable from Recv after Done is closed; RecvIter and
// RequestsIter read them all and then stop.
//
// Dial returns once the peer's endpoint answered, which may be before the
// peer's application calls Accept. Accept never returns a session that
// failed before it was taken.
//
// # Errors
//
// Every error matches one sentinel with errors.Is (or the caller's
// context error). Session errors are *SessionError, which names the peer
// and unwraps to the sentinel (Kind) and the cause, e.g. a transport error
// matching transport.ErrPeerGone. Err and every call on an ended session
// return the session's error.
//
//	sentinel            returned by                   meaning
//	ErrClosed           Send, Flush, Request, Err,     closed locally (Close, Abort, Endpoint.Close,
//	                    Dial, Accept                   Endpoint.Shutdown)
//	ErrAborted          Err, Close (after Abort),      aborted locally (Abort, Endpoint.Close, a
//	                    CloseContext, Shutdown,        CloseContext or Shutdown whose context
//	                    calls on an aborted session    ended: then ctx's error matches too);
//	                                                   also matches ErrClosed
//	ErrPeerClosed       Err, Send, Flush, Request,     the peer closed; everything it sent was
//	                    Close (ours unacknowledged)    delivered
//	ErrPeerGone         Err, any session call          no answer for DeadPeerTimeout, no socket
//	                                                   holds the peer's port, or another process
//	                                                   does (credentials changed)
//	ErrPeerReset        Err, any session call, Dial    the peer aborted, restarted or refused
//	ErrProtocol         Err, any session call          the peer broke the protocol (a message over
//	                                                   our MaxMessage); it was sent RST 6
//	ErrTimeout          Dial, Close                    handshake or graceful close not finished in
//	                                                   time (Dial's also matches
//	                                                   context.DeadlineExceeded)
//	ErrMessageTooLarge  Send, SendBatch, Request,      message over the session's MaxMessage
//	                    Reply                          (*MessageSizeError)
//	ErrPermission       NewEndpoint, Err, any session  the process lacks CAP_NET_ADMIN (NewEndpoint
//	                    call                           checks), or the kernel refused to send (EPERM)
//	ErrTransport        Err, any session call, Dial,   the socket failed otherwise; Cause says how
//	                    Accept
//	ErrSessionExists    Dial                           this endpoint already has a session with
//	                                                   that port and channel
//	ErrNotAccepting     Accept                         Config.AcceptBacklog < 0
//	ErrInvalidConfig    NewEndpoint                    a Config field out of range (named)
//	ErrAlreadyReplied   Request.Reply                  a second Reply to one request
//	ctx's error         Send, SendBatch, Request,      the context ended first (Dial wraps it in
//	                    Flush, Dial, Accept            *SessionError)
//
// Recv and Requests channels are never closed: select on Done, then read
// Err.
package reliable
