package transport

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testFrame returns a frame whose every field differs from the other
// frames' (so a decoder that mixes up fields or frames is caught) with an
// n-byte payload that is a recognisable pattern.
func testFrame(i, n int) *Frame {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i*31 + j + 1)
	}
	u := uint32(i)
	return &Frame{
		NlType:  NlmsgDone,
		NlFlags: uint16(0x100 + i),
		NlSeq:   0x01020300 + u,
		NlPID:   0x0a0b0c00 + u,
		ID:      CbID{Idx: 0x11110000 + u, Val: 0x22220000 + u},
		Seq:     0x33330000 + u,
		Ack:     0x44440000 + u,
		Flags:   uint16(0x5500 + i),
		Payload: p,
	}
}

func mustAppend(t testing.TB, dst []byte, f *Frame) []byte {
	t.Helper()
	dst, err := AppendFrame(dst, f)
	if err != nil {
		t.Fatalf("AppendFrame: %v", err)
	}
	return dst
}

// encodeAll encodes frames back to back, as one datagram.
func encodeAll(t testing.TB, fs ...*Frame) []byte {
	t.Helper()
	var b []byte
	for _, f := range fs {
		b = mustAppend(t, b, f)
	}
	return b
}

// Header patches for shapes the encoder refuses to produce.
func setNlLen(b []byte, off int, v uint32) { ne.PutUint32(b[off:], v) }
func setCnLen(b []byte, off int, v uint16) { ne.PutUint16(b[off+32:], v) }

// cat joins byte slices into a fresh one.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// frameEqual compares every field; nil and empty payloads are equal
// because the wire cannot tell them apart.
func frameEqual(a, b *Frame) bool {
	return a.NlType == b.NlType && a.NlFlags == b.NlFlags && a.NlSeq == b.NlSeq &&
		a.NlPID == b.NlPID && a.ID == b.ID && a.Seq == b.Seq && a.Ack == b.Ack &&
		a.Flags == b.Flags && bytes.Equal(a.Payload, b.Payload)
}

func fmtFrame(f *Frame) string {
	p := f.Payload
	suffix := ""
	if len(p) > 16 {
		p, suffix = p[:16], "..."
	}
	return fmt.Sprintf("{type=%d flags=%#x nlseq=%#x pid=%#x id=%v seq=%#x ack=%#x cnflags=%#x len=%d payload=%x%s}",
		f.NlType, f.NlFlags, f.NlSeq, f.NlPID, f.ID, f.Seq, f.Ack, f.Flags, len(f.Payload), p, suffix)
}

func checkFrames(t testing.TB, got []Frame, want []*Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d frames, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !frameEqual(&got[i], want[i]) {
			t.Errorf("frame %d:\n got %s\nwant %s", i, fmtFrame(&got[i]), fmtFrame(want[i]))
		}
	}
}

// bigEndianHost reports whether this host is big-endian. The committed
// captures and seeds are little-endian (amd64) bytes, and both headers are
// native-endian, so tests that read them cannot run on such a host.
func bigEndianHost() bool { return ne.Uint16([]byte{1, 0}) != 1 }

func TestCodecSizes(t *testing.T) {
	// struct nlmsghdr is 16 bytes and struct cn_msg 20 (include/uapi/linux
	// netlink.h and connector.h); everything else is derived from them.
	if NlmsgHdrLen != 16 || CnMsgLen != 20 || FrameHeaderLen != 36 {
		t.Fatalf("header sizes %d+%d=%d, want 16+20=36", NlmsgHdrLen, CnMsgLen, FrameHeaderLen)
	}
	for _, c := range []struct{ n, align, frameLen int }{
		{0, 0, 36}, {1, 4, 40}, {2, 4, 40}, {3, 4, 40}, {4, 4, 40}, {5, 8, 44},
		{35, 36, 72}, {36, 36, 72}, {37, 40, 76}, {MaxPayload, MaxPayload + 1, 65572},
	} {
		if got := Align(c.n); got != c.align {
			t.Errorf("Align(%d) = %d, want %d", c.n, got, c.align)
		}
		if got := FrameLen(c.n); got != c.frameLen {
			t.Errorf("FrameLen(%d) = %d, want %d", c.n, got, c.frameLen)
		}
	}
	if got := (CbID{Idx: 1, Val: 2}).String(); got != "1:2" {
		t.Errorf("CbID.String() = %q, want 1:2", got)
	}
}

