// Package multicast runs reliable multicast streams on netlink connector
// groups: one Publisher multicasts numbered messages to a group, and any
// number of Subscribers on the same machine receive them in order,
// exactly once, or are told exactly which ones they lost (never a silent
// gap). docs/PROTOCOL.md §16 is the protocol; package repair holds its
// state without I/O.
//
// # Roles
//
// A Publisher owns one stream on (group, channel). It numbers each
// message (its MSN), coalesces messages into datagrams, multicasts them,
// keeps a bounded history (PublisherConfig.History messages and
// HistoryBytes bytes) for repair, and multicasts heartbeats that announce
// its newest MSN, so that a subscriber finds a loss at the tail too:
//
//	tr, err := transport.Open(transport.Config{})
//	pub, err := multicast.NewPublisher(tr, multicast.PublisherConfig{Group: 12})
//	err = pub.Publish(ctx, []byte("hello"))
//	err = pub.Close(ctx) // every registered subscriber has everything
//
// A Subscriber joins the group and pins the first publisher it hears on
// the channel (or the port in SubscriberConfig.Publisher), by its
// kernel-stamped port and credentials. It finds gaps from sequence
// numbers, heartbeats and its socket's overruns (ENOBUFS: it asks at
// once, before any timer) and has them repaired with NAKs sent by unicast
// to the publisher, which answers by unicast, or by multicast when at
// least half of the registered subscribers miss the same messages:
//
//	sub, err := multicast.Subscribe(tr, multicast.SubscriberConfig{Group: 12})
//	for msg, err := range sub.RecvIter(ctx) {
//		if err != nil {
//			return err // see Errors
//		}
//		use(msg.Data)
//	}
//	// the publisher closed the stream and every message was delivered
//
// # Guarantees
//
// A subscriber delivers each message once, in MSN order, byte for byte.
// A registered subscriber (the default, when the process has
// CAP_NET_ADMIN) loses nothing once the publisher has confirmed its
// registration: the publisher keeps every message it has not delivered,
// and Publish blocks instead of discarding it. Until then the subscriber
// delivers nothing: it reports every StatusInterval, each STATUS with the
// JOIN flag, until the publisher answers with a unicast heartbeat (the
// publisher answers JOIN again when its first answer was lost). Every
// other loss is reported: as a *LostError that ends the subscription
// (OnLoss Fail, the default), or as Message.Lost on the next message
// delivered (OnLoss Continue, and always for unprivileged subscribers); a
// loss right before the end of the stream, which no message is left to
// carry, ends the subscription with a *LostError in either mode.
//
// Which groups and privileges give which guarantee:
//
//	subscriber                  groups          repairs   delivers
//	CAP_NET_ADMIN, registered   any             yes       everything, or ends with a typed error
//	CAP_NET_ADMIN, NoRegister   any             yes       everything still in the history when
//	                                                      repaired; older loss reported
//	unprivileged                odd only        no        what its queue takes; every gap reported
//	                                                      as Message.Lost
//
// Publishing needs CAP_NET_ADMIN, and so do NAKs and STATUS reports.
// Joining an even group needs it too; any process can join an odd group
// (a kernel quirk, docs/SECURITY.md §2.3), so keep a private stream on an
// even group (12, 14, ..., 32): groups 1 to 10 belong to kernel
// connectors.
//
// # Flow control and laggards
//
// A registered subscriber reports its position and window (STATUS). The
// publisher never runs further ahead of any registered subscriber than
// the smaller of its window and History: Publish blocks instead (its
// context bounds the wait), and PublisherStats.Blocked counts it. While
// it is blocked, its heartbeats ask registered subscribers to report
// (STATUS_REQ) on the heartbeats' own schedule: HeartbeatMin after the
// last message, then doubling up to HeartbeatMax (a faster pace would
// make small receive queues drop data). A subscriber announces no more
// than its socket's receive buffer holds, so a small SO_RCVBUF slows the
// stream instead of overrunning the subscriber. The slowest registered
// subscriber paces the stream for ever unless
// PublisherConfig.LaggardTimeout is set: one that holds the publisher
// back that long is evicted (EvictLaggard). A registered subscriber not
// heard from for SubscriberTimeout is evicted (EvictTimeout).
// Unregistered subscribers (NoRegister, unprivileged) never hold the
// publisher back; they lose what leaves the history before it is
// repaired.
//
// # Late join
//
// A subscriber starts where the stream is when it first hears it: the
// next message. SubscriberConfig.FromOldest starts at the oldest message
// the publisher still holds instead. If the start is lost before the
// publisher confirmed the registration, or the confirming heartbeat
// shows that the publisher no longer holds it, a registered subscriber
// starts again silently at the publisher's oldest message: nothing was
// promised, nor delivered, before that. PublisherConfig.WaitSubscribers
// holds the first message until that many subscribers have registered,
// so that subscribers started before the publisher get the stream from
// its first message.
// A publisher restart (a new epoch from the pinned port) ends the
// subscription with ErrPublisherRestarted; subscribe again to follow the
// new stream.
//
// # Unprivileged subscribers
//
// A subscriber without CAP_NET_ADMIN finds out when the kernel refuses its
// first NAK or STATUS (EPERM); SubscriberStats.Unprivileged then reads
// true. From then on it sends nothing and is not registered: each gap is
// lost at once and reported as Message.Lost on the next message, whatever
// OnLoss says, as package proc reports the connector's own loss.
//
// # Ending
//
// Publisher.Close stops Publish (ErrClosed), publishes what is queued,
// waits until every registered subscriber has every message (laggards
// are timed as for a blocked Publish), then announces the end (a
// heartbeat with FIN, repeated until every registered subscriber
// confirmed it or timed out) and closes the transport. It returns nil on
// that clean end; its context ending first aborts the publisher and
// returns the context's error. Publisher.Abort ends at once: registered
// subscribers get EVICT (EvictAborted), queued messages are dropped.
//
// A subscriber ends with nil after the publisher's FIN, once Recv has
// taken every message before it. Every other end is prompt: Err is set
// and Done closed at once, whether or not the application is reading.
// After EVICT, a publisher restart, another process on the publisher's
// port, a *LostError with OnLoss Fail, ECONNREFUSED, PublisherTimeout or
// a failed socket, Recv still yields every message that was in order
// before the end (a goroutine hands them on), then closes. A NAK or STATUS that meets ECONNREFUSED (no
// socket on the publisher's port) ends the subscription with
// ErrPublisherGone after a 5 ms grace in which it sends nothing more and
// reads what is queued: a FIN there ends it cleanly instead, if every
// message before the FIN has been delivered by then. Subscriber.Close
// leaves at once (telling the publisher, if registered); messages not yet
// taken from Recv are dropped, those still being handed on after an end
// too. Once Recv is closed, Err says why.
//
// # Errors
//
// Every error matches one sentinel with errors.Is (or the caller's
// context error); *LostError and *EvictedError carry the details
// (errors.As).
//
//	error                   returned by                    when
//	*LostError (ErrLost)    Subscriber.Err, RecvIter       messages gone for good: OnLoss Fail and a
//	                                                       gap below the publisher's history; or, in
//	                                                       any mode, lost right before the FIN.
//	                                                       First, Count and Resume say which
//	*EvictedError           Subscriber.Err, RecvIter       the publisher dropped this subscriber;
//	  (ErrEvicted)                                         Reason: EvictTimeout (no STATUS for its
//	                                                       SubscriberTimeout), EvictLaggard (held it
//	                                                       back for LaggardTimeout), EvictRefused
//	                                                       (MaxSubscribers registered, or Allow said
//	                                                       no), EvictAborted (Publisher.Abort, or a
//	                                                       Close whose context ended). Also matches
//	                                                       ErrLost when messages remained undelivered
//	ErrPublisherGone        Subscriber.Err, RecvIter       nothing from the publisher for
//	                                                       PublisherTimeout, its port has no socket
//	                                                       (a NAK or STATUS met ECONNREFUSED, and no
//	                                                       FIN ended the stream in the next 5 ms),
//	                                                       or another process holds it (credentials
//	                                                       changed)
//	ErrPublisherRestarted   Subscriber.Err, RecvIter       the pinned port sent a stream with a new
//	                                                       epoch (ignored after a FIN: the old
//	                                                       stream is complete)
//	ErrClosed               Publish, Publisher.Err, Close  closed locally: Publish after Close or
//	                        (after Abort), Subscriber.Err  Abort; Err after Abort; Subscriber.Close
//	ErrPermission           NewPublisher, Subscribe,       no CAP_NET_ADMIN: publishing to a group,
//	                        Publish, Publisher.Err         or joining an even group
//	ErrInvalidConfig        NewPublisher, Subscribe        a config field out of range (named)
//	ErrMessageTooLarge      Publish                        a message over MaxMessage
//	ErrTransport            every call, Err                the socket failed otherwise; the cause
//	                                                       is wrapped
//	ctx's error             Publish, Close, RecvIter       the context ended first (a Close then
//	                                                       aborts the publisher)
//
// # Ownership and concurrency
//
// NewPublisher and Subscribe take ownership of their transport: from the
// call on, nothing else may read from or close it, and the endpoint closes
// it when it ends. A call that fails closes it too, whatever the reason.
// One transport carries one publisher or one subscriber; use
// transport.Open (a real netlink socket) or transport/memnet (in-process,
// with the kernel's queueing and overrun rules, for tests).
//
// Each Publisher and Subscriber runs one owner goroutine, which holds the
// protocol state (package repair) and a single timer, and one reader
// goroutine, which blocks in the transport's Receive; a third, parked,
// unregisters the endpoint's metrics callback when it ends. A Subscriber
// that ends with messages still to hand on runs one more until Recv has
// taken them or Close is called. Every exported method is safe for
// concurrent use. Stats reads atomic counters and never waits for the
// owner. Publish copies its message; a delivered Message.Data belongs to
// the receiver.
//
// # Observability
//
// PublisherStats and SubscriberStats hold the counters, including the
// drops of PROTOCOL.md §16.8 by reason (RejectedBy). PublisherConfig and
// SubscriberConfig take an OpenTelemetry MeterProvider; the instruments
// are listed in docs/OBSERVABILITY.md. examples/pubsub runs a publisher
// and subscribers over real netlink and prints a table per subscriber.
package multicast
