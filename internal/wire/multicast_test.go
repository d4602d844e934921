package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cnlink/cnlink/transport"
)

// The multicast bodies and frames of docs/PROTOCOL.md §16 survive a round
// trip through Append and the Reader, flags, arg and body included.
func TestMulticastRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 16))
	for i := range 500 {
		f := Frame{ID: transport.CbID{Idx: r.Uint32(), Val: r.Uint32()}, Seq: r.Uint32(), Ack: r.Uint32(),
			Port: r.Uint32(), Type: TypeMData + Type(r.IntN(5)), Flags: uint16(r.Uint32()), Arg: r.Uint32()}
		var body []byte
		var ranges []Range
		var hb Heartbeat
		switch f.Type {
		case TypeHeartbeat:
			hb = Heartbeat{Window: r.Uint32(), MaxMessage: r.Uint32(), MaxDatagram: r.Uint32(), Keepalive: r.Uint32()}
			body = AppendHeartbeat(nil, hb)
			if len(body) != HeartbeatLen {
				t.Fatalf("heartbeat body is %d bytes", len(body))
			}
		case TypeNak:
			for range r.IntN(MaxRanges + 1) {
				ranges = append(ranges, Range{r.Uint32(), r.Uint32()})
			}
			body = AppendNak(nil, ranges)
			if len(body) != NakFixedLen+len(ranges)*RangeLen {
				t.Fatalf("nak body of %d ranges is %d bytes", len(ranges), len(body))
			}
		}
		var payload []byte
		if f.Type == TypeMData {
			payload = make([]byte, r.IntN(2000))
			for j := range payload {
				payload[j] = byte(r.Uint32())
			}
		}
		b, err := Append(nil, &f, body, payload)
		if err != nil {
			t.Fatal(err)
		}
		p, err := parseOne(t, b)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if p.ID != f.ID || p.Seq != f.Seq || p.Ack != f.Ack || p.Header.Type != f.Type || p.Header.Flags != f.Flags || p.Header.Arg != f.Arg {
			t.Fatalf("%d: decoded %+v, encoded %+v", i, p, f)
		}
		if !bytes.Equal(p.Body, append(body, payload...)) {
			t.Fatalf("%d: %v body %x, want %x", i, f.Type, p.Body, append(body, payload...))
		}
		switch f.Type {
		case TypeHeartbeat:
			got, err := ParseHeartbeat(p.Body)
			if err != nil || got != hb {
				t.Fatalf("%d: heartbeat %+v, %v; want %+v", i, got, err, hb)
			}
		case TypeNak:
			got, err := ParseNak(p.Body, nil)
			if err != nil || !slices.Equal(got, ranges) {
				t.Fatalf("%d: nak %v, %v; want %v", i, got, err, ranges)
			}
		}
	}
}

// The bodies' layout is the one §16.2 gives: fields at their offsets, in
// native byte order, the Nak's reserved bytes zero.
func TestMulticastBodyLayout(t *testing.T) {
	hb := AppendHeartbeat([]byte{0xee}, Heartbeat{Window: 0x01020304, MaxMessage: 0x05060708, MaxDatagram: 0x090a0b0c, Keepalive: 0x0d0e0f10})
	want := []byte{0xee}
	want = ne.AppendUint32(want, 0x01020304)
	want = ne.AppendUint32(want, 0x05060708)
	want = ne.AppendUint32(want, 0x090a0b0c)
	want = ne.AppendUint32(want, 0x0d0e0f10)
	if !bytes.Equal(hb, want) {
		t.Errorf("heartbeat %x, want %x (appended after the existing byte)", hb, want)
	}
	nak := AppendNak([]byte{0xee}, []Range{{1, 2}, {0xfffffffe, 0xffffffff}})
	want = []byte{0xee}
	want = ne.AppendUint16(want, 2)
	want = append(want, 0, 0)
	for _, v := range []uint32{1, 2, 0xfffffffe, 0xffffffff} {
		want = ne.AppendUint32(want, v)
	}
	if !bytes.Equal(nak, want) {
		t.Errorf("nak %x, want %x", nak, want)
	}
	if b := AppendNak(nil, nil); !bytes.Equal(b, []byte{0, 0, 0, 0}) {
		t.Errorf("empty nak %x", b)
	}
}