func TestAppendFrameLayout(t *testing.T) {
	f := testFrame(7, 5)
	got := mustAppend(t, []byte("pre"), f)

	// Built field by field from the uapi structs, independently of the
	// encoder's offsets.
	want := []byte("pre")
	want = ne.AppendUint32(want, 36+5) // nlmsg_len: unpadded
	want = ne.AppendUint16(want, f.NlType)
	want = ne.AppendUint16(want, f.NlFlags)
	want = ne.AppendUint32(want, f.NlSeq)
	want = ne.AppendUint32(want, f.NlPID)
	want = ne.AppendUint32(want, f.ID.Idx)
	want = ne.AppendUint32(want, f.ID.Val)
	want = ne.AppendUint32(want, f.Seq)
	want = ne.AppendUint32(want, f.Ack)
	want = ne.AppendUint16(want, 5) // cn_msg.len
	want = ne.AppendUint16(want, f.Flags)
	want = append(want, f.Payload...)
	want = append(want, 0, 0, 0) // 41 -> 44
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding:\n got %x\nwant %x", got, want)
	}

	// The encoding is a copy: later changes to the payload do not leak in.
	f.Payload[0] ^= 0xff
	if !bytes.Equal(got, want) {
		t.Fatal("AppendFrame output aliases the payload")
	}
}

func TestAppendFramePadding(t *testing.T) {
	for n := range 9 {
		t.Run(fmt.Sprintf("payload=%d", n), func(t *testing.T) {
			// Dirty spare capacity: the encoder reuses it without
			// reallocating, so it must clear the padding itself.
			buf := bytes.Repeat([]byte{0xff}, 128)
			dst := mustAppend(t, buf[:8:128], testFrame(1, n))
			if &dst[0] != &buf[0] {
				t.Fatal("AppendFrame reallocated although dst had capacity")
			}
			if len(dst) != 8+FrameLen(n) {
				t.Fatalf("appended %d bytes, want FrameLen(%d) = %d", len(dst)-8, n, FrameLen(n))
			}
			fr := dst[8:]
			if got := ne.Uint32(fr); got != uint32(FrameHeaderLen+n) {
				t.Errorf("nlmsg_len = %d, want unpadded %d", got, FrameHeaderLen+n)
			}
			if got := ne.Uint16(fr[32:]); got != uint16(n) {
				t.Errorf("cn_msg.len = %d, want %d", got, n)
			}
			for i, c := range fr[FrameHeaderLen+n:] {
				if c != 0 {
					t.Errorf("padding byte %d = %#x, want 0", i, c)
				}
			}
			if !bytes.Equal(dst[:8], bytes.Repeat([]byte{0xff}, 8)) {
				t.Error("AppendFrame changed the bytes already in dst")
			}
		})
	}
}

func TestAppendFrameTooLarge(t *testing.T) {
	dst := []byte("keep")
	big := make([]byte, MaxPayload+1)
	check := func(name string, got []byte, err error) {
		t.Helper()
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge", name, err)
		}
		var oe *OpError
		if !errors.As(err, &oe) || oe.Op != "encode" {
			t.Errorf("%s: err = %#v, want *OpError{Op: encode}", name, err)
		}
		if string(got) != "keep" {
			t.Errorf("%s: dst = %q after error, want it unchanged", name, got)
		}
	}
	got, err := AppendFrame(dst, &Frame{Payload: big})
	check("AppendFrame", got, err)
	// Each part fits, the sum does not.
	got, err = AppendFrameParts(dst, &Frame{}, big[:MaxPayload/2+1], big[:MaxPayload/2+1])
	check("AppendFrameParts", got, err)

	// The limit itself is allowed: cn_msg.len is a u16.
	got, err = AppendFrame(nil, &Frame{Payload: big[:MaxPayload]})
	if err != nil {
		t.Fatalf("MaxPayload: %v", err)
	}
	fs, err := DecodeFrames(nil, got)
	if err != nil || len(fs) != 1 || len(fs[0].Payload) != MaxPayload {
		t.Fatalf("MaxPayload frame decodes to %d frames, err %v", len(fs), err)
	}
}

