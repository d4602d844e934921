// Package retry decides when cnlink tries again: the retransmission
// timeout of a session, and the recovery schedules for failures that are
// not loss.
//
// # Retransmission timeout
//
// RTT estimates the round-trip time and the retransmission timeout (RTO)
// per RFC 6298: SRTT and RTTVAR from unambiguous samples (rules 2.2 and
// 2.3, alpha 1/8, beta 1/4, K 4), the RTO clamped to [Min, Max] (rules 2.4
// and 2.5), doubled on every timeout (rule 5.5) and collapsed by the next
// valid sample. Each rule in rtt.go quotes the sentence it implements.
// The clamps are set for a peer on the same machine, where a round trip
// takes about 10 µs, not for the Internet: the defaults are an initial RTO
// of 2 ms instead of 1 s, a minimum of 200 µs instead of 1 s and a maximum
// of 1 s instead of at least 60 s; RTTConfig says why. Karn's algorithm
// (RFC 6298 section 3) is the caller's: samples come only from records
// that were never retransmitted.
//
// # Recovery schedules
//
// Schedule paces the retries of an operation that failed for a reason
// other than loss: EAGAIN from a peer whose queue is full (the kernel never
// wakes a non-blocking netlink sender when the peer drains, so a timer is
// the only way forward), ENOBUFS after a receive overrun, an unanswered
// handshake, a kernel subscription that did not take. It is
// backoff.ExponentialBackOff from github.com/cenkalti/backoff/v4 used as a
// calculator (NextBackOff and Reset, never backoff.Retry), with its
// MaxElapsedTime set on purpose (zero GiveUpAfter is backoff's "never
// stop", not its silent 15-minute default) and its Clock replaced by one
// that returns the caller's now. Jitter is drawn from a per-Schedule
// seeded source so that runs can be replayed. PeerBusySchedule,
// OverrunSchedule, HandshakeSchedule and ProbeSchedule are the presets the
// engine uses; the matching *Config functions return their settings for
// adjustment.
//
// # Time and ownership
//
// The package does no I/O, reads no clock, starts no goroutine and never
// sleeps. Time enters only as arguments: samples are durations the caller
// measured, and now is a time.Duration since an arbitrary origin of the
// caller's choosing (the same origin for every call on one value). That
// makes every decision a pure function of its inputs, testable with plain
// values and deterministic under testing/synctest. The caller arms its own
// timer for the returned durations.
//
// RTT and Schedule are not safe for concurrent use. In cnlink each belongs
// to the endpoint's owner goroutine, which runs every session's state
// machine. Steady-state calls (RTT.Update, RTT.RTO, RTT.Backoff,
// Schedule.Next, Schedule.Reset) do not allocate.
//
// Nothing here assumes a unicast session, so the same types will pace NACK
// repair for reliable multicast.
package retry
