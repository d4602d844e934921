package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire sizes. Both headers are in native byte order: netlink never leaves
// the host.
const (
	// NlmsgHdrLen is sizeof(struct nlmsghdr).
	NlmsgHdrLen = 16
	// CnMsgLen is sizeof(struct cn_msg) without data.
	CnMsgLen = 20
	// FrameHeaderLen is the fixed overhead of one connector message.
	FrameHeaderLen = NlmsgHdrLen + CnMsgLen
	// MaxPayload is the largest cn_msg payload: cn_msg.len is a u16.
	MaxPayload = 1<<16 - 1
	// MaxKernelMsgSize is CONNECTOR_MAX_MSG_SIZE: the kernel drops larger
	// messages addressed to it (port 0).
	MaxKernelMsgSize = 16384

	// NlmsgDone is NLMSG_DONE, the nlmsg_type of every connector message.
	NlmsgDone = 3
	// NlmsgAlignTo is NLMSG_ALIGNTO.
	NlmsgAlignTo = 4
)

// CbID is struct cb_id: the connector channel a message belongs to.
type CbID struct {
	Idx, Val uint32
}

func (id CbID) String() string { return fmt.Sprintf("%d:%d", id.Idx, id.Val) }

// Frame is one netlink message carrying one cn_msg.
type Frame struct {
	// nlmsghdr fields. NlLen is computed on encode and checked on decode.
	NlType  uint16 // NlmsgDone for connector traffic
	NlFlags uint16
	NlSeq   uint32 // the kernel copies cn_msg.seq here; so do we
	NlPID   uint32 // whatever the sender wrote: untrusted, see Packet.From

	// cn_msg fields. Len is len(Payload).
	ID    CbID
	Seq   uint32
	Ack   uint32
	Flags uint16

	// Payload is the cn_msg data. On decode it aliases the datagram.
	Payload []byte
}

var ne = binary.NativeEndian

// Align rounds n up to NLMSG_ALIGNTO.
func Align(n int) int { return (n + NlmsgAlignTo - 1) &^ (NlmsgAlignTo - 1) }

// FrameLen is the aligned space one frame with n payload bytes occupies in
// a datagram.
func FrameLen(n int) int { return Align(FrameHeaderLen + n) }

// AppendFrame appends f, padded to a 4-byte boundary, to dst. It allocates
// only if dst lacks capacity. The payload must not exceed MaxPayload.
func AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	return AppendFrameParts(dst, f, f.Payload, nil)
}

// AppendFrameParts is AppendFrame with the payload given in two parts
// (typically a protocol header and an application message), so callers
// need not join them first. f.Payload is ignored.
func AppendFrameParts(dst []byte, f *Frame, a, b []byte) ([]byte, error) {
	n := len(a) + len(b)
	if n > MaxPayload {
		return dst, &OpError{Op: "encode", Kind: ErrTooLarge, Err: fmt.Errorf("payload %d bytes > %d", n, MaxPayload)}
	}
	total := FrameLen(n)
	off := len(dst)
	dst = grow(dst, total)
	h := dst[off : off+FrameHeaderLen]
	ne.PutUint32(h[0:], uint32(FrameHeaderLen+n))
	ne.PutUint16(h[4:], f.NlType)
	ne.PutUint16(h[6:], f.NlFlags)
	ne.PutUint32(h[8:], f.NlSeq)
	ne.PutUint32(h[12:], f.NlPID)
	ne.PutUint32(h[16:], f.ID.Idx)
	ne.PutUint32(h[20:], f.ID.Val)
	ne.PutUint32(h[24:], f.Seq)
	ne.PutUint32(h[28:], f.Ack)
	ne.PutUint16(h[32:], uint16(n))
	ne.PutUint16(h[34:], f.Flags)
	p := off + FrameHeaderLen
	p += copy(dst[p:], a)
	p += copy(dst[p:], b)
	clear(dst[p : off+total]) // padding
	return dst, nil
}