func TestAppendFrameNoAlloc(t *testing.T) {
	f := testFrame(3, 257)
	// Exactly enough room, and buf is never replaced by the result, so a
	// reallocation on any run (not just the first) shows up.
	buf := make([]byte, 0, FrameLen(len(f.Payload)))
	var out []byte
	var err error
	if n := testing.AllocsPerRun(100, func() {
		out, err = AppendFrame(buf, f)
	}); n != 0 {
		t.Errorf("AppendFrame: %v allocs/op with capacity, want 0", n)
	}
	if err != nil || &out[0] != &buf[:1][0] {
		t.Fatalf("AppendFrame did not write into dst (err %v)", err)
	}
	if n := testing.AllocsPerRun(100, func() {
		out, err = AppendFrameParts(buf, f, f.Payload[:10], f.Payload[10:])
	}); n != 0 {
		t.Errorf("AppendFrameParts: %v allocs/op with capacity, want 0", n)
	}
	if err != nil || &out[0] != &buf[:1][0] {
		t.Fatalf("AppendFrameParts did not write into dst (err %v)", err)
	}
}

func TestAppendFramePartsMatchesJoined(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	for _, seed := range []uint64{1, 2, 3, seed} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed))
			for range 200 {
				f := randFrame(r, r.IntN(300))
				split := r.IntN(len(f.Payload) + 1)
				prefix := make([]byte, r.IntN(8))
				want := mustAppend(t, bytes.Clone(prefix), f)

				g := *f
				g.Payload = []byte("ignored by AppendFrameParts")
				got, err := AppendFrameParts(bytes.Clone(prefix), &g, f.Payload[:split], f.Payload[split:])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("split %d of %d:\nparts  %x\njoined %x", split, len(f.Payload), got, want)
				}
			}
		})
	}
}

// decodeCase is one datagram and what the Scanner must make of it.
type decodeCase struct {
	name    string
	data    []byte
	want    []*Frame // yielded frames, in order
	offsets []int    // Offset() after each yielded frame; nil = don't check
	err     error    // sentinel; nil for a clean end
	errOff  int      // DecodeError.Offset
}

