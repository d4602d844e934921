package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cnlink/cnlink/transport"
)

// A Reader yields every frame of a datagram in order; a frame that fails
// its CRC is reported and the next one still decodes; broken framing stops
// it with Err; it never writes to the datagram.
func TestReader(t *testing.T) {
	ch := transport.CbID{Idx: 9, Val: 9}
	var b []byte
	for i := range 3 {
		var err error
		if b, err = Append(b, &Frame{ID: ch, Seq: uint32(i), Ack: 7, Type: TypeData}, nil, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	second := transport.FrameLen(HeaderLen + 1)
	b[second+48] ^= 0xff // the payload of the second frame: its CRC fails
	b = append(b, 1, 2, 3)
	orig := bytes.Clone(b)
	var r Reader
	r.Reset(b)
	var got []error
	var seqs []uint32
	for r.Next() {
		f, err := r.Frame()
		got = append(got, err)
		if err == nil {
			seqs = append(seqs, f.Seq)
		}
	}
	if len(got) != 3 || got[0] != nil || !errors.Is(got[1], ErrChecksum) || got[2] != nil {
		t.Fatalf("frame errors %v, want nil, ErrChecksum, nil", got)
	}
	if len(seqs) != 2 || seqs[0] != 0 || seqs[1] != 2 {
		t.Fatalf("seqs %v, want [0 2]", seqs)
	}
	if !errors.Is(r.Err(), transport.ErrTrailingBytes) {
		t.Fatalf("Err = %v, want trailing bytes", r.Err())
	}
	if !bytes.Equal(b, orig) {
		t.Fatal("the Reader wrote to the datagram")
	}
}

// BenchmarkReader decodes a datagram of 200 DATA frames of 256 bytes, as a
// coalesced stream arrives.
func BenchmarkReader(b *testing.B) {
	var d []byte
	payload := make([]byte, 256)
	for i := range 200 {
		d, _ = Append(d, &Frame{ID: transport.CbID{Idx: 1, Val: 1}, Seq: uint32(i), Type: TypeData}, nil, payload)
	}
	b.SetBytes(int64(len(d)))
	var r Reader
	for b.Loop() {
		r.Reset(d)
		for r.Next() {
			if _, err := r.Frame(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
