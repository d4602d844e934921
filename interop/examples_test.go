package interop

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The C peer's encoder and the worked examples of docs/PROTOCOL.md §14
// agree byte for byte (internal/wire's tests check the Go encoder against
// the same blocks): the document, the Go implementation and a peer written
// from the document build the same frames, CRCs included.
func TestProtocolExamplesC(t *testing.T) {
	if peerBin == "" {
		t.Skip(skipReason)
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the examples are little-endian")
	}
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	block := regexp.MustCompile("(?s)```text\n# example ([a-z]+):[^\n]*\n(.*?)```")
	for _, m := range block.FindAllStringSubmatch(string(doc), -1) {
		var b []byte
		for _, line := range strings.Split(m[2], "\n") {
			hexPart, _, _ := strings.Cut(line, "   ")
			f := strings.Fields(hexPart)
			if len(f) == 0 {
				continue
			}
			if off, err := strconv.ParseUint(f[0], 16, 32); err != nil || int(off) != len(b) {
				t.Fatalf("example %s: bad line %q", m[1], line)
			}
			for _, h := range f[1:] {
				v, err := strconv.ParseUint(h, 16, 8)
				if err != nil {
					t.Fatalf("example %s: %v", m[1], err)
				}
				b = append(b, byte(v))
			}
		}
		want[m[1]] = b
	}
	if len(want) < 9 {
		t.Fatalf("found %d examples in PROTOCOL.md §14, want 9", len(want))
	}
	out, err := exec.Command(peerBin, "-examples").Output()
	if err != nil {
		t.Fatalf("cpeer -examples: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, hx, _ := strings.Cut(line, " ")
		got, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatalf("cpeer -examples: %q: %v", line, err)
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("cpeer encodes an example %q that PROTOCOL.md does not have", name)
			continue
		}
		seen++
		if !bytes.Equal(got, w) {
			t.Errorf("example %s: the C peer encodes\n%x\nPROTOCOL.md says\n%x", name, got, w)
		}
	}
	if seen != len(want) {
		t.Errorf("the C peer encoded %d of the %d examples", seen, len(want))
	}
}