func decodeCases(t testing.TB) []decodeCase {
	f0, f1, f2, f3 := testFrame(0, 0), testFrame(1, 1), testFrame(2, 6), testFrame(3, 40)
	one := encodeAll(t, f2) // 42 bytes of frame, padded to 44
	var cs []decodeCase
	add := func(c decodeCase) { cs = append(cs, c) }

	add(decodeCase{name: "empty datagram", data: nil})
	add(decodeCase{name: "one frame", data: one, want: []*Frame{f2}, offsets: []int{44}})
	add(decodeCase{name: "empty payload", data: encodeAll(t, f0), want: []*Frame{f0}, offsets: []int{36}})

	// Short header: fewer bytes than one nlmsghdr.
	for _, n := range []int{1, 4, 15} {
		add(decodeCase{name: fmt.Sprintf("short header %d bytes", n), data: one[:n], err: ErrShortNlmsg})
	}

	// nlmsg_len below the header size.
	for _, l := range []uint32{0, 1, 15} {
		b := bytes.Clone(one)
		setNlLen(b, 0, l)
		add(decodeCase{name: fmt.Sprintf("nlmsg_len=%d", l), data: b, err: ErrBadNlmsgLen})
	}
	// nlmsg_len beyond the datagram, including values whose int
	// conversion or alignment could overflow on a careless decoder.
	for _, l := range []uint32{45, 1000, 1<<31 - 1, 1 << 31, 1<<32 - 4, 1<<32 - 1} {
		b := bytes.Clone(one)
		setNlLen(b, 0, l)
		add(decodeCase{name: fmt.Sprintf("nlmsg_len=%d > datagram 44", l), data: b, err: ErrBadNlmsgLen})
	}
	// A truncated frame is the same rule seen from the other side.
	add(decodeCase{name: "datagram cut inside payload", data: one[:40], err: ErrBadNlmsgLen})

	// nlmsg payload shorter than a cn_msg: 16 <= nlmsg_len < 36.
	for _, l := range []uint32{16, 20, 35} {
		b := bytes.Clone(one)
		setNlLen(b, 0, l)
		add(decodeCase{name: fmt.Sprintf("nlmsg_len=%d holds no cn_msg", l), data: b, err: ErrShortCnMsg})
	}
	{
		b := bytes.Clone(one[:16])
		setNlLen(b, 0, 16)
		add(decodeCase{name: "nlmsg_len=16 whole datagram", data: b, err: ErrShortCnMsg})
	}

	// cn_msg.len beyond the netlink payload.
	for _, cl := range []uint16{7, 8, 9, 0xffff} {
		b := bytes.Clone(one)
		setCnLen(b, 0, cl) // nlmsg payload is 42-36 = 6 bytes (+2 padding)
		add(decodeCase{name: fmt.Sprintf("cn len %d > nlmsg payload 6", cl), data: b, err: ErrBadCnLen})
	}
	{
		// cn_msg.len may reach into the padding only if nlmsg_len says so.
		b := bytes.Clone(one)
		setNlLen(b, 0, 44)
		setCnLen(b, 0, 8)
		w := *f2
		w.Payload = b[36:44]
		add(decodeCase{name: "cn len covers whole nlmsg payload", data: b, want: []*Frame{&w}, offsets: []int{44}})
	}
	{
		// The kernel accepts cn_msg.len < nlmsg payload (cn_call_callback
		// checks only the upper bound); the extra bytes are not payload.
		b := bytes.Clone(one)
		setCnLen(b, 0, 2)
		w := *f2
		w.Payload = f2.Payload[:2]
		add(decodeCase{name: "cn len shorter than nlmsg payload", data: b, want: []*Frame{&w}, offsets: []int{44}})
	}

	// The last message need not be padded, fully or partly.
	add(decodeCase{name: "unpadded last message", data: one[:42], want: []*Frame{f2}, offsets: []int{42}})
	add(decodeCase{name: "partly padded last message", data: one[:43], want: []*Frame{f2}, offsets: []int{43}})
	{
		b := encodeAll(t, f1, f2)
		add(decodeCase{name: "unpadded last after padded", data: b[:len(b)-2], want: []*Frame{f1, f2}, offsets: []int{40, 82}})
	}

	// Trailing bytes: a tail too short for a header after valid frames.
	for _, n := range []int{1, 3, 4, 15} {
		b := cat(one, bytes.Repeat([]byte{0xee}, n))
		add(decodeCase{name: fmt.Sprintf("%d trailing bytes", n), data: b, want: []*Frame{f2}, offsets: []int{44}, err: ErrTrailingBytes, errOff: 44})
	}
	{
		// 16 zero bytes are a header (nlmsg_len 0), not a tail.
		b := cat(one, make([]byte, 16))
		add(decodeCase{name: "zero header after frame", data: b, want: []*Frame{f2}, offsets: []int{44}, err: ErrBadNlmsgLen, errOff: 44})
	}

	// Several messages: each starts at the previous one's aligned end.
	{
		var fs []*Frame
		var offs []int
		off := 0
		for n := range 9 {
			f := testFrame(n, n)
			fs = append(fs, f)
			off += FrameLen(n)
			offs = append(offs, off)
		}
		add(decodeCase{name: "payloads 0..8 aligned", data: encodeAll(t, fs...), want: fs, offsets: offs})
	}
	{
		// A frame that ends exactly on a boundary needs no padding.
		add(decodeCase{name: "mixed sizes", data: encodeAll(t, f3, f1, f0, f2, f3), want: []*Frame{f3, f1, f0, f2, f3},
			offsets: []int{76, 116, 152, 196, 272}})
	}

	// A malformed message stops the scan: earlier frames are yielded,
	// later ones are not, and the error names the bad message's offset.
	good := encodeAll(t, f1, f2) // 40 + 44
	{
		bad := bytes.Clone(one)
		setCnLen(bad, 0, 100)
		b := cat(good, bad, encodeAll(t, f3))
		add(decodeCase{name: "bad cn len mid-datagram", data: b, want: []*Frame{f1, f2}, offsets: []int{40, 84}, err: ErrBadCnLen, errOff: 84})
	}
	{
		bad := bytes.Clone(one)
		setNlLen(bad, 0, 20)
		b := cat(good, bad, encodeAll(t, f3))
		add(decodeCase{name: "short cn_msg mid-datagram", data: b, want: []*Frame{f1, f2}, offsets: []int{40, 84}, err: ErrShortCnMsg, errOff: 84})
	}
	{
		bad := bytes.Clone(one)
		setNlLen(bad, 0, 8)
		b := cat(good, bad, encodeAll(t, f3))
		add(decodeCase{name: "nlmsg_len=8 mid-datagram", data: b, want: []*Frame{f1, f2}, offsets: []int{40, 84}, err: ErrBadNlmsgLen, errOff: 84})
	}
	{
		// An oversized nlmsg_len in the first frame hides valid frames
		// behind it: nothing is yielded.
		b := cat(encodeAll(t, f1), good)
		setNlLen(b, 0, uint32(len(b)+1))
		add(decodeCase{name: "first nlmsg_len overruns", data: b, err: ErrBadNlmsgLen})
	}
	{
		// An nlmsg_len larger than the frame (but within the datagram)
		// swallows the next frame: the kernel's walk does the same.
		b := encodeAll(t, f1, f2, f3)
		setNlLen(b, 0, 40+44)
		add(decodeCase{name: "nlmsg_len swallows next frame", data: b, want: []*Frame{f1, f3}, offsets: []int{84, 160}})
	}

	// The codec does not judge types or ids: that is the caller's policy.
	{
		g := testFrame(4, 3)
		g.NlType = 2 // NLMSG_ERROR
		g.ID = CbID{}
		add(decodeCase{name: "non-connector nlmsg_type", data: encodeAll(t, g), want: []*Frame{g}, offsets: []int{40}})
	}
	return cs
}

