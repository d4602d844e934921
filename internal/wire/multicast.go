package wire

// Multicast frame types (docs/PROTOCOL.md §16). They share the header,
// the CRC and the channel rules of the session frames; the publisher's
// epoch plays the part of a session epoch: originated frames (MDATA,
// HEARTBEAT, EVICT) carry it in cn_msg.ack, the subscribers' answers (NAK,
// STATUS) carry it plus one.
const (
	TypeMData     Type = 8  // originated: one published message; seq = MSN, arg = oldest retained MSN
	TypeHeartbeat Type = 9  // originated: seq = next MSN, arg = oldest retained MSN, body Heartbeat
	TypeNak       Type = 10 // answers: ranges the subscriber misses, body Nak
	TypeStatus    Type = 11 // answers: seq = the subscriber's position, arg = its window
	TypeEvict     Type = 12 // originated, unicast: the publisher dropped the subscriber, arg = reason
)

// Multicast flags. FlagFin and FlagStatusReq also have a meaning on a
// HEARTBEAT (the stream ends at its seq; registered subscribers report
// their position now).
const (
	FlagRepair uint16 = 1 << 4 // MData: a retransmission, answering a NAK
	FlagTail   uint16 = 1 << 5 // Nak: also everything from arg up to the publisher's newest
	FlagLeave  uint16 = 1 << 6 // Status: the subscriber unregisters
	FlagJoin   uint16 = 1 << 7 // Status: not yet confirmed: answer with a unicast HEARTBEAT
)

// HeartbeatLen is the size of a Heartbeat body.
const HeartbeatLen = 16

// Heartbeat is the body of a HEARTBEAT: the publisher's limits, so that a
// subscriber can size its buffers before the first message.
type Heartbeat struct {
	Window      uint32 // messages of history (PROTOCOL.md §16.4.2)
	MaxMessage  uint32 // largest message the publisher sends
	MaxDatagram uint32 // largest datagram the publisher sends
	// Keepalive is the longest a registered subscriber may go without a
	// STATUS, in microseconds: the publisher drops one silent for four
	// times as long.
	Keepalive uint32
}

// AppendHeartbeat appends the encoded body.
func AppendHeartbeat(dst []byte, h Heartbeat) []byte {
	var b [HeartbeatLen]byte
	ne.PutUint32(b[0:], h.Window)
	ne.PutUint32(b[4:], h.MaxMessage)
	ne.PutUint32(b[8:], h.MaxDatagram)
	ne.PutUint32(b[12:], h.Keepalive)
	return append(dst, b[:]...)
}

// ParseHeartbeat decodes a Heartbeat body; trailing bytes are ignored.
func ParseHeartbeat(b []byte) (Heartbeat, error) {
	if len(b) < HeartbeatLen {
		return Heartbeat{}, ErrBody
	}
	return Heartbeat{
		Window:      ne.Uint32(b[0:]),
		MaxMessage:  ne.Uint32(b[4:]),
		MaxDatagram: ne.Uint32(b[8:]),
		Keepalive:   ne.Uint32(b[12:]),
	}, nil
}

// NakFixedLen is the fixed part of a Nak body; each range adds RangeLen.
const NakFixedLen = 4

// AppendNak appends a Nak body: a count, two reserved bytes, and at most
// MaxRanges inclusive ranges of MSNs, lowest first.
func AppendNak(dst []byte, ranges []Range) []byte {
	n := min(len(ranges), MaxRanges)
	var b [NakFixedLen]byte
	ne.PutUint16(b[0:], uint16(n))
	dst = append(dst, b[:]...)
	for _, r := range ranges[:n] {
		var rb [RangeLen]byte
		ne.PutUint32(rb[0:], r.Start)
		ne.PutUint32(rb[4:], r.End)
		dst = append(dst, rb[:]...)
	}
	return dst
}

// ParseNak decodes a Nak body into dst[:0] and returns it. A count over
// MaxRanges or a body too short for its count is ErrBody.
func ParseNak(b []byte, dst []Range) ([]Range, error) {
	if len(b) < NakFixedLen {
		return dst[:0], ErrBody
	}
	n := int(ne.Uint16(b[0:]))
	if n > MaxRanges || len(b) < NakFixedLen+n*RangeLen {
		return dst[:0], ErrBody
	}
	dst = dst[:0]
	for i := range n {
		o := NakFixedLen + i*RangeLen
		dst = append(dst, Range{Start: ne.Uint32(b[o:]), End: ne.Uint32(b[o+4:])})
	}
	return dst, nil
}

// Evict reasons (Header.Arg of an EVICT).
const (
	EvictTimeout uint32 = 1 // no STATUS for the subscriber timeout
	EvictLaggard uint32 = 2 // held the publisher back longer than it allows
	EvictRefused uint32 = 3 // registration refused (subscriber limit, or not allowed)
	EvictClosing uint32 = 4 // the publisher aborted
)
