package window

// MaxAckRanges is the most SACK ranges an Ack may usefully carry.
// Receiver.Ack never reports more, and Sender.OnAck ignores the ranges after
// the first MaxAckRanges so that the work one acknowledgement can cause stays
// bounded whatever a peer sends.
const MaxAckRanges = 256

// Ack is the content of an acknowledgement, as produced by Receiver.Ack and
// consumed by Sender.OnAck. It says nothing about how it is encoded on the
// wire.
//
// An acknowledgement is final: a receiver must not discard a value it has
// reported in Cum or Ranges (Receiver never does). Sender relies on this to
// release SACKed records at once, as QUIC does (RFC 9002 section 3, "No
// Reneging": "QUIC does not allow any acknowledged packet to be reneged,
// greatly simplifying implementations on both sides and reducing memory
// pressure on the sender"); TCP allows reneging (RFC 2018 section 8) and so
// has to keep SACKed data.
type Ack struct {
	// Cum is the next expected sequence number: every sequence number before
	// Cum was received.
	Cum Seq
	// Limit is the flow-control limit: the sender may send sequence numbers
	// that come before Limit. Receiver.Ack sets it to the start of its
	// window plus its credit (see there); it may come before Cum when the
	// receiver has no room at all, which Sender reads as no credit.
	Limit Seq
	// Ranges are received ranges above Cum (SACK, RFC 2018), disjoint and
	// not adjacent to one another. The first range holds the most recently
	// received sequence number, as RFC 2018 section 4 asks ("The first SACK
	// block ... MUST specify the contiguous block of data containing the
	// segment which triggered this ACK"), so that news of recent arrivals is
	// never crowded out; the others follow highest first.
	// When the receiver holds more ranges than it may report, the lowest are
	// left out; they are reported once the ranges above them merge or are
	// delivered.
	Ranges []Range
	// DupValid says that a duplicate was received since the previous Ack,
	// and Dup is one such duplicate sequence number. This is D-SACK
	// (RFC 2883) reduced to one number: "A D-SACK block is only used to
	// report a duplicate contiguous sequence of data received by the
	// receiver in the most recent packet" (section 4), which lets the sender
	// "infer when it has unnecessarily retransmitted a packet" (abstract).
	// One number per Ack is enough for that; a lost Ack loses the report,
	// which only delays the sender's adaptation.
	DupValid bool
	Dup      Seq
}

// Clone returns a copy of a whose Ranges do not share memory with a. Use it
// to keep an Ack from Receiver.Ack past the next call to Receiver.Ack.
func (a Ack) Clone() Ack {
	if a.Ranges != nil {
		a.Ranges = append([]Range(nil), a.Ranges...)
	}
	return a
}
