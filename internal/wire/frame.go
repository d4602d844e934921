package wire

import (
	"github.com/cnlink/cnlink/transport"
)

// Frame describes one cnlink frame's connector-level fields.
type Frame struct {
	ID    transport.CbID
	Seq   uint32 // cn_msg.seq (also written to nlmsg_seq, as the kernel does)
	Ack   uint32 // cn_msg.ack
	Port  uint32 // nlmsg_pid: our port, informational only (receivers ignore it)
	Type  Type
	Flags uint16
	Arg   uint32
}

// MaxControl is an upper bound on header+body bytes of any control frame.
const MaxControl = HeaderLen + AckFixedLen + MaxRanges*RangeLen

// Append encodes f with body and payload after the header, seals the CRC
// and returns the extended dst. body+payload must fit in a cn_msg.
func Append(dst []byte, f *Frame, body, payload []byte) ([]byte, error) {
	var scratch [MaxControl]byte
	if len(body) > MaxControl-HeaderLen {
		return dst, ErrBody
	}
	PutHeader(scratch[:], Header{Type: f.Type, Flags: f.Flags, Arg: f.Arg})
	n := HeaderLen + copy(scratch[HeaderLen:], body)
	start := len(dst)
	tf := transport.Frame{
		NlType: transport.NlmsgDone,
		NlSeq:  f.Seq,
		NlPID:  f.Port,
		ID:     f.ID,
		Seq:    f.Seq,
		Ack:    f.Ack,
	}
	out, err := transport.AppendFrameParts(dst, &tf, scratch[:n], payload)
	if err != nil {
		return dst, err
	}
	Seal(out[start:])
	return out, nil
}

// Parsed is one decoded cnlink frame.
type Parsed struct {
	ID     transport.CbID
	Seq    uint32
	Ack    uint32
	Header Header
	Body   []byte // bytes after the cnlink header (payload for Data/Reply); aliases the datagram
}

// parse validates and decodes the cnlink part of tf, whose bytes (from its
// nlmsghdr to the end of its cn_msg payload) are frame: the netlink type,
// the version and the CRC. It does not write to frame.
func parse(frame []byte, tf *transport.Frame) (Parsed, error) {
	if tf.NlType != transport.NlmsgDone {
		return Parsed{}, ErrNotConnector
	}
	h, err := ParseHeader(tf.Payload)
	if err != nil {
		return Parsed{}, err
	}
	if !verify(frame, h.CRC) {
		return Parsed{}, ErrChecksum
	}
	return Parsed{ID: tf.ID, Seq: tf.Seq, Ack: tf.Ack, Header: h, Body: tf.Payload[HeaderLen:]}, nil
}
