// Package window holds the state of a reliable, ordered, exactly-once
// message stream over an unreliable datagram channel: sequence numbers, the
// send side and the receive side. It does no I/O, reads no clock and starts
// no goroutine: time is an argument (now, a time.Duration since an origin the
// caller picks), and the caller decides what to send and when. That keeps
// every rule testable as plain values, as quic-go's ackhandler is.
//
// # Pieces
//
//   - Seq: 32-bit sequence numbers compared with serial arithmetic
//     (RFC 1982), so a stream may run across 2^32.
//   - Sender: the records in flight. It takes cumulative and selective
//     acknowledgements (Ack) and negative ones (MarkLost), declares records
//     lost with RACK's time threshold (RFC 8985) and RFC 9002's packet
//     threshold, hands lost records out for retransmission lowest first,
//     finds spurious retransmissions from duplicate reports (RFC 2883) and
//     reordering from late acknowledgements, widens its reordering window
//     and packet threshold when it does, and obeys the receiver's
//     flow-control limit.
//   - Receiver: a reorder buffer that delivers each value once, in order; it
//     drops duplicates and remembers one for the next Ack, and builds Acks
//     with SACK ranges and a flow-control limit.
//   - RangeSet: a capped set of sequence ranges, for state that is not a
//     window of values (NACK repair).
//
// Nothing here assumes a unicast session: a multicast publisher can keep a
// Sender per stream, feed it the acknowledgements its subscribers agree on
// and the gaps they report (Sender.MarkLost), and a subscriber's Receiver
// can report its gaps (Receiver.AppendMissing) as NACKs.
//
// # Sequence numbers and windows
//
// Sender and Receiver each keep a window of at most Window sequence numbers.
// The Sender may push while Next-Base < Window and Next comes before the
// peer's Limit; the Receiver accepts numbers in [NextPop, NextPop+Window).
// The Receiver's Limit is NextPop plus the window minus what the application
// has not yet taken (the backlog passed to Ack), so a Sender that obeys it
// never sends what the Receiver cannot hold. Until the first Ack the Limit
// is the Sender's own window: give both sides the same window.
//
// The Receiver has two positions: Cum, the first number not received (what
// Ack reports), and NextPop, the next value Pop returns. A caller that pops
// everything it can after each Push keeps them equal.
//
// # Costs
//
// Both sides keep their values in a ring indexed by sequence number, with
// bitmaps beside it; there are no maps. A ring starts at 16 slots (fewer if
// the window is smaller) and doubles when the values in flight or waiting
// for a gap no longer fit, up to the window rounded up to a power of two; it
// never shrinks. An idle or unused Sender or Receiver therefore costs a few
// hundred bytes (see Footprint) whatever the window, and once the rings are
// as large as the traffic needs there are no allocations per message.
// Push, Pop, and the acknowledgement of a record cost O(1), amortized over
// the doublings; SACK processing and generation scan bitmaps 64 numbers at a
// time. Memory is bounded by the configured windows whatever a peer sends.
//
// # The caller's duties
//
// The engine above owns the Sender and Receiver of a stream from one
// goroutine. After Sender.OnAck it retransmits what Sender.PopLost hands
// out. When records count as lost by time, what the retransmission timer
// does and how an overrun report is answered is policy, and lives in
// package loss (loss.Recovery wraps a Sender with an RTT estimator): the
// Sender's LossDeadline, DetectLoss, OldestSentAt, MarkAllLost,
// MarkLostSentBefore and SetSRTT are the primitives it uses.
package window
