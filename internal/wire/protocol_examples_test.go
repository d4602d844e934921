package wire

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cnlink/cnlink/transport"
)

// The worked examples of docs/PROTOCOL.md §14 (sessions) and §16.10
// (multicast streams), checked byte for byte against the encoder and read
// back by the decoder. The hex blocks in the document are generated from
// this table: after changing an example, run
//
//	go test ./internal/wire -run TestProtocolExamples -update-examples
//
// and review the document's diff.
var updateExamples = flag.Bool("update-examples", false, "rewrite the example blocks of docs/PROTOCOL.md")

const protocolDoc = "../../docs/PROTOCOL.md"

type protocolExample struct {
	name    string
	frame   Frame
	body    []byte // Syn, Ack, Heartbeat or Nak body
	payload []byte
}

// multicast reports whether x is one of §16's examples. Their blocks are
// titled "# multicast example NAME:" instead of "# example NAME:", so that
// interop's TestProtocolExamplesC, which checks every "# example" block
// against the C peer's encoder, does not ask the C peer (which speaks
// sessions only) for them.
func (x protocolExample) multicast() bool { return x.frame.Type >= TypeMData }

func (x protocolExample) title() string {
	if x.multicast() {
		return "multicast example " + x.name
	}
	return "example " + x.name
}

var exampleCh = transport.CbID{Idx: 0x434e4c4b, Val: 1}

// streamCh is the channel of the multicast examples: the Go default for
// streams (multicast.DefaultChannel, repeated here: that package imports
// this one).
var streamCh = transport.CbID{Idx: 0x434e4c4b, Val: 2}

// The session of the examples: the dialer's epoch E = 0xAABBCCDD and ISN
// I = 0x01020304; the acceptor's epoch P = 0x11223344 and ISN Q =
// 0x55667788; the dialer is port 0x1234, the acceptor 0x5678.
func protocolExamples() []protocolExample {
	const (
		E, I = 0xAABBCCDD, 0x01020304
		P, Q = 0x11223344, 0x55667788
	)
	return []protocolExample{
		{name: "syn",
			frame: Frame{ID: exampleCh, Seq: I, Ack: E, Port: 0x1234, Type: TypeSyn},
			body:  AppendSyn(nil, Syn{Epoch: E, ISN: I, Window: 4096, MaxMessage: 16384, MaxDatagram: 65536})},
		{name: "synack",
			frame: Frame{ID: exampleCh, Seq: I, Ack: E + 1, Port: 0x5678, Type: TypeSynAck},
			body:  AppendSyn(nil, Syn{Epoch: P, ISN: Q, Window: 1024, MaxMessage: 4096, MaxDatagram: 8192})},
		{name: "data",
			frame:   Frame{ID: exampleCh, Seq: I, Ack: E, Port: 0x1234, Type: TypeData},
			payload: []byte("hello")},
		{name: "request",
			frame:   Frame{ID: exampleCh, Seq: I + 1, Ack: E, Port: 0x1234, Type: TypeData, Flags: FlagRequest},
			payload: []byte("time?")},
		{name: "reply",
			frame:   Frame{ID: exampleCh, Seq: I + 1, Ack: E + 1, Port: 0x5678, Type: TypeReply, Arg: Q},
			payload: []byte("noon")},
		{name: "ack",
			frame: Frame{ID: exampleCh, Seq: I + 4, Ack: E + 1, Port: 0x5678, Type: TypeAck, Flags: FlagDupValid, Arg: I + 2},
			body:  AppendAck(nil, &Ack{Limit: I + 2 + 1024, Dup: I + 1, Ranges: []Range{{Start: I + 4, End: I + 4}}})},
		{name: "ping",
			frame: Frame{ID: exampleCh, Seq: I + 5, Ack: E, Port: 0x1234, Type: TypePing, Flags: FlagStatusReq}},
		{name: "fin",
			frame: Frame{ID: exampleCh, Seq: I + 5, Ack: E, Port: 0x1234, Type: TypeData, Flags: FlagFin}},
		{name: "rst",
			frame: Frame{ID: exampleCh, Seq: Q, Ack: P + 1, Port: 0x1234, Type: TypeRst, Arg: RstAbort}},
	}
}

