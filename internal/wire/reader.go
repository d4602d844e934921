package wire

import "github.com/cnlink/cnlink/transport"

// A Reader decodes the frames of one datagram in order: the mirror of
// Append. Use it like bufio.Scanner:
//
//	var r wire.Reader
//	r.Reset(datagram)
//	for r.Next() {
//		f, err := r.Frame()
//		if err != nil {
//			continue // a bad frame (checksum, version, type); the next may be fine
//		}
//		handle(f)
//	}
//	if r.Err() != nil {
//		// the netlink framing broke: the rest of the datagram is unreadable
//	}
//
// A Reader never writes to the datagram, and allocates nothing. The
// Parsed frames alias the datagram.
type Reader struct {
	b   []byte
	sc  transport.Scanner
	f   Parsed
	err error
}

// Reset starts reading datagram.
func (r *Reader) Reset(datagram []byte) {
	r.b = datagram
	r.sc.Reset(datagram)
	r.f, r.err = Parsed{}, nil
}

// Next moves to the next frame. It returns false at the end of the
// datagram or where its netlink framing breaks (see Err).
func (r *Reader) Next() bool {
	start := r.sc.Offset()
	if !r.sc.Next() {
		return false
	}
	tf := r.sc.Frame()
	r.f, r.err = parse(r.b[start:start+transport.FrameHeaderLen+len(tf.Payload)], tf)
	return true
}

// Frame returns the frame Next moved to, or why it is not a valid cnlink
// frame: ErrNotConnector, ErrShort, ErrVersion or ErrChecksum.
func (r *Reader) Frame() (*Parsed, error) { return &r.f, r.err }

// Err returns the framing error that stopped Next (a *transport.DecodeError:
// a length that overruns the datagram, trailing bytes, ...), or nil at a
// clean end.
func (r *Reader) Err() error { return r.sc.Err() }
