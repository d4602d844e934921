package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cnlink/cnlink/transport"
)

// Version is the protocol version carried in every header.
const Version = 1

// HeaderLen is the size of the cnlink header that starts every cn_msg
// payload.
const HeaderLen = 12

// Type is a frame type.
type Type uint8

// Frame types. "Originated" frames carry the sender's epoch in cn_msg.ack;
// "answers" carry the answered frame's seq and ack + 1 (the connector rule),
// which is the receiver's own epoch + 1.
const (
	TypeSyn    Type = 1 // originated: open a session
	TypeSynAck Type = 2 // answers a Syn
	TypeData   Type = 3 // originated: one application message (or FIN)
	TypeReply  Type = 4 // answers a request Data frame; also in the replier's stream
	TypeAck    Type = 5 // answers the newest Data it acknowledges
	TypePing   Type = 6 // originated: keepalive, window probe, status request
	TypeRst    Type = 7 // answers any frame: the session is gone
)

func (t Type) String() string {
	switch t {
	case TypeSyn:
		return "SYN"
	case TypeSynAck:
		return "SYNACK"
	case TypeData:
		return "DATA"
	case TypeReply:
		return "REPLY"
	case TypeAck:
		return "ACK"
	case TypePing:
		return "PING"
	case TypeRst:
		return "RST"
	case TypeMData:
		return "MDATA"
	case TypeHeartbeat:
		return "HEARTBEAT"
	case TypeNak:
		return "NAK"
	case TypeStatus:
		return "STATUS"
	case TypeEvict:
		return "EVICT"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Header flags.
const (
	FlagRequest   uint16 = 1 << 0 // Data: the sender waits for a Reply
	FlagFin       uint16 = 1 << 1 // Data: end of the sender's stream (empty payload)
	FlagStatusReq uint16 = 1 << 2 // Ack/Ping: "I lost frames (overrun): answer with your status and repair at once"
	FlagDupValid  uint16 = 1 << 3 // Ack: Body.Dup holds a duplicate seen (DSACK)
)

// Header is the cnlink header. Arg depends on the type: the stream seq
// (DSN) of a Reply, the cumulative ack of an Ack, the reason of a Rst.
type Header struct {
	Version uint8
	Type    Type
	Flags   uint16
	CRC     uint32
	Arg     uint32
}

var (
	ne         = binary.NativeEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	zero4      [4]byte
)

// Decode errors.
var (
	ErrShort    = errors.New("cnlink/wire: frame too short")
	ErrVersion  = errors.New("cnlink/wire: unknown protocol version")
	ErrChecksum = errors.New("cnlink/wire: checksum mismatch")
	ErrBody     = errors.New("cnlink/wire: malformed body")
)

// crcOffset is where the CRC lives inside a whole frame.
const crcOffset = transport.FrameHeaderLen + 4

// Seal computes the CRC32C of one encoded frame (starting at its
// nlmsghdr, exactly FrameLen bytes or the unpadded length) and stores it.
// The CRC covers the cn_msg header, the cnlink header with its CRC field
// taken as zero, and the body; the nlmsghdr is excluded because senders
// other than cnlink (and the kernel) rewrite nothing there we rely on, and
// nlmsg_len is checked structurally anyway.
func Seal(frame []byte) {
	ne.PutUint32(frame[crcOffset:], 0)
	n := transport.FrameHeaderLen + int(ne.Uint16(frame[32:]))
	ne.PutUint32(frame[crcOffset:], crc32.Checksum(frame[transport.NlmsgHdrLen:n], castagnoli))
}

// ParseHeader decodes the cnlink header at the start of a cn_msg payload
// and checks its version. It does not check the CRC (Reader does).
func ParseHeader(p []byte) (Header, error) {
	if len(p) < HeaderLen {
		return Header{}, ErrShort
	}
	h := Header{
		Version: p[0],
		Type:    Type(p[1]),
		Flags:   ne.Uint16(p[2:]),
		CRC:     ne.Uint32(p[4:]),
		Arg:     ne.Uint32(p[8:]),
	}
	if h.Version != Version {
		return h, ErrVersion
	}
	return h, nil
}

// verify checks the CRC of frame (from its nlmsghdr to the end of its
// cn_msg payload) against want, with the CRC field taken as zero, as Seal
// computed it, without writing to frame (the datagram may be shared).
func verify(frame []byte, want uint32) bool {
	c := crc32.Update(0, castagnoli, frame[transport.NlmsgHdrLen:crcOffset])
	c = crc32.Update(c, castagnoli, zero4[:])
	c = crc32.Update(c, castagnoli, frame[crcOffset+4:])
	return c == want
}

// PutHeader writes h (with CRC zero) into p[:HeaderLen].
func PutHeader(p []byte, h Header) {
	p[0] = Version
	p[1] = byte(h.Type)
	ne.PutUint16(p[2:], h.Flags)
	ne.PutUint32(p[4:], 0)
	ne.PutUint32(p[8:], h.Arg)
}

// ErrNotConnector: the netlink message is not NLMSG_DONE.
var ErrNotConnector = errors.New("cnlink/wire: netlink message type is not NLMSG_DONE")
