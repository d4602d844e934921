package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// refDecode is a second, deliberately plain model of the decode rules,
// written from the kernel's netlink_rcv_skb walk (nlmsg_len >= header,
// <= remaining; step NLMSG_ALIGN(nlmsg_len) clipped to what remains) and
// cn_call_callback's check (header + cn_msg + len <= nlmsg_len). It uses
// 64-bit arithmetic throughout so that it cannot share an overflow bug
// with the Scanner. It returns the frames, the offset where it stopped
// and the sentinel that stopped it (nil at a clean end).
func refDecode(b []byte) (frames []Frame, off int, err error) {
	ord := binary.NativeEndian
	pos := uint64(0)
	n := uint64(len(b))
	for pos < n {
		remaining := n - pos
		if remaining < 16 {
			if pos == 0 {
				return frames, int(pos), ErrShortNlmsg
			}
			return frames, int(pos), ErrTrailingBytes
		}
		msgLen := uint64(ord.Uint32(b[pos:]))
		if msgLen < 16 || msgLen > remaining {
			return frames, int(pos), ErrBadNlmsgLen
		}
		if msgLen < 16+20 {
			return frames, int(pos), ErrShortCnMsg
		}
		dataLen := uint64(ord.Uint16(b[pos+32:]))
		if 16+20+dataLen > msgLen {
			return frames, int(pos), ErrBadCnLen
		}
		frames = append(frames, Frame{
			NlType:  ord.Uint16(b[pos+4:]),
			NlFlags: ord.Uint16(b[pos+6:]),
			NlSeq:   ord.Uint32(b[pos+8:]),
			NlPID:   ord.Uint32(b[pos+12:]),
			ID:      CbID{Idx: ord.Uint32(b[pos+16:]), Val: ord.Uint32(b[pos+20:])},
			Seq:     ord.Uint32(b[pos+24:]),
			Ack:     ord.Uint32(b[pos+28:]),
			Flags:   ord.Uint16(b[pos+34:]),
			Payload: b[pos+36 : pos+36+dataLen],
		})
		step := (msgLen + 3) / 4 * 4
		pos += min(step, remaining)
	}
	return frames, int(pos), nil
}

var decodeSentinels = []error{ErrShortNlmsg, ErrBadNlmsgLen, ErrShortCnMsg, ErrBadCnLen, ErrTrailingBytes}

// FuzzScanner feeds arbitrary datagrams to the Scanner. Its seeds are the
// files in testdata/fuzz/FuzzScanner: real kernel captures, every shape of
// the decode table, and batched datagrams (see TestFuzzScannerSeedCorpus).
func FuzzScanner(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewScanner(data)
		var got []Frame
		prev := 0
		for s.Next() {
			fr := s.Frame()
			start, end := prev, s.Offset()
			// Offsets strictly increase and stay inside the datagram, so a
			// scan always terminates.
			if end <= start || end > len(data) {
				t.Fatalf("Offset went from %d to %d in a %d-byte datagram", start, end, len(data))
			}
			// The payload is the bytes after this frame's headers, inside
			// the input and inside this frame's span.
			pe := start + FrameHeaderLen + len(fr.Payload)
			if pe > end {
				t.Fatalf("frame at %d: payload ends at %d, past the frame's end %d", start, pe, end)
			}
			if len(fr.Payload) > 0 && &fr.Payload[0] != &data[start+FrameHeaderLen] {
				t.Fatalf("frame at %d: payload does not alias data[%d:]", start, start+FrameHeaderLen)
			}
			if cap(fr.Payload) != len(fr.Payload) {
				t.Fatalf("frame at %d: payload cap %d > len %d lets appends clobber the datagram", start, cap(fr.Payload), len(fr.Payload))
			}
			got = append(got, *fr)
			prev = end
		}

		err := s.Err()
		if err == nil && s.Offset() != len(data) {
			t.Fatalf("clean end at offset %d of %d", s.Offset(), len(data))
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset != s.Offset() {
				t.Fatalf("err %v: want *DecodeError at offset %d", err, s.Offset())
			}
			if !slices.ContainsFunc(decodeSentinels, func(e error) bool { return errors.Is(err, e) }) {
				t.Fatalf("err %v wraps no decode sentinel", err)
			}
		}

		// The independent model agrees on every frame, the stop offset
		// and the reason.
		ref, refOff, refErr := refDecode(data)
		if len(ref) != len(got) || refOff != s.Offset() || !errors.Is(err, refErr) || (refErr == nil) != (err == nil) {
			t.Fatalf("Scanner: %d frames, offset %d, err %v; model: %d frames, offset %d, err %v",
				len(got), s.Offset(), err, len(ref), refOff, refErr)
		}
		for i := range ref {
			if !frameEqual(&got[i], &ref[i]) {
				t.Fatalf("frame %d: Scanner %s, model %s", i, fmtFrame(&got[i]), fmtFrame(&ref[i]))
			}
		}

		// Re-encoding what was decoded and decoding again is lossless,
		// and the re-encoding is a fixed point.
		enc := encodeFrames(t, got)
		again, err := DecodeFrames(nil, enc)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("re-encoding holds %d frames, want %d", len(again), len(got))
		}
		for i := range got {
			if !frameEqual(&again[i], &got[i]) {
				t.Fatalf("frame %d changed through re-encoding: %s -> %s", i, fmtFrame(&got[i]), fmtFrame(&again[i]))
			}
		}
		if enc2 := encodeFrames(t, again); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

func encodeFrames(t *testing.T, fs []Frame) []byte {
	t.Helper()
	var b []byte
	for i := range fs {
		var err error
		if b, err = AppendFrame(b, &fs[i]); err != nil {
			t.Fatalf("re-encoding frame %d: %v", i, err)
		}
	}
	return b
}

