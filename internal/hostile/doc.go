// Package hostile is cnlink's hostile-peer suite: what an attacker on the
// same machine can do to a legitimate session, tried over real
// NETLINK_CONNECTOR sockets. The package holds only tests; this file is
// its documentation.
//
// The tests need CAP_NET_ADMIN (user-to-user connector sends need it): as
// root, and in CI, they run; without it they skip. They run inside
// `make test` (go test -race ./...), each in under ~10 s:
//
//	go test -race -v ./internal/hostile              # everything, with the figures
//	go test -race -v -run TestLearningSquatter ./internal/hostile
//
// # The set-up
//
// Every test but the squatter's opens a legitimate pair over real netlink
// (transport.Open with 4 MiB socket buffers, reliable.NewEndpoint with
// the default configuration): the victim endpoint V accepts a session
// that the peer endpoint P dials, and two verified streams run on it, P
// to V and V to P, as fast as the window allows. Message i of a stream is
// a function of the stream's key and i, every byte of it, so the
// receiving application detects any message lost, duplicated, reordered
// or forged; at the end each stream is flushed and must have delivered
// exactly what was sent, in order, and the session must still be open
// (then P closes it gracefully: Close returns nil, V ends with
// ErrPeerClosed).
//
// The attacks come from two places:
//
//   - a raw transport.Open socket on a third port, sending hand-encoded
//     frames (wire.Append and friends, or bytes written by hand for the
//     malformed ones); a goroutine drains and counts what it gets back;
//   - P's own socket: P's transport is wrapped in a tap that reads the
//     session's frames as P sends and receives them (learning both
//     epochs, both streams' next DSNs and P's latest cumulative ack) and
//     injects hand-made datagrams from P's port, with P's credentials.
//     This is the position of a hostile peer inside a valid session (or
//     of a path that corrupts), and gives the attacks that need the
//     session's real epochs.
//
// Every test reads Stats before and after its attack and asserts the
// Rejected keys it must move (exactly where no legitimate traffic can
// move them), and asserts that HeapInuse after the attack (after a
// collection) is within a stated bound of before; the peak HeapInuse
// (sampled every 50 ms) and the RSS are logged.
//
// # The cases
//
// TestForgedHeaderPort (case 1): a third port sends frames whose
// nlmsg_pid claims the peer's port and which carry the session's real
// epochs and next DSNs (the worst case): DATA, a request, a FIN, a PING
// with STATUS_REQ, an ACK acknowledging everything, a REPLY, an RST, a
// SYNACK with a new epoch. The sender is the port the kernel stamps, so
// all are rejected as no_session. Then a SYN claiming to be the peer
// restarting opens a session for the attacker's port (its real sender),
// not a replacement of the peer's; the same forgeries are then rejected
// by that session's epochs (epoch).
//
// TestGuessedEpochs (case 2): thousands of epoch guesses, random and a
// sequential sweep, as DATA, PING, ACK and RST: from a third port (the
// real epochs among the guesses: no_session all the same; the RSTs the
// DATA and PINGs draw stay within 100 + 1000 a second, the rest
// suppressed), and from P's own port with every guess wrong (epoch; the
// RSTs carry the guess + 1 and P rejects them too).
//
// TestLearningSquatter (case 3), with real processes. The test binary is
// re-executed (os.Executable; TestMain dispatches on CNLINK_HOSTILE_ROLE
// before the leak check) as child A, the peer: it opens an endpoint on a
// kernel-assigned port, dials the test's endpoint B, streams, reports its
// port, pid, epoch and next DSN (seen by its own tap), and is killed with
// SIGKILL: no RST, B knows nothing. A second child, the squatter, binds
// A's old port (transport.Config.Port, retrying until free) and listens:
// B's DATA (the test sends one after A died and Flushes it) and keepalive
// PINGs carry B's epoch and DSNs. It forges an ACK with STATUS_REQ (ack =
// B's epoch + 1) that also acknowledges B's DATA, to learn A's epoch from
// B's answer and to fake the delivery, then DATA with A's epoch at the
// right DSNs, a request, a FIN and PINGs (A's epoch and DSN are handed to
// it as well: a squatter that knows everything). B's session is pinned to
// A's kernel-stamped credentials: it must end with ErrPeerGone within 1 s
// of the squatter's first datagram (Rejected["credentials_changed"]),
// answer nothing, deliver nothing forged, and its Flush must fail. The
// test logs the time from the first forged datagram to the session's end
// (the squatter stamps the wall clock of its send). B's keepalive is 10 s
// so that B sends nothing to A's port between A's death and the
// squatter's bind (such a send meets ECONNREFUSED and ends the session
// before the attack; the test says so if that race is lost).
//
// TestMalformed (case 4), from P's own socket into the streaming session,
// 20 rounds of 34 kinds: a datagram above MaxDatagram (truncated), lying
// nlmsg_len (beyond the datagram, below cn_msg, below nlmsghdr, zero, a
// bare header after a valid frame), lying cn_msg.len (beyond nlmsg_len,
// short with the CRC of the whole frame, below the cnlink header),
// trailing bytes, a 5-byte datagram, bad CRCs, a wrong netlink type,
// version 2, unknown frame types, ACKs with 33 or 65535 SACK ranges or a
// body too short for its count, 32 SACK ranges beyond the window,
// reversed, stale and half-space ranges, ACKs of DSNs never sent, an ACK
// with a limit far beyond the window and a bogus DSACK, DATA and REPLY
// three windows ahead, DATA three windows behind, malformed SYNs, DATA on
// another channel. The broken DATA frames sit at DSNs P has not reached
// yet, so one taken would later replace a real message. Each kind must
// move exactly the Rejected key it names. TestMalformedOversizedEndsSession:
// a DATA above MaxMessage from inside the session ends it (ErrProtocol at
// the victim, RST 6 and ErrPeerReset at P: PROTOCOL.md §6.3), after
// delivering what came before.
//
// TestHalfSpaceSACK (found by case 4, fixed in commit cff742c): one ACK
// from P's port whose SACK range runs across the point half the sequence
// space away from the cumulative ack (cum + 2^31 - 1 to cum + 2^31 +
// 2^20). The victim must ignore it like any range outside what it sent;
// before the fix one such ACK killed its process. The test runs in a
// child process (the binary re-executed with -test.run and
// CNLINK_HOSTILE_CHILD=1), because a panic in the victim's engine kills
// the whole process: the child's death fails this test with its stack
// instead of taking the package down. The victim's stream is quiesced
// (everything acknowledged) before the ACK so that the outcome does not
// depend on what is in flight.
//
// The floods (case 5), each for about 2 s during the two streams:
// TestFloodRST (RSTs with random epochs from a third port), TestFloodACK
// (ACKs with 32 SACK ranges and guessed epochs from a third port, plus
// P's latest ACK replayed over and over from P's port), TestFloodUnknownData
// (DATA to sessions that do not exist, on the default channel and random
// ones: ResetsSent must stay within 100 + 1000 a second and
// ResetsSuppressed must move), TestFloodSYN (SYNs with random epochs from
// a third port: each replaces the session the previous one opened, the
// accept backlog of 64 bounds them, nobody calls Accept during the flood;
// memory stays within 64 small sessions; afterwards Accept returns no dead
// session and a legitimate dialer gets in) and TestFloodStatusReq (PINGs
// and ACKs with STATUS_REQ from P's own port, 10,000 a second: the victim
// repairs at most once per round trip and resends only what is a round
// trip old, so what it retransmits stays within a small factor of one
// window per round trip; the test logs the
// bytes retransmitted per honoured request and per round trip);
// TestFloodStatusReqFromStart is the same flood begun with the session,
// before the victim has measured a round trip (the pacing is then the
// initial RTO, 2 ms; a repair that resent every record would keep it so,
// since Karn's rule takes no sample from retransmissions), for
// the streams' first 2 s; the unflooded reference is a fresh pair
// measured the same way just before, whose SRTT is the real round trip.
// The repairs must still be at most one per real round trip. The
// flooders send prebuilt datagrams, so that what the rates compare is the
// victim's cost, not the encoding's. The other flood tests alternate
// unflooded and flooded periods (4 x 500 ms each, which cancels most of
// the drift of a machine shared with other tests); every flood test
// asserts that each stream keeps at least half its unflooded rate, and
// logs both rates, the flood's size, the counters and the memory figures
// for the issue notes.
//
// The rates assume a machine not starved by other work: with a load far
// above its cores the comparisons are noise (and a session can even die
// of its dead-peer timeout with no attack at all). A failing test logs a
// timeline of its phases and every counter of both endpoints and
// sessions, to tell the two apart.
//
// The files: harness_test.go holds the legitimate pair, the streams and
// the measurements; frames_test.go the frame builders, the attacker
// socket and the tap; forged_test.go cases 1 and 2; squatter_test.go case
// 3 and the child roles; malformed_test.go case 4; flood_test.go case 5;
// main_test.go the TestMain.
package hostile