func TestScannerDecodeRules(t *testing.T) {
	for _, c := range decodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			s := NewScanner(c.data)
			var got []Frame
			for s.Next() {
				got = append(got, *s.Frame())
				if c.offsets != nil {
					i := len(got) - 1
					if i < len(c.offsets) && s.Offset() != c.offsets[i] {
						t.Errorf("Offset() after frame %d = %d, want %d", i, s.Offset(), c.offsets[i])
					}
				}
			}
			checkFrames(t, got, c.want)
			checkDecodeErr(t, s.Err(), c.err, c.errOff)
			if c.err != nil && s.Offset() != c.errOff {
				t.Errorf("Offset() after error = %d, want %d", s.Offset(), c.errOff)
			}
			if c.err == nil && s.Offset() != len(c.data) {
				t.Errorf("Offset() at clean end = %d, want len %d", s.Offset(), len(c.data))
			}
			// The scan stays stopped.
			if s.Next() {
				t.Error("Next() = true after the scan ended")
			}
			if !errors.Is(s.Err(), c.err) {
				t.Errorf("Err() changed after the end: %v", s.Err())
			}

			// DecodeFrames is the same walk, appending after what dst has.
			sentinel := Frame{Seq: 0xdead}
			all, err := DecodeFrames([]Frame{sentinel}, c.data)
			if len(all) == 0 || all[0].Seq != 0xdead {
				t.Fatal("DecodeFrames dropped the frames already in dst")
			}
			checkFrames(t, all[1:], c.want)
			checkDecodeErr(t, err, c.err, c.errOff)
		})
	}
}

func checkDecodeErr(t testing.TB, err, want error, wantOff int) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("err = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("err = %v, want errors.Is %v", err, want)
	}
	for _, other := range []error{ErrShortNlmsg, ErrBadNlmsgLen, ErrShortCnMsg, ErrBadCnLen, ErrTrailingBytes} {
		if other != want && errors.Is(err, other) {
			t.Errorf("err = %v also matches %v", err, other)
		}
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err %T is not a *DecodeError", err)
	}
	if de.Offset != wantOff {
		t.Errorf("DecodeError.Offset = %d, want %d", de.Offset, wantOff)
	}
	if !strings.Contains(de.Error(), fmt.Sprintf("offset %d", wantOff)) || !strings.Contains(de.Error(), want.Error()) {
		t.Errorf("DecodeError.Error() = %q lacks the offset or cause", de.Error())
	}
}

func TestScannerPayloadAliasing(t *testing.T) {
	b := encodeAll(t, testFrame(1, 5), testFrame(2, 8))
	s := NewScanner(b)
	if !s.Next() {
		t.Fatal(s.Err())
	}
	p := s.Frame().Payload
	if &p[0] != &b[FrameHeaderLen] {
		t.Fatal("Payload does not alias the datagram")
	}
	// Capacity is clipped, so appending to a payload cannot overwrite the
	// padding or the next frame.
	if cap(p) != len(p) {
		t.Errorf("cap(Payload) = %d, want len %d", cap(p), len(p))
	}
	before := bytes.Clone(b)
	_ = append(p, 0xaa, 0xbb, 0xcc)
	if !bytes.Equal(b, before) {
		t.Error("appending to a decoded Payload overwrote the datagram")
	}
	if !s.Next() || !frameEqual(s.Frame(), testFrame(2, 8)) {
		t.Fatalf("second frame: %v %v", s.Frame(), s.Err())
	}
}

