// Package loss is the loss-recovery policy of one sending direction: when
// a record counts as lost, what the timers do, and how a peer's overrun
// report is answered. It decides; the caller schedules and does the I/O.
// Like window and retry it has no I/O, no clock and no goroutines: time
// is a time.Duration the caller passes in, so every decision can be
// tested as a plain value.
//
// A Recovery wraps a window.Sender (the record keeping: what is in
// flight, acknowledged, lost) and a retry.RTT (the RFC 6298 estimator):
//
//   - OnAck feeds an acknowledgement's result back: RTT samples (Karn's
//     rule is the Sender's: only records sent once give one), the SRTT
//     that scales RACK's reordering window, and the end of a probe
//     episode once anything is acknowledged.
//   - Deadline says when OnTimer must run: the earlier of the RACK
//     reordering timer (RFC 8985 §6.2 step 5, Sender.LossDeadline) and
//     the retransmission timer, one RTO after the oldest unacknowledged
//     transmission (RFC 6298 §5.1).
//   - OnTimer declares lost what the time threshold says is lost, and on
//     an RTO expiry asks for a probe (a PING: a receiver that was merely
//     slow answers with an acknowledgement covering everything, in the
//     spirit of RFC 9002 §6.2's probe timeout and RFC 8985's tail loss
//     probe); only after MaxProbes unanswered probes, and only if the peer
//     meanwhile sent an ACK that did not name the probe, does an expiry
//     declare the oldest transmission lost (RFC 6298 §5.4, the last
//     resort); each expiry backs the RTO off (§5.5).
//   - ProbeSent and OnAnswer make the probe exact: the ACK that names the
//     probe (its seq) proves, on netlink's in-order lossless unicast,
//     that whatever it leaves unacknowledged from before the probe is
//     lost, and nothing else. So a slow peer costs a PING, never a
//     retransmission, and tail loss is repaired one round trip after the
//     first expiry. Restart moves the timer when frames that waited for
//     a busy peer's queue finally leave.
//   - OnStatusRequest answers a peer's overrun report (STATUS_REQ): at
//     most once per round trip, it declares lost the records sent at
//     least a round trip before (docs/PROTOCOL.md §7.2).
//
// The caller then sends what Sender.PopLost hands out, and a probe when
// Action.Probe says so.
package loss
