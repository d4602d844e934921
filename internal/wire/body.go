package wire

// SynLen is the size of a Syn or SynAck body.
const SynLen = 20

// Syn is the body of Syn and SynAck frames: what each side tells the other
// when a session opens. All limits describe the *sender's receive side*.
type Syn struct {
	Epoch       uint32 // sender's session epoch (random, never 0)
	ISN         uint32 // first DSN the sender will use
	Window      uint32 // frames the sender buffers beyond its cumulative ack
	MaxMessage  uint32 // largest application message the sender accepts
	MaxDatagram uint32 // largest datagram the sender can receive whole
}

// AppendSyn appends the encoded body.
func AppendSyn(dst []byte, s Syn) []byte {
	var b [SynLen]byte
	ne.PutUint32(b[0:], s.Epoch)
	ne.PutUint32(b[4:], s.ISN)
	ne.PutUint32(b[8:], s.Window)
	ne.PutUint32(b[12:], s.MaxMessage)
	ne.PutUint32(b[16:], s.MaxDatagram)
	return append(dst, b[:]...)
}

// ParseSyn decodes a Syn body. Extra trailing bytes are ignored so that a
// later version can extend it.
func ParseSyn(b []byte) (Syn, error) {
	if len(b) < SynLen {
		return Syn{}, ErrBody
	}
	return Syn{
		Epoch:       ne.Uint32(b[0:]),
		ISN:         ne.Uint32(b[4:]),
		Window:      ne.Uint32(b[8:]),
		MaxMessage:  ne.Uint32(b[12:]),
		MaxDatagram: ne.Uint32(b[16:]),
	}, nil
}

// AckFixedLen is the fixed part of an Ack body; each SACK range adds
// RangeLen bytes.
const (
	AckFixedLen = 12
	RangeLen    = 8
	// MaxRanges bounds the SACK ranges one Ack may carry.
	MaxRanges = 32
)

// Range is an inclusive range of DSNs.
type Range struct{ Start, End uint32 }

// Ack is the body of an Ack frame (the cumulative ack travels in
// Header.Arg).
type Ack struct {
	Limit  uint32  // the peer may send DSNs before Limit (flow control)
	Dup    uint32  // a duplicate DSN seen (valid with FlagDupValid)
	Ranges []Range // SACK blocks above the cumulative ack, newest first
}

// AppendAck appends the encoded body. At most MaxRanges ranges are written.
func AppendAck(dst []byte, a *Ack) []byte {
	n := min(len(a.Ranges), MaxRanges)
	var b [AckFixedLen]byte
	ne.PutUint32(b[0:], a.Limit)
	ne.PutUint32(b[4:], a.Dup)
	ne.PutUint16(b[8:], uint16(n))
	dst = append(dst, b[:]...)
	for _, r := range a.Ranges[:n] {
		var rb [RangeLen]byte
		ne.PutUint32(rb[0:], r.Start)
		ne.PutUint32(rb[4:], r.End)
		dst = append(dst, rb[:]...)
	}
	return dst
}

// ParseAck decodes an Ack body into a, reusing a.Ranges' storage.
func ParseAck(b []byte, a *Ack) error {
	if len(b) < AckFixedLen {
		return ErrBody
	}
	n := int(ne.Uint16(b[8:]))
	if n > MaxRanges || len(b) < AckFixedLen+n*RangeLen {
		return ErrBody
	}
	a.Limit = ne.Uint32(b[0:])
	a.Dup = ne.Uint32(b[4:])
	a.Ranges = a.Ranges[:0]
	for i := range n {
		o := AckFixedLen + i*RangeLen
		a.Ranges = append(a.Ranges, Range{Start: ne.Uint32(b[o:]), End: ne.Uint32(b[o+4:])})
	}
	return nil
}

// Rst reasons (Header.Arg of a Rst frame).
const (
	RstAbort      uint32 = 1 // the peer aborted the session
	RstNoSession  uint32 = 2 // the receiver knows no such session (restarted peer, or never opened)
	RstRefused    uint32 = 3 // the receiver does not accept sessions
	RstBadHandsh  uint32 = 4 // incompatible handshake parameters
	RstEndpointGo uint32 = 5 // the peer's endpoint is closing
	RstProtocol   uint32 = 6 // the peer broke the protocol (e.g. a message over max_message)
)