func TestScannerReset(t *testing.T) {
	bad := []byte{1, 2, 3}
	good := encodeAll(t, testFrame(1, 1), testFrame(2, 2))
	var s Scanner
	s.Reset(bad)
	if s.Next() || !errors.Is(s.Err(), ErrShortNlmsg) {
		t.Fatalf("on %x: Next/Err = %v", bad, s.Err())
	}
	// Reset clears the error and the offset.
	s.Reset(good)
	if s.Err() != nil || s.Offset() != 0 {
		t.Fatalf("after Reset: Err %v Offset %d", s.Err(), s.Offset())
	}
	n := 0
	for s.Next() {
		n++
	}
	if n != 2 || s.Err() != nil {
		t.Fatalf("after Reset: %d frames, err %v; want 2, nil", n, s.Err())
	}
}

func TestScannerNoAlloc(t *testing.T) {
	var fs []*Frame
	for i := range 16 {
		fs = append(fs, testFrame(i, i*13))
	}
	b := encodeAll(t, fs...)
	var s Scanner
	total := 0
	if n := testing.AllocsPerRun(100, func() {
		s.Reset(b)
		for s.Next() {
			total += len(s.Frame().Payload)
		}
	}); n != 0 {
		t.Errorf("Scanner: %v allocs per datagram, want 0", n)
	}
	if s.Err() != nil || total == 0 {
		t.Fatalf("scan failed: err %v, %d payload bytes", s.Err(), total)
	}
}

// randFrame returns a frame with random header fields and an n-byte
// random payload.
func randFrame(r *rand.Rand, n int) *Frame {
	p := make([]byte, n+7)
	for i := 0; i < n; i += 8 {
		ne.PutUint64(p[i:], r.Uint64())
	}
	return &Frame{
		NlType:  uint16(r.Uint32()),
		NlFlags: uint16(r.Uint32()),
		NlSeq:   r.Uint32(),
		NlPID:   r.Uint32(),
		ID:      CbID{Idx: r.Uint32(), Val: r.Uint32()},
		Seq:     r.Uint32(),
		Ack:     r.Uint32(),
		Flags:   uint16(r.Uint32()),
		Payload: p[:n:n],
	}
}

// randPayloadLen covers 0..MaxPayload but keeps the mean small so that a
// datagram of many frames stays cheap to build.
func randPayloadLen(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 5:
		return MaxPayload - r.IntN(8) // at and near the u16 limit
	case x < 15:
		return r.IntN(MaxPayload + 1)
	case x < 40:
		return r.IntN(2048)
	default:
		return r.IntN(64)
	}
}

// TestCodecRoundTripRandom encodes random datagrams, decodes them, and
// also decodes every truncation point of each, where the outcome is fully
// determined by where the cut falls.
func TestCodecRoundTripRandom(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8, uint64(time.Now().UnixNano())}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x636e6c696e6b))
			for range 25 {
				roundTripOnce(t, r)
				if t.Failed() {
					return
				}
			}
		})
	}
}

func roundTripOnce(t *testing.T, r *rand.Rand) {
	nf := 1 + r.IntN(64)
	fs := make([]*Frame, nf)
	starts := make([]int, nf) // offset of each frame
	var b []byte
	if r.IntN(2) == 0 {
		b = make([]byte, 0, r.IntN(4096)) // sometimes grow, sometimes not
	}
	for i := range fs {
		fs[i] = randFrame(r, randPayloadLen(r))
		starts[i] = len(b)
		var err error
		if r.IntN(2) == 0 {
			b, err = AppendFrame(b, fs[i])
		} else {
			k := r.IntN(len(fs[i].Payload) + 1)
			b, err = AppendFrameParts(b, fs[i], fs[i].Payload[:k], fs[i].Payload[k:])
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b)-starts[i] != FrameLen(len(fs[i].Payload)) {
			t.Fatalf("frame %d took %d bytes, want %d", i, len(b)-starts[i], FrameLen(len(fs[i].Payload)))
		}
	}

	got, err := DecodeFrames(nil, b)
	if err != nil {
		t.Fatalf("decode of %d frames: %v", nf, err)
	}
	checkFrames(t, got, fs)

	// Cut the datagram at a few random points and at every byte of the
	// last frame's tail, where the padding rules live.
	cuts := []int{0, len(b)}
	for range 8 {
		cuts = append(cuts, r.IntN(len(b)+1))
	}
	last := starts[nf-1]
	for c := max(last, len(b)-8); c < len(b); c++ {
		cuts = append(cuts, c)
	}
	for _, cut := range cuts {
		var want []*Frame
		wantErr := error(nil)
		for i, f := range fs {
			end := starts[i] + FrameHeaderLen + len(f.Payload)
			if end <= cut {
				want = append(want, f)
				continue
			}
			// Frame i is incomplete: the cut is at its start (clean
			// end) or inside it (an error at its offset).
			switch rest := cut - starts[i]; {
			case rest <= 0:
			case rest < NlmsgHdrLen && i == 0:
				wantErr = ErrShortNlmsg
			case rest < NlmsgHdrLen:
				wantErr = ErrTrailingBytes
			default:
				wantErr = ErrBadNlmsgLen // nlmsg_len > what is left
			}
			break
		}
		got, err := DecodeFrames(nil, b[:cut])
		checkFrames(t, got, want)
		if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
			t.Fatalf("cut at %d of %d: err %v, want %v", cut, len(b), err, wantErr)
		}
		if wantErr != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset != starts[len(want)] {
				t.Fatalf("cut at %d: error %v, want offset %d", cut, err, starts[len(want)])
			}
		}
	}
}