// FuzzRoundTrip builds up to eight frames from the fuzzer's field values
// and payload (each frame a shorter suffix of it, so that every padding
// remainder occurs), encodes them as one datagram, and decodes it.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint16(NlmsgDone), uint16(0), uint32(1), uint32(0), uint32(1), uint32(1), uint32(1), uint32(7), uint16(0), []byte{1, 0, 0, 0}, uint8(1), uint16(0))
	f.Add(uint16(0xffff), uint16(0xffff), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), uint16(0xffff), []byte("hello, connector"), uint8(7), uint16(5))
	f.Add(uint16(0), uint16(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint16(0), []byte{}, uint8(0), uint16(0))
	f.Add(uint16(NlmsgDone), uint16(1), uint32(2), uint32(3), uint32(10), uint32(4), uint32(5), uint32(6), uint16(9), bytes.Repeat([]byte{0xa5}, 1001), uint8(5), uint16(500))
	f.Fuzz(func(t *testing.T, nlType, nlFlags uint16, nlSeq, nlPID, idx, val, seq, ack uint32, flags uint16,
		payload []byte, count uint8, split uint16) {
		nf := int(count%8) + 1
		want := make([]*Frame, 0, nf)
		var b []byte
		for i := range nf {
			u := uint32(i) * 0x9e3779b9 // vary every field per frame
			fr := &Frame{
				NlType: nlType ^ uint16(u), NlFlags: nlFlags ^ uint16(u>>16),
				NlSeq: nlSeq ^ u, NlPID: nlPID + u,
				ID:  CbID{Idx: idx ^ u, Val: val + u},
				Seq: seq + uint32(i), Ack: ack ^ u, Flags: flags + uint16(i),
				Payload: payload[min(i, len(payload)):],
			}
			before := len(b)
			var err error
			if i%2 == 0 {
				b, err = AppendFrame(b, fr)
			} else {
				k := int(split) % (len(fr.Payload) + 1)
				b, err = AppendFrameParts(b, fr, fr.Payload[:k], fr.Payload[k:])
			}
			if len(fr.Payload) > MaxPayload {
				if !errors.Is(err, ErrTooLarge) || len(b) != before {
					t.Fatalf("payload %d: err %v, dst grew by %d; want ErrTooLarge and dst unchanged", len(fr.Payload), err, len(b)-before)
				}
				continue
			}
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			n := len(fr.Payload)
			fb := b[before:]
			if len(fb) != FrameLen(n) || ne.Uint32(fb) != uint32(FrameHeaderLen+n) || ne.Uint16(fb[32:]) != uint16(n) {
				t.Fatalf("frame %d: %d bytes, nlmsg_len %d, cn len %d; want %d, %d, %d",
					i, len(fb), ne.Uint32(fb), ne.Uint16(fb[32:]), FrameLen(n), FrameHeaderLen+n, n)
			}
			if pad := fb[FrameHeaderLen+n:]; !bytes.Equal(pad, make([]byte, len(pad))) {
				t.Fatalf("frame %d: padding %x not zero", i, pad)
			}
			want = append(want, fr)
		}
		got, err := DecodeFrames(nil, b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		checkFrames(t, got, want)
	})
}

// scannerSeeds is the FuzzScanner seed corpus, by file name: the real
// kernel captures, alone and batched; every datagram of the decode table;
// and random multi-frame datagrams from fixed seeds.
func scannerSeeds(t *testing.T) map[string][]byte {
	seeds := map[string][]byte{}
	caps, err := filepath.Glob(filepath.Join("testdata", "kernel", "*.bin"))
	if err != nil || len(caps) == 0 {
		t.Fatalf("no kernel captures in testdata/kernel (err %v)", err)
	}
	var batch []byte
	for _, p := range caps {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds["seed-kernel-"+strings.TrimSuffix(filepath.Base(p), ".bin")] = b
		batch = append(batch, b...)
	}
	seeds["seed-kernel-batched"] = batch
	for _, c := range decodeCases(t) {
		name := "seed-table-" + slug(c.name)
		if _, dup := seeds[name]; dup {
			t.Fatalf("two decode cases map to seed file %s", name)
		}
		seeds[name] = c.data
	}
	for seed := uint64(1); seed <= 3; seed++ {
		r := rand.New(rand.NewPCG(seed, seed))
		var b []byte
		for range 2 + r.IntN(10) {
			b = mustAppend(t, b, randFrame(r, r.IntN(100)))
		}
		seeds[fmt.Sprintf("seed-random-%d", seed)] = b
	}
	return seeds
}

func slug(s string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, s), "-")
}

// corpusFile is the `go test fuzz v1` encoding of one []byte input.
func corpusFile(b []byte) []byte { return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b) }

// TestFuzzScannerSeedCorpus keeps the committed seed corpus in step with
// the shapes it is built from. Regenerate with
// CNLINK_UPDATE_CORPUS=1 go test -run TestFuzzScannerSeedCorpus ./transport/.
// Files not named seed-* (inputs the fuzzer found) are left alone.
func TestFuzzScannerSeedCorpus(t *testing.T) {
	if bigEndianHost() {
		t.Skip("the corpus holds little-endian datagrams")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzScanner")
	seeds := scannerSeeds(t)
	update := os.Getenv("CNLINK_UPDATE_CORPUS") == "1"
	if update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	for _, p := range old {
		if _, ok := seeds[filepath.Base(p)]; ok {
			continue
		}
		if !update {
			t.Errorf("%s is no longer generated; rerun with CNLINK_UPDATE_CORPUS=1", p)
		} else if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range seeds {
		p := filepath.Join(dir, name)
		want := corpusFile(b)
		if update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (err %v); rerun with CNLINK_UPDATE_CORPUS=1", p, err)
		}
	}
}
