package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/cnlink/cnlink/transport"
)

// The DATA example of docs/PROTOCOL.md §14.3, byte for byte, with the CRC computed independently of the encoder.
func TestProtocolExample(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the documented example is little-endian")
	}
	f := Frame{ID: transport.CbID{Idx: 0x434e4c4b, Val: 1}, Seq: 0x01020304, Ack: 0xAABBCCDD, Port: 0x99, Type: TypeData}
	b, err := Append(nil, &f, nil, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x35, 0, 0, 0, 3, 0, 0, 0, 4, 3, 2, 1, 0x99, 0, 0, 0,
		0x4b, 0x4c, 0x4e, 0x43, 1, 0, 0, 0, 4, 3, 2, 1, 0xdd, 0xcc, 0xbb, 0xaa,
		0x11, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		'h', 'e', 'l', 'l', 'o', 0, 0, 0,
	}
	// The CRC as PROTOCOL.md defines it: CRC-32C over [16, 53) with the
	// CRC bytes zero.
	crc := crc32.Checksum(want[16:53], crc32.MakeTable(crc32.Castagnoli))
	binary.LittleEndian.PutUint32(want[40:], crc)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded\n%x\nwant\n%x", b, want)
	}
	if crc32.Checksum([]byte("123456789"), castagnoli) != 0xE3069283 {
		t.Fatal("not CRC-32C")
	}
}

func parseOne(t *testing.T, b []byte) (Parsed, error) {
	t.Helper()
	var r Reader
	r.Reset(b)
	if !r.Next() {
		t.Fatalf("reader: %v", r.Err())
	}
	f, err := r.Frame()
	return *f, err
}

