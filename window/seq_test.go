package window

import (
	"math"
	"testing"
)

func TestSeqCompare(t *testing.T) {
	// RFC 1982 section 3.2: "s1 is said to be less than s2 if, and only if,
	// s1 is not equal to s2, and (i1 < i2 and i2 - i1 < 2^(SERIAL_BITS - 1))
	// or (i1 > i2 and i1 - i2 > 2^(SERIAL_BITS - 1))".
	tests := []struct {
		a, b   Seq
		less   bool
		lessEq bool
		sub    int // a - b
		desc   string
	}{
		{0, 1, true, true, -1, "plain"},
		{1, 0, false, false, 1, "plain reversed"},
		{5, 5, false, true, 0, "equal"},
		{0xFFFFFFFF, 0, true, true, -1, "across 2^32"},
		{0, 0xFFFFFFFF, false, false, 1, "across 2^32 reversed"},
		{0xFFFFFFF0, 0x10, true, true, -0x20, "window across 2^32"},
		{0x10, 0xFFFFFFF0, false, false, 0x20, "window across 2^32 reversed"},
		{0, 0x7FFFFFFF, true, true, -0x7FFFFFFF, "just under half the space"},
		{0x7FFFFFFF, 0, false, false, 0x7FFFFFFF, "just under half the space reversed"},
		{0, 0x80000001, false, false, 0x7FFFFFFF, "just over half the space: wraps"},
		// Exactly 2^31 apart is undefined in RFC 1982; Seq picks
		// int32(a-b) < 0, which makes the pair strictly ordered one way.
		{0x80000000, 0, true, true, math.MinInt32, "half the space"},
		{0, 0x80000000, true, true, math.MinInt32, "half the space, other way"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := tt.a.Less(tt.b); got != tt.less {
				t.Errorf("%#x.Less(%#x) = %v, want %v", uint32(tt.a), uint32(tt.b), got, tt.less)
			}
			if got := tt.a.LessEq(tt.b); got != tt.lessEq {
				t.Errorf("%#x.LessEq(%#x) = %v, want %v", uint32(tt.a), uint32(tt.b), got, tt.lessEq)
			}
			if got := tt.a.Sub(tt.b); got != tt.sub {
				t.Errorf("%#x.Sub(%#x) = %d, want %d", uint32(tt.a), uint32(tt.b), got, tt.sub)
			}
		})
	}
}

func TestSeqAdd(t *testing.T) {
	tests := []struct {
		a    Seq
		n    int
		want Seq
	}{
		{0, 1, 1},
		{0xFFFFFFFF, 1, 0},
		{0xFFFFFFF0, 0x20, 0x10},
		{0x10, -0x20, 0xFFFFFFF0},
		{0, -1, 0xFFFFFFFF},
		{7, 0, 7},
	}
	for _, tt := range tests {
		if got := tt.a.Add(tt.n); got != tt.want {
			t.Errorf("%#x.Add(%d) = %#x, want %#x", uint32(tt.a), tt.n, uint32(got), uint32(tt.want))
		}
		if tt.n != 0 && tt.want.Sub(tt.a) != tt.n {
			t.Errorf("%#x.Sub(%#x) = %d, want %d", uint32(tt.want), uint32(tt.a), tt.want.Sub(tt.a), tt.n)
		}
	}
}

func TestRange(t *testing.T) {
	tests := []struct {
		r       Range
		n       int
		in, out []Seq
	}{
		{Range{5, 5}, 1, []Seq{5}, []Seq{4, 6}},
		{Range{0xFFFFFFFE, 1}, 4, []Seq{0xFFFFFFFE, 0xFFFFFFFF, 0, 1}, []Seq{0xFFFFFFFD, 2}},
		{Range{6, 5}, 0, nil, []Seq{5, 6}}, // malformed
	}
	for _, tt := range tests {
		if got := tt.r.Len(); got != tt.n {
			t.Errorf("%v.Len() = %d, want %d", tt.r, got, tt.n)
		}
		for _, s := range tt.in {
			if !tt.r.Contains(s) {
				t.Errorf("%v.Contains(%#x) = false", tt.r, uint32(s))
			}
		}
		for _, s := range tt.out {
			if tt.r.Contains(s) {
				t.Errorf("%v.Contains(%#x) = true", tt.r, uint32(s))
			}
		}
	}
}

func TestRandomSeqVaries(t *testing.T) {
	seen := map[Seq]bool{}
	for range 16 {
		seen[RandomSeq()] = true
	}
	if len(seen) < 8 {
		t.Errorf("16 random initial numbers gave only %d distinct values", len(seen))
	}
}