// grow extends b by n bytes, reallocating only when capacity is short.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// Decode errors. A DecodeError wraps one of these.
var (
	ErrShortNlmsg    = errors.New("datagram shorter than nlmsghdr")
	ErrBadNlmsgLen   = errors.New("nlmsg_len out of range")
	ErrShortCnMsg    = errors.New("netlink payload shorter than cn_msg")
	ErrBadCnLen      = errors.New("cn_msg len exceeds netlink payload")
	ErrTrailingBytes = errors.New("trailing bytes after last message")
)

// DecodeError reports a malformed datagram and where it went wrong.
type DecodeError struct {
	Offset int   // byte offset of the offending message in the datagram
	Err    error // one of ErrShortNlmsg, ErrBadNlmsgLen, ...
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("cnlink/transport: decode at offset %d: %v", e.Offset, e.Err)
}
func (e *DecodeError) Unwrap() error { return e.Err }

// Scanner walks the frames of one datagram without allocating:
//
//	s := transport.NewScanner(pkt.Data)
//	for s.Next() {
//		f := s.Frame()
//		...
//	}
//	if err := s.Err(); err != nil { ... }
//
// Frames before a malformed one are still yielded; scanning stops at the
// first error.
type Scanner struct {
	b   []byte
	off int
	f   Frame
	err error
}

// NewScanner returns a Scanner over datagram b.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// Reset makes s scan b from the start.
func (s *Scanner) Reset(b []byte) { *s = Scanner{b: b} }

// Next decodes the next frame. It returns false at the end of the
// datagram or on a malformed frame (see Err).
func (s *Scanner) Next() bool {
	rest := len(s.b) - s.off
	if s.err != nil || rest == 0 {
		return false
	}
	if rest < NlmsgHdrLen {
		if s.off == 0 {
			// Not even one header: nothing precedes these bytes, so
			// they are not "trailing".
			return s.fail(ErrShortNlmsg)
		}
		// The kernel's nlmsg_ok loop ignores such a tail; we report it so
		// that a sender bug is visible, after yielding what was valid.
		return s.fail(ErrTrailingBytes)
	}
	h := s.b[s.off:]
	nlLen := int(ne.Uint32(h[0:]))
	if nlLen < NlmsgHdrLen || nlLen > rest {
		return s.fail(ErrBadNlmsgLen)
	}
	if nlLen < FrameHeaderLen {
		return s.fail(ErrShortCnMsg)
	}
	cnLen := int(ne.Uint16(h[32:]))
	if FrameHeaderLen+cnLen > nlLen {
		return s.fail(ErrBadCnLen)
	}
	s.f = Frame{
		NlType:  ne.Uint16(h[4:]),
		NlFlags: ne.Uint16(h[6:]),
		NlSeq:   ne.Uint32(h[8:]),
		NlPID:   ne.Uint32(h[12:]),
		ID:      CbID{Idx: ne.Uint32(h[16:]), Val: ne.Uint32(h[20:])},
		Seq:     ne.Uint32(h[24:]),
		Ack:     ne.Uint32(h[28:]),
		Flags:   ne.Uint16(h[34:]),
		Payload: h[FrameHeaderLen : FrameHeaderLen+cnLen : FrameHeaderLen+cnLen],
	}
	// The last message of a datagram need not be padded.
	s.off += min(Align(nlLen), rest)
	return true
}

func (s *Scanner) fail(err error) bool {
	s.err = &DecodeError{Offset: s.off, Err: err}
	return false
}

// Frame returns the frame decoded by the last successful Next. Its Payload
// aliases the datagram.
func (s *Scanner) Frame() *Frame { return &s.f }

// Offset is the byte offset just past the last decoded frame.
func (s *Scanner) Offset() int { return s.off }

// Err returns the decode error that stopped the scan, or nil.
func (s *Scanner) Err() error { return s.err }

// DecodeFrames decodes every frame of b, appending to dst. It is a
// convenience for tests and tools; hot paths use Scanner.
func DecodeFrames(dst []Frame, b []byte) ([]Frame, error) {
	s := NewScanner(b)
	for s.Next() {
		dst = append(dst, *s.Frame())
	}
	return dst, s.Err()
}