// AppendNak writes at most MaxRanges ranges, the first ones, and says so
// in its count.
func TestAppendNakTruncates(t *testing.T) {
	var rs []Range
	for i := range MaxRanges + 5 {
		rs = append(rs, Range{uint32(2 * i), uint32(2*i + 1)})
	}
	b := AppendNak(nil, rs)
	if len(b) != NakFixedLen+MaxRanges*RangeLen {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := ParseNak(b, nil)
	if err != nil || !slices.Equal(got, rs[:MaxRanges]) {
		t.Fatalf("got %v, %v", got, err)
	}
	// The largest Nak fits a control frame.
	if _, err := Append(nil, &Frame{Type: TypeNak}, b, nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseNak(t *testing.T) {
	two := AppendNak(nil, []Range{{10, 12}, {20, 20}})
	tests := []struct {
		name string
		body []byte
		want []Range // nil: ErrBody
	}{
		{"empty", []byte{}, nil},
		{"short fixed part", []byte{0, 0, 0}, nil},
		{"no ranges", []byte{0, 0, 0, 0}, []Range{}},
		{"two", two, []Range{{10, 12}, {20, 20}}},
		{"trailing bytes ignored", append(slices.Clone(two), 1, 2, 3, 4, 5, 6, 7, 8, 9), []Range{{10, 12}, {20, 20}}},
		{"reserved ignored", func() []byte { b := slices.Clone(two); b[2], b[3] = 0xff, 0xff; return b }(), []Range{{10, 12}, {20, 20}}},
		{"short by one byte", two[:len(two)-1], nil},
		{"short by one range", two[:len(two)-RangeLen], nil},
		{"count says 3", func() []byte { b := slices.Clone(two); ne.PutUint16(b, 3); return b }(), nil},
		{"count 32, body complete", countBody(MaxRanges, MaxRanges), make([]Range, MaxRanges)},
		{"count 33, body complete", countBody(MaxRanges+1, MaxRanges+1), nil},
		{"count 33, 32 ranges", countBody(MaxRanges+1, MaxRanges), nil},
		{"count 65535", countBody(0xffff, 0), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []Range{{7, 7}, {8, 8}, {9, 9}} // junk that must not show through
			got, err := ParseNak(tc.body, dst)
			if tc.want == nil {
				if !errors.Is(err, ErrBody) || len(got) != 0 {
					t.Fatalf("got %v, %v; want ErrBody and no ranges", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			if len(tc.want) > 0 && len(tc.want) <= cap(dst) && &got[0] != &dst[0] {
				t.Error("ParseNak did not reuse dst's storage")
			}
		})
	}
}

// countBody is a Nak body whose count field says n, followed by m zero
// ranges.
func countBody(n, m int) []byte {
	b := make([]byte, NakFixedLen+m*RangeLen)
	ne.PutUint16(b, uint16(n))
	return b
}

func TestParseHeartbeat(t *testing.T) {
	full := AppendHeartbeat(nil, Heartbeat{1, 2, 3, 4})
	for n := range HeartbeatLen {
		if _, err := ParseHeartbeat(full[:n]); !errors.Is(err, ErrBody) {
			t.Errorf("%d bytes: %v, want ErrBody", n, err)
		}
	}
	h, err := ParseHeartbeat(append(full, 0xff, 0xff, 0xff, 0xff))
	if err != nil || h != (Heartbeat{1, 2, 3, 4}) {
		t.Errorf("trailing bytes: %+v, %v", h, err)
	}
}

// ParseNak into storage that is large enough allocates nothing: the
// publisher parses every NAK it receives.
func TestParseNakAllocs(t *testing.T) {
	b := AppendNak(nil, make([]Range, MaxRanges))
	dst := make([]Range, 0, MaxRanges)
	n := testing.AllocsPerRun(100, func() {
		dst, _ = ParseNak(b, dst)
	})
	if n != 0 {
		t.Fatalf("%v allocs per ParseNak", n)
	}
}

func TestMulticastNames(t *testing.T) {
	for typ, name := range map[Type]string{TypeMData: "MDATA", TypeHeartbeat: "HEARTBEAT", TypeNak: "NAK", TypeStatus: "STATUS", TypeEvict: "EVICT", 13: "Type(13)"} {
		if typ.String() != name {
			t.Errorf("%d: %q, want %q", uint8(typ), typ.String(), name)
		}
	}
	// The values the document gives (§16.2).
	for _, c := range []struct {
		got, want uint32
		name      string
	}{
		{uint32(TypeMData), 8, "MDATA"}, {uint32(TypeHeartbeat), 9, "HEARTBEAT"}, {uint32(TypeNak), 10, "NAK"},
		{uint32(TypeStatus), 11, "STATUS"}, {uint32(TypeEvict), 12, "EVICT"},
		{uint32(FlagRepair), 0x10, "REPAIR"}, {uint32(FlagTail), 0x20, "TAIL"}, {uint32(FlagLeave), 0x40, "LEAVE"},
		{uint32(FlagFin), 0x2, "FIN"}, {uint32(FlagStatusReq), 0x4, "STATUS_REQ"},
		{EvictTimeout, 1, "evict timeout"}, {EvictLaggard, 2, "evict laggard"}, {EvictRefused, 3, "evict refused"}, {EvictClosing, 4, "evict aborted"},
		{HeartbeatLen, 16, "Heartbeat length"}, {NakFixedLen, 4, "Nak fixed length"},
	} {
		if c.got != c.want {
			t.Errorf("%s is %#x, the document says %#x", c.name, c.got, c.want)
		}
	}
	// No multicast flag collides with a session flag.
	all := []uint16{FlagRequest, FlagFin, FlagStatusReq, FlagDupValid, FlagRepair, FlagTail, FlagLeave}
	var seen uint16
	for _, f := range all {
		if f&seen != 0 || f == 0 || f&(f-1) != 0 {
			t.Errorf("flag %#x overlaps another or is not one bit", f)
		}
		seen |= f
	}
}

// FuzzMulticastBodies feeds arbitrary bytes to the body decoders: no
// panic; an error exactly when the document says the body is malformed;
// and re-encoding what was decoded gives back the bytes the decoder
// consumed (with the reserved fields, which receivers ignore, as zero).
func FuzzMulticastBodies(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendHeartbeat(nil, Heartbeat{4096, 16384, 65536, 500000}))
	f.Add(AppendNak(nil, []Range{{1, 2}, {5, 9}}))
	f.Add(AppendNak(nil, make([]Range, MaxRanges)))
	f.Add(countBody(MaxRanges+1, MaxRanges+1))
	f.Add(AppendAck(nil, &Ack{Limit: 9, Dup: 3, Ranges: []Range{{3, 4}}}))
	f.Add(AppendSyn(nil, Syn{1, 2, 3, 4, 5}))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		defer func() {
			if !bytes.Equal(b, orig) {
				t.Fatal("a decoder wrote to its input")
			}
		}()
		checkNakBody(t, b)
		checkHeartbeatBody(t, b)
		checkAckBody(t, b)
		checkSynBody(t, b)
	})
}

func checkNakBody(t *testing.T, b []byte) {
	dst := []Range{{0xdead, 0xbeef}}
	rs, err := ParseNak(b, dst)
	n := -1
	if len(b) >= NakFixedLen {
		n = int(binary.NativeEndian.Uint16(b))
	}
	if bad := n < 0 || n > MaxRanges || len(b) < NakFixedLen+n*RangeLen; bad != (err != nil) {
		t.Fatalf("nak %x: n %d, err %v", b, n, err)
	}
	if err != nil {
		if !errors.Is(err, ErrBody) || len(rs) != 0 {
			t.Fatalf("nak %x: %v with %d ranges", b, err, len(rs))
		}
		return
	}
	if len(rs) != n {
		t.Fatalf("nak %x: %d ranges, count %d", b, len(rs), n)
	}
	used := NakFixedLen + n*RangeLen
	want := bytes.Clone(b[:used])
	want[2], want[3] = 0, 0 // reserved
	if re := AppendNak(nil, rs); !bytes.Equal(re, want) {
		t.Fatalf("nak %x re-encodes to %x", b[:used], re)
	}
}

func checkHeartbeatBody(t *testing.T, b []byte) {
	h, err := ParseHeartbeat(b)
	if (len(b) < HeartbeatLen) != (err != nil) {
		t.Fatalf("heartbeat of %d bytes: %v", len(b), err)
	}
	if err != nil {
		if !errors.Is(err, ErrBody) {
			t.Fatal(err)
		}
		return
	}
	if re := AppendHeartbeat(nil, h); !bytes.Equal(re, b[:HeartbeatLen]) {
		t.Fatalf("heartbeat %x re-encodes to %x", b[:HeartbeatLen], re)
	}
}

func checkAckBody(t *testing.T, b []byte) {
	var a Ack
	if err := ParseAck(b, &a); err != nil {
		return
	}
	used := AckFixedLen + len(a.Ranges)*RangeLen
	want := bytes.Clone(b[:used])
	want[10], want[11] = 0, 0 // reserved
	if re := AppendAck(nil, &a); !bytes.Equal(re, want) {
		t.Fatalf("ack %x re-encodes to %x", b[:used], re)
	}
}

func checkSynBody(t *testing.T, b []byte) {
	s, err := ParseSyn(b)
	if err != nil {
		return
	}
	if re := AppendSyn(nil, s); !bytes.Equal(re, b[:SynLen]) {
		t.Fatalf("syn %x re-encodes to %x", b[:SynLen], re)
	}
}

// checkBody decodes the body of a parsed frame as its type says and
// checks the round trip; it is FuzzParse's view of the bodies.
func checkBody(t *testing.T, p *Parsed) {
	switch p.Header.Type {
	case TypeSyn, TypeSynAck:
		checkSynBody(t, p.Body)
	case TypeAck:
		checkAckBody(t, p.Body)
	case TypeNak:
		checkNakBody(t, p.Body)
	case TypeHeartbeat:
		checkHeartbeatBody(t, p.Body)
	}
}