// The stream of the multicast examples (§16.10): the publisher (port
// 0x1234) has epoch E = 0xAABBCCDD, retains MSNs from O = 0x01020300 and
// has sent up to 0x01020307 (N = 0x01020308); the subscriber is port
// 0x5678.
func multicastExamples() []protocolExample {
	const (
		E    = 0xAABBCCDD
		O, N = 0x01020300, 0x01020308
		pub  = 0x1234
		sub  = 0x5678
	)
	return []protocolExample{
		{name: "mdata",
			frame:   Frame{ID: streamCh, Seq: O + 5, Ack: E, Port: pub, Type: TypeMData, Arg: O},
			payload: []byte("hello")},
		{name: "heartbeat",
			frame: Frame{ID: streamCh, Seq: N, Ack: E, Port: pub, Type: TypeHeartbeat, Flags: FlagFin, Arg: O},
			body:  AppendHeartbeat(nil, Heartbeat{Window: 4096, MaxMessage: 16384, MaxDatagram: 65536, Keepalive: 500000})},
		{name: "nak",
			frame: Frame{ID: streamCh, Seq: O + 1, Ack: E + 1, Port: sub, Type: TypeNak, Flags: FlagTail, Arg: O + 6},
			body:  AppendNak(nil, []Range{{Start: O + 1, End: O + 1}, {Start: O + 3, End: O + 4}})},
		{name: "status",
			frame: Frame{ID: streamCh, Seq: O + 6, Ack: E + 1, Port: sub, Type: TypeStatus, Arg: 1024}},
		{name: "evict",
			frame: Frame{ID: streamCh, Seq: O + 6, Ack: E, Port: pub, Type: TypeEvict, Arg: EvictLaggard}},
	}
}

func (x protocolExample) encode(t *testing.T) []byte {
	b, err := Append(nil, &x.frame, x.body, x.payload)
	if err != nil {
		t.Fatalf("%s: %v", x.name, err)
	}
	return b
}

// exampleBlock formats b as the document shows it: 16 bytes a line, each
// line annotated with what its bytes hold, then the CRC.
func exampleBlock(title string, b []byte) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s: %d bytes, crc 0x%08X\n", title, len(b), binary.NativeEndian.Uint32(b[40:]))
	notes := []string{
		"nlmsghdr: len, type, flags, seq, pid",
		"cn_msg: id.idx, id.val, seq, ack",
		"cn_msg len, flags; version, type, flags; crc; arg",
	}
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		hex := make([]string, len(line))
		for i, c := range line {
			hex[i] = fmt.Sprintf("%02x", c)
		}
		note := "body"
		if off/16 < len(notes) {
			note = notes[off/16]
		}
		fmt.Fprintf(&sb, "%04x  %-47s   %s\n", off, strings.Join(hex, " "), note)
	}
	return sb.String()
}

// blockRE matches an example block; group 1 is "multicast " for §16's.
var blockRE = regexp.MustCompile("(?s)```text\n# (multicast )?example ([a-z]+):[^\n]*\n.*?```")