// procEvent is the part of struct proc_event (include/uapi/linux/cn_proc.h)
// the tests look at. Layout of the cn_msg payload:
//
//	off  size  field
//	0    4     what          enum proc_cn_event
//	4    4     cpu
//	8    8     timestamp_ns  __u64, aligned(8) inside proc_event
//	16   ...   event_data    union, largest member 24 bytes:
//	           ack  {err}
//	           fork {parent_pid, parent_tgid, child_pid, child_tgid}
//	           exec {process_pid, process_tgid}
//	           exit {process_pid, process_tgid, exit_code, exit_signal,
//	                 parent_pid, parent_tgid}
//
// sizeof(struct proc_event) is 40. The payload starts at datagram offset
// 36, so timestamp_ns sits at offset 44, which is not 8-aligned: decode
// from bytes, never by casting the buffer.
type procEvent struct {
	What, CPU   uint32
	TimestampNs uint64
	Data        [6]uint32 // event_data as u32 words; meaning depends on What
}

const (
	procEventSize = 40

	procEventNone = 0x00000000
	procEventFork = 0x00000001
	procEventExec = 0x00000002
	procEventExit = 0x80000000

	procCnMcastListen = 1
	procCnMcastIgnore = 2
)

// cnProcID is cn_proc's connector id, CN_IDX_PROC:CN_VAL_PROC.
var cnProcID = CbID{Idx: 1, Val: 1}

func parseProcEvent(p []byte) (procEvent, bool) {
	if len(p) < procEventSize {
		return procEvent{}, false
	}
	ev := procEvent{What: ne.Uint32(p[0:]), CPU: ne.Uint32(p[4:]), TimestampNs: ne.Uint64(p[8:])}
	for i := range ev.Data {
		ev.Data[i] = ne.Uint32(p[16+4*i:])
	}
	return ev, true
}

// checkKernelFrame checks what the kernel puts in every cn_proc message
// (cn_netlink_send_mult: nlmsg_put(skb, 0, msg->seq, NLMSG_DONE, ...)).
// It returns the decoded frame and event.
func checkKernelFrame(t testing.TB, name string, dgram []byte) (Frame, procEvent) {
	t.Helper()
	fs, err := DecodeFrames(nil, dgram)
	if err != nil || len(fs) != 1 {
		t.Fatalf("%s: %d frames, err %v; want exactly 1 (the kernel sends one message per datagram)", name, len(fs), err)
	}
	f := fs[0]
	if nl := ne.Uint32(dgram); int(nl) != len(dgram) || int(nl) != FrameHeaderLen+len(f.Payload) {
		t.Errorf("%s: nlmsg_len %d, datagram %d bytes, header+payload %d: want all equal", name, nl, len(dgram), FrameHeaderLen+len(f.Payload))
	}
	if f.NlType != NlmsgDone || f.NlFlags != 0 || f.NlPID != 0 {
		t.Errorf("%s: nlmsghdr type=%d flags=%#x pid=%d, want NLMSG_DONE, 0, 0", name, f.NlType, f.NlFlags, f.NlPID)
	}
	if f.NlSeq != f.Seq {
		t.Errorf("%s: nlmsg_seq %d != cn_msg.seq %d", name, f.NlSeq, f.Seq)
	}
	if f.ID != cnProcID {
		t.Errorf("%s: id %v, want %v", name, f.ID, cnProcID)
	}
	if len(f.Payload) != procEventSize {
		t.Fatalf("%s: payload %d bytes, want sizeof(struct proc_event) = %d", name, len(f.Payload), procEventSize)
	}
	ev, _ := parseProcEvent(f.Payload)
	if ev.TimestampNs == 0 {
		t.Errorf("%s: zero timestamp_ns (misread offset 8?)", name)
	}
	return f, ev
}

