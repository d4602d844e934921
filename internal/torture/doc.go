// Package torture is cnlink's torture harness: randomized,
// seeded, real-time runs of the reliable engine that try to break session
// close, abort and delivery in the ways a polite test never does. The
// package holds only tests; this file is its documentation.
//
// # The two tests
//
// TestTortureNetlink runs over real NETLINK_CONNECTOR sockets
// (transport.Open; it needs CAP_NET_ADMIN and skips without it, so it runs
// as root and in CI). TestTortureMemnet runs over transport/memnet in real
// time, not in a synctest bubble, so that goroutines really race. Each
// loops over consecutive seeds until its time budget is spent:
//
//	CNLINK_TORTURE_TIME=2m go test ./internal/torture   # 1m each
//	go test ./internal/torture -torture.time=2m -v      # the same, this package only
//	make torture TORTURE_TIME=10m                       # TORTURE_RACE=1 adds -race
//
// The budget (flag -torture.time, else $CNLINK_TORTURE_TIME) is split
// evenly between the two tests; with neither set each gets 5s. At the end
// each test logs its runs, sessions, messages, seed range and rate, and a
// table of the distinct failures with the first seed of each (go test -v
// shows it on success too). -torture.v logs one line per run.
//
// A run spends nearly all its time waiting on timers, stalled readers and
// timeouts, so runs go in lanes (-torture.lanes, default 8 per CPU, 2 per
// CPU under -race): that many runs at once, in windows of a few seconds.
// When a window ends, every lane finishes its run and the window is
// checked for leaked goroutines and sockets. Each run sets GOMAXPROCS to
// its draw when it starts, for the whole process, so the other lanes see
// the scheduler change under them. With -torture.lanes=1 (and always for
// a replayed seed) GOMAXPROCS and the leak check are exactly the run's.
// On a 2-core machine this makes a few thousand sessions a minute.
//
// # A run
//
// Everything in a run is drawn from its seed (math/rand/v2, PCG):
// GOMAXPROCS (1, 2 or 4, restored afterwards); 2 or 3 endpoints, each with
// its own reliable.Config (Window 16..4096 and RecvBuffer 1..2048, so the
// window is sometimes above and sometimes below the channel; MaxMessage up
// to reliable.MaxMessageLimit with a matching MaxDatagram; KeepAlive
// 50-200ms, DeadPeerTimeout 1-2s, CloseTimeout 1-3s, HandshakeTimeout 2s so
// that runs are short) and its own faults through transport/fault (none up
// to 30% loss, with duplication, reordering, corruption, delay and jitter,
// EAGAIN and overrun bursts); netlink sockets sometimes get a 4 KiB kernel
// receive buffer, which makes the kernel refuse datagrams (real EAGAIN).
// Endpoint configurations differ, so a session's two sides disagree on
// window and buffer sizes, as real peers do.
//
// 1 to 4 sessions join the endpoints, several per endpoint, dialed in both
// directions on distinct channels (occasionally opened by both sides at
// once: a simultaneous open). Each side sends its own stream, 0 to ~3000
// messages of 1 byte to the session's maximum (mostly small, sometimes
// huge) through a mix of Send, SendBatch, Request (the peer answers with
// Request.Reply) and Flush, sometimes with per-call deadlines so short that
// calls are cancelled and retried, sometimes with one oversized message
// that must be refused. Message i of a stream is a function of (stream
// key, i), its size included, and every byte depends on its position, so
// a 1-byte message is checked too.
//
// Each side reads the peer's stream with one reader: fast (<-Recv, or
// RecvBatch + Recycle), slow (10-200µs per message), stalled (stops for
// 50-500ms at random points) or vanishing (stops for good and then
// closes or aborts its side, or stops the instant Done closes without
// draining). A second goroutine per side takes Requests and replies.
//
// Endings happen at random moments from either side: the sender closes
// after its last send (the common case, often while the receiver's channel
// is full and repairs are outstanding), closes mid-stream from another
// goroutine, aborts mid-stream; the receiver aborts or closes mid-stream;
// both close at once; a whole endpoint closes mid-run (Endpoint.Close), or
// crashes: its socket is closed under it, so no RST goes out and its peers'
// sends fail with ErrPeerGone.
//
// Between each endpoint and its transport a tap reads the headers of what
// the engine sends, to see a session that goes on sending after it ended.
// Watchdogs bound every phase: opening, each session after its first
// action, each session before any action (no message sent or taken for
// as long as its bound: a sender blocked for good), the whole run. A
// session past its bound is reported with every goroutine's stack and
// aborted, and the run goes on.
//
// # What is checked
//
// After every run, at both ends of every session (a violation names its
// invariant):
//
//  1. The application saw each message exactly once, in order, byte for
//     byte, on Recv and on Requests, with no gap across the two: a prefix
//     of what was sent, and nothing that was not.
//  2. If the sender's Close returned nil and the receiver did not abandon
//     its side, the receiver got every message whose Send, SendBatch or
//     Request returned nil, and its session ended with ErrPeerClosed.
//  3. If the receiving session ended with ErrPeerClosed and read until
//     Done, it got every message queued before the peer's Close. Whatever
//     the end, a receiver that did not abandon its side got every message
//     the sender knew acknowledged (a Flush or Request that returned nil).
//  4. Every session ends within a bound computed from its configuration
//     (close, dead-peer and handshake timeouts, the reader's pace, slack
//     for -race), and nothing hangs; every error any call returns matches
//     a documented sentinel (or is the context's error), session ends are
//     *reliable.SessionError, Abort ends with ErrAborted, a nil Close does
//     not, a second Close returns what the first did; an ended session
//     sends no DATA or REPLY frame (beyond the owner turn that ended it,
//     and the retry of a datagram the peer's full queue refused before),
//     none to a port whose socket is gone, and its counters of sent and
//     retransmitted frames stop; once every session has ended and
//     time-wait is over, the endpoints fall silent (some runs wait to see).
//  5. Counters: once Done is closed, SessionStats.Received == Delivered +
//     Undelivered, Delivered is what the application took, Undelivered is
//     0 unless that side abandoned the session (Close, Abort or
//     Endpoint.Close before reading everything), and a Close that returned
//     nil means the peer's engine received every message.
//  6. A request handler runs exactly once per request, a reply matches its
//     request, and a Request that returned a reply was seen by the peer.
//  7. No goroutine or socket outlives its run (checked per run, and by
//     leakcheck for the whole binary); every endpoint is closed at the end
//     of its run, and its Close returns nil.
//
// A side "abandons" its session when its application calls Close, Abort
// or Endpoint.Close (or its endpoint crashes) before the session's Done is
// closed: from then on the contract allows messages not yet read to be
// dropped (counted as Undelivered), so only the prefix property is checked
// for it. After the run, whatever is still in a side's channels is
// drained and checked too: the application could still read it.
//
// A session whose opening went wrong (Accept returning a session nobody
// dialed, typically half of a simultaneous open, or one Dial accepted
// twice) is reported once; its later checks are skipped, since they would
// only echo the opening.
//
// The invariants are conditional, so a loaded machine cannot make them
// fail: a Close may time out, a Dial fail, a peer be declared gone, and
// the run only counts it (Close timeouts, failed dials, sessions that
// ended on their own are in the summary). Only the time bounds depend on
// the machine, and they are generous.
//
// # Replaying a failure
//
// Every failing run prints a line such as
//
//	replay: go test ./internal/torture -run 'TestTortureNetlink$' -torture.seed=123456 -v
//
// which runs that seed alone: the same endpoints, configurations, faults,
// streams, readers and endings. The run is in real time with real
// goroutines, so the interleaving is not replayed; a failure that needs an
// unlucky schedule may need -count=20 (or -race), or the company of other
// runs (-torture.lanes=16 with a short -torture.time) to come back.
//
// The files: plan_test.go holds a run's plan and scenario_test.go draws
// it (describe_test.go prints it); content_test.go makes and checks
// messages; network_test.go opens endpoints; run_test.go plays a run,
// open_test.go opens its sessions, sender_test.go, reader_test.go and
// actions_test.go are the sides' goroutines, watchdog_test.go and
// bounds_test.go the time limits; checks_test.go, counters_test.go,
// errors_test.go and silence_test.go hold the invariants; lanes_test.go
// plays runs at once; report_test.go the output; torture_test.go the two
// tests and their flags.
package torture