// parseBlock reads the bytes back from a block of the document.
func parseBlock(block string) ([]byte, error) {
	var out []byte
	for _, line := range strings.Split(block, "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "```") {
			continue
		}
		hexPart, _, _ := strings.Cut(line, "   ")
		fields := strings.Fields(hexPart)
		if len(fields) == 0 {
			continue
		}
		off, err := strconv.ParseUint(fields[0], 16, 32)
		if err != nil || int(off) != len(out) {
			return nil, fmt.Errorf("line %q: offset %s, want %04x", line, fields[0], len(out))
		}
		for _, h := range fields[1:] {
			v, err := strconv.ParseUint(h, 16, 8)
			if err != nil {
				return nil, fmt.Errorf("line %q: %v", line, err)
			}
			out = append(out, byte(v))
		}
	}
	return out, nil
}

func TestProtocolExamples(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the examples are little-endian")
	}
	doc, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	titles := map[string]string{}
	for _, x := range append(protocolExamples(), multicastExamples()...) {
		if _, dup := want[x.name]; dup {
			t.Fatalf("two examples are named %q", x.name)
		}
		b := x.encode(t)
		want[x.name] = b
		titles[x.name] = x.title()
		checkDecode(t, x, b)
		// The CRC as §1.1 defines it, computed without the encoder:
		// CRC-32C over [16, 36 + cn_msg.len) with the CRC bytes zero.
		c := append([]byte(nil), b[16:36+int(binary.NativeEndian.Uint16(b[32:]))]...)
		clear(c[40-16 : 44-16])
		if got, w := binary.NativeEndian.Uint32(b[40:]), crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli)); got != w {
			t.Errorf("%s: crc %#x, §1.1 gives %#x", x.name, got, w)
		}
	}
	if *updateExamples {
		out := blockRE.ReplaceAllStringFunc(string(doc), func(block string) string {
			name := blockRE.FindStringSubmatch(block)[2]
			b, ok := want[name]
			if !ok {
				t.Errorf("the document has an example %q the table does not", name)
				return block
			}
			return "```text\n" + exampleBlock(titles[name], b) + "```"
		})
		if err := os.WriteFile(protocolDoc, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		doc = []byte(out)
	}
	seen := map[string]bool{}
	for _, m := range blockRE.FindAllStringSubmatch(string(doc), -1) {
		name := m[2]
		if seen[name] {
			t.Errorf("the document has two examples %q", name)
		}
		seen[name] = true
		got, err := parseBlock(m[0])
		if err != nil {
			t.Errorf("example %s: %v", name, err)
			continue
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("the document has an example %q the table does not", name)
			continue
		}
		if title := titles[name]; !strings.HasPrefix(m[0], "```text\n# "+title+":") {
			t.Errorf("example %s: its block's title must start %q", name, "# "+title+":")
		}
		if !bytes.Equal(got, w) {
			t.Errorf("example %s: the document says\n%s\nthe encoder makes\n%s(run with -update-examples to rewrite the document)", name, exampleBlock(titles[name], got), exampleBlock(titles[name], w))
		}
		if !strings.Contains(m[0], fmt.Sprintf("crc 0x%08X", binary.NativeEndian.Uint32(w[40:]))) {
			t.Errorf("example %s: the CRC in its title is not the frame's", name)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("example %q is missing from %s (add a block \"```text\\n# %s:\\n```\" and run with -update-examples)", name, protocolDoc, titles[name])
		}
	}
}

// checkDecode reads an example back as a receiver would.
func checkDecode(t *testing.T, x protocolExample, b []byte) {
	t.Helper()
	sc := transport.NewScanner(b)
	if !sc.Next() {
		t.Fatalf("%s: the scanner reads no frame: %v", x.name, sc.Err())
	}
	tf := sc.Frame()
	if tf.NlSeq != x.frame.Seq || tf.NlPID != x.frame.Port || tf.NlType != transport.NlmsgDone {
		t.Errorf("%s: nlmsghdr seq %#x pid %#x type %d", x.name, tf.NlSeq, tf.NlPID, tf.NlType)
	}
	var r Reader
	r.Reset(b)
	if !r.Next() {
		t.Fatalf("%s: the Reader reads no frame: %v", x.name, r.Err())
	}
	p, err := r.Frame()
	if err != nil {
		t.Fatalf("%s: %v", x.name, err)
	}
	f := x.frame
	if p.ID != f.ID || p.Seq != f.Seq || p.Ack != f.Ack || p.Header.Type != f.Type || p.Header.Flags != f.Flags || p.Header.Arg != f.Arg {
		t.Errorf("%s: decoded %+v, encoded %+v", x.name, p, f)
	}
	if !bytes.Equal(p.Body, append(append([]byte(nil), x.body...), x.payload...)) {
		t.Errorf("%s: body %x", x.name, p.Body)
	}
	// The body decodes as its type says and re-encodes to the same bytes.
	switch f.Type {
	case TypeSyn, TypeSynAck:
		s, err := ParseSyn(p.Body)
		if err != nil || !bytes.Equal(AppendSyn(nil, s), x.body) {
			t.Errorf("%s: Syn body %+v, %v", x.name, s, err)
		}
	case TypeAck:
		var a Ack
		if err := ParseAck(p.Body, &a); err != nil || !bytes.Equal(AppendAck(nil, &a), x.body) {
			t.Errorf("%s: Ack body %+v, %v", x.name, a, err)
		}
	case TypeHeartbeat:
		h, err := ParseHeartbeat(p.Body)
		if err != nil || !bytes.Equal(AppendHeartbeat(nil, h), x.body) {
			t.Errorf("%s: Heartbeat body %+v, %v", x.name, h, err)
		}
	case TypeNak:
		rs, err := ParseNak(p.Body, nil)
		if err != nil || !bytes.Equal(AppendNak(nil, rs), x.body) {
			t.Errorf("%s: Nak body %v, %v", x.name, rs, err)
		}
	}
	if sc.Next() || sc.Err() != nil || r.Next() || r.Err() != nil {
		t.Errorf("%s: more after the frame: %v", x.name, sc.Err())
	}
}