func TestRoundTripAndCorruption(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0))
			for range 200 {
				f := Frame{ID: transport.CbID{Idx: r.Uint32(), Val: r.Uint32()}, Seq: r.Uint32(), Ack: r.Uint32(),
					Type: Type(1 + r.IntN(7)), Flags: uint16(r.Uint32()), Arg: r.Uint32()}
				a := Ack{Limit: r.Uint32(), Dup: r.Uint32()}
				for range r.IntN(MaxRanges + 1) {
					a.Ranges = append(a.Ranges, Range{r.Uint32(), r.Uint32()})
				}
				body := AppendAck(nil, &a)
				payload := make([]byte, r.IntN(3000))
				for i := range payload {
					payload[i] = byte(r.Uint32())
				}
				b, err := Append(nil, &f, body, payload)
				if err != nil {
					t.Fatal(err)
				}
				p, err := parseOne(t, b)
				if err != nil {
					t.Fatal(err)
				}
				if p.ID != f.ID || p.Seq != f.Seq || p.Ack != f.Ack || p.Header.Type != f.Type || p.Header.Flags != f.Flags || p.Header.Arg != f.Arg {
					t.Fatalf("header mismatch %+v vs %+v", p, f)
				}
				var got Ack
				if err := ParseAck(p.Body[:len(body)], &got); err != nil || got.Limit != a.Limit || len(got.Ranges) != len(a.Ranges) {
					t.Fatalf("ack body: %v %+v", err, got)
				}
				if !bytes.Equal(p.Body[len(body):], payload) {
					t.Fatal("payload mismatch")
				}
				// Any single bit flip past the nlmsghdr is caught.
				i := 16 + r.IntN(len(b)-16)
				if i >= 36+12+len(body)+len(payload) {
					continue // padding
				}
				b[i] ^= 1 << r.IntN(8)
				var r Reader
				r.Reset(b)
				if r.Next() {
					if _, err := r.Frame(); err == nil {
						t.Fatalf("bit flip at %d not detected", i)
					}
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	f := Frame{Type: TypePing}
	b, _ := Append(nil, &f, nil, nil)
	b[36] = 2 // version
	if _, err := parseOne(t, b); !errors.Is(err, ErrVersion) {
		t.Fatalf("version: %v", err)
	}
	b, _ = Append(nil, &f, nil, nil)
	binary.NativeEndian.PutUint16(b[4:], 2) // NLMSG_ERROR
	if _, err := parseOne(t, b); !errors.Is(err, ErrNotConnector) {
		t.Fatalf("type: %v", err)
	}
	if _, err := ParseSyn(make([]byte, SynLen-1)); !errors.Is(err, ErrBody) {
		t.Fatal(err)
	}
	var a Ack
	bad := AppendAck(nil, &Ack{Ranges: []Range{{1, 2}}})
	binary.NativeEndian.PutUint16(bad[8:], 5)
	if err := ParseAck(bad, &a); !errors.Is(err, ErrBody) {
		t.Fatal(err)
	}
	binary.NativeEndian.PutUint16(bad[8:], MaxRanges+1)
	if err := ParseAck(append(bad, make([]byte, 8*MaxRanges)...), &a); !errors.Is(err, ErrBody) {
		t.Fatal(err)
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 1<<16)
	f := Frame{Type: TypeData}
	payload := make([]byte, 256)
	n := testing.AllocsPerRun(100, func() {
		buf, _ = Append(buf[:0], &f, nil, payload)
	})
	if n != 0 {
		t.Fatalf("%v allocs per Append", n)
	}
}

// FuzzParse feeds arbitrary datagrams through the scanner and the cnlink
// decoder: no panic, and whatever parses re-encodes to the same frame;
// the bodies of SYN, SYNACK, ACK, HEARTBEAT and NAK frames re-encode to
// the bytes they were decoded from (checkBody, multicast_test.go). Each
// datagram is decoded as it is and again with every frame's CRC made
// right (sealed), so that mutations reach the headers and bodies instead
// of all failing the checksum.
func FuzzParse(f *testing.F) {
	for _, typ := range []Type{TypeSyn, TypeSynAck, TypeData, TypeReply, TypeAck, TypePing, TypeRst,
		TypeMData, TypeHeartbeat, TypeNak, TypeStatus, TypeEvict} {
		var body []byte
		switch typ {
		case TypeSyn, TypeSynAck:
			body = AppendSyn(nil, Syn{1, 2, 3, 4, 5})
		case TypeAck:
			body = AppendAck(nil, &Ack{Limit: 9, Ranges: []Range{{3, 4}, {6, 7}}})
		case TypeHeartbeat:
			body = AppendHeartbeat(nil, Heartbeat{4096, 16384, 65536, 500000})
		case TypeNak:
			body = AppendNak(nil, []Range{{3, 4}, {6, 7}})
		}
		b, _ := Append(nil, &Frame{ID: transport.CbID{Idx: 1, Val: 2}, Seq: 3, Ack: 4, Type: typ}, body, []byte("payload"))
		f.Add(b)
		f.Add(append(b, b...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		fuzzDatagram(t, b)
		if !bytes.Equal(b, orig) {
			t.Fatal("the Reader wrote to the datagram")
		}
		sealed := bytes.Clone(b)
		sc := transport.NewScanner(sealed)
		for {
			off := sc.Offset()
			if !sc.Next() {
				break
			}
			if len(sc.Frame().Payload) >= HeaderLen {
				Seal(sealed[off:])
			}
		}
		fuzzDatagram(t, sealed)
	})
}

func fuzzDatagram(t *testing.T, b []byte) {
	var r Reader
	r.Reset(b)
	s := transport.NewScanner(b) // in step with r, for the nlmsg_pid
	for r.Next() {
		s.Next()
		pp, err := r.Frame()
		if err != nil {
			continue
		}
		p := *pp
		checkBody(t, &p) // decodes the body its type says, and re-encodes it
		re, err := Append(nil, &Frame{ID: p.ID, Seq: p.Seq, Ack: p.Ack, Port: s.Frame().NlPID, Type: p.Header.Type, Flags: p.Header.Flags, Arg: p.Header.Arg}, nil, p.Body)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parseOne(t, re)
		// The CRC also covers cn_msg.flags, which Append writes as 0.
		q.Header.CRC, p.Header.CRC = 0, 0
		if err != nil || q.Header != p.Header || !bytes.Equal(q.Body, p.Body) {
			t.Fatalf("re-encode differs: %v", err)
		}
	}
}