// TestCodecKernelCaptures decodes the cn_proc datagrams captured from a
// real kernel (testdata/kernel, see its README) and checks that they are
// the events of one process: fork, exec and exit of the same pid.
func TestCodecKernelCaptures(t *testing.T) {
	if bigEndianHost() {
		t.Skip("captures are little-endian; native-endian headers cannot be read on this host")
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "kernel", name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	ack, ackEv := checkKernelFrame(t, "ack", read("ack"))
	if ackEv.What != procEventNone || ackEv.Data[0] != 0 {
		t.Errorf("ack: what=%#x err=%d, want PROC_EVENT_NONE with err 0", ackEv.What, ackEv.Data[0])
	}
	if ack.Ack == 0 {
		t.Error("ack: cn_msg.ack is 0; the kernel answers with the request's ack+1")
	}

	_, fork := checkKernelFrame(t, "fork", read("fork"))
	parentTgid, childPid, childTgid := fork.Data[1], fork.Data[2], fork.Data[3]
	if fork.What != procEventFork || childPid == 0 || childPid != childTgid || parentTgid == 0 {
		t.Errorf("fork: what=%#x data=%v, want PROC_EVENT_FORK of a new process", fork.What, fork.Data)
	}

	_, exec := checkKernelFrame(t, "exec", read("exec"))
	if exec.What != procEventExec || exec.Data[0] != childPid || exec.Data[1] != childPid {
		t.Errorf("exec: what=%#x pid=%d tgid=%d, want PROC_EVENT_EXEC of %d", exec.What, exec.Data[0], exec.Data[1], childPid)
	}

	_, exit := checkKernelFrame(t, "exit", read("exit"))
	if exit.What != procEventExit || exit.Data[0] != childPid || exit.Data[1] != childPid ||
		exit.Data[2] != 0 || exit.Data[5] != parentTgid {
		t.Errorf("exit: what=%#x data=%v, want PROC_EVENT_EXIT of %d, code 0, parent %d", exit.What, exit.Data, childPid, parentTgid)
	}
	if !(fork.TimestampNs <= exec.TimestampNs && exec.TimestampNs <= exit.TimestampNs) {
		t.Errorf("timestamps not ordered fork %d <= exec %d <= exit %d", fork.TimestampNs, exec.TimestampNs, exit.TimestampNs)
	}

	// A user peer may batch such messages in one datagram: the Scanner
	// must walk them (76 bytes each, already aligned).
	all := cat(read("ack"), read("fork"), read("exec"), read("exit"))
	fs, err := DecodeFrames(nil, all)
	if err != nil || len(fs) != 4 {
		t.Fatalf("concatenated captures: %d frames, err %v", len(fs), err)
	}
	for i, f := range fs {
		if f.ID != cnProcID || len(f.Payload) != procEventSize {
			t.Errorf("concatenated frame %d: %s", i, fmtFrame(&f))
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, n := range []int{64, 256, 1024, 4096, 16384} {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			f := testFrame(1, n)
			dst := make([]byte, 0, FrameLen(n))
			b.ReportAllocs()
			b.SetBytes(int64(FrameLen(n)))
			var err error
			for b.Loop() {
				dst, err = AppendFrame(dst[:0], f)
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkScanner scans one datagram of about 64 KiB (at least one frame)
// per op. The Scanner reads only headers, so its cost is per frame:
// ns/frame is the figure to watch; MB/s (datagram bytes) grows with the
// payload size without meaning more work.
func BenchmarkScanner(b *testing.B) {
	for _, n := range []int{64, 256, 1024, 4096, 16384} {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			var dgram []byte
			frames := max(1, 65536/FrameLen(n))
			for i := range frames {
				dgram = mustAppend(b, dgram, testFrame(i, n))
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(dgram)))
			var s Scanner
			got := 0
			for b.Loop() {
				s.Reset(dgram)
				for s.Next() {
					got++
				}
			}
			if s.Err() != nil || got%frames != 0 {
				b.Fatalf("scan: err %v, %d frames", s.Err(), got)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(got), "ns/frame")
		})
	}
}
