package window

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func rangesOf(s *RangeSet) []Range {
	var out []Range
	for i := range s.Len() {
		out = append(out, s.At(i))
	}
	return out
}

func TestRangeSetAdd(t *testing.T) {
	const w = 0xFFFFFFF0 // near 2^32: every case also runs shifted across it
	tests := []struct {
		name string
		max  int
		add  []Range
		want []Range
	}{
		{"empty", 4, nil, nil},
		{"one", 4, []Range{{1, 1}}, []Range{{1, 1}}},
		{"adjacent above merges", 4, []Range{{1, 2}, {3, 4}}, []Range{{1, 4}}},
		{"adjacent below merges", 4, []Range{{3, 4}, {1, 2}}, []Range{{1, 4}}},
		{"gap stays", 4, []Range{{1, 2}, {4, 5}}, []Range{{1, 2}, {4, 5}}},
		{"insert between", 4, []Range{{1, 1}, {9, 9}, {5, 5}}, []Range{{1, 1}, {5, 5}, {9, 9}}},
		{"fill a hole joins both", 4, []Range{{1, 2}, {4, 5}, {3, 3}}, []Range{{1, 5}}},
		{"span several", 4, []Range{{1, 1}, {3, 3}, {5, 5}, {7, 7}, {2, 6}}, []Range{{1, 7}}},
		{"inside existing", 4, []Range{{1, 9}, {3, 4}}, []Range{{1, 9}}},
		{"overlap lower end", 4, []Range{{5, 9}, {3, 6}}, []Range{{3, 9}}},
		{"overlap upper end", 4, []Range{{1, 4}, {8, 9}, {3, 6}}, []Range{{1, 6}, {8, 9}}},
		{"duplicate", 4, []Range{{1, 1}, {1, 1}}, []Range{{1, 1}}},
		{"malformed ignored", 4, []Range{{5, 4}}, nil},
		{"cap drops lowest", 2, []Range{{1, 1}, {3, 3}, {5, 5}}, []Range{{3, 3}, {5, 5}}},
		{"cap drops lowest when inserting low", 2, []Range{{3, 3}, {5, 5}, {1, 1}}, []Range{{3, 3}, {5, 5}}},
		{"merge under cap keeps all", 2, []Range{{1, 1}, {3, 3}, {2, 2}, {5, 5}}, []Range{{1, 3}, {5, 5}}},
	}
	for _, tt := range tests {
		for _, shift := range []Seq{0, w} {
			t.Run(fmt.Sprintf("%s/shift=%#x", tt.name, uint32(shift)), func(t *testing.T) {
				s := NewRangeSet(tt.max)
				for _, r := range tt.add {
					s.Add(Range{r.Start + shift, r.End + shift})
				}
				var want []Range
				for _, r := range tt.want {
					want = append(want, Range{r.Start + shift, r.End + shift})
				}
				if got := rangesOf(s); !slices.Equal(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
			})
		}
	}
}

func TestRangeSetQueries(t *testing.T) {
	var s RangeSet // the zero value works
	if _, ok := s.Min(); ok {
		t.Error("Min of empty set ok")
	}
	if _, ok := s.Max(); ok {
		t.Error("Max of empty set ok")
	}
	for _, x := range []Seq{0xFFFFFFFE, 0xFFFFFFFF, 0, 5, 6, 10} {
		s.AddSeq(x)
	}
	want := []Range{{0xFFFFFFFE, 0}, {5, 6}, {10, 10}}
	if got := rangesOf(&s); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if lo, _ := s.Min(); lo != 0xFFFFFFFE {
		t.Errorf("Min = %#x", uint32(lo))
	}
	if hi, _ := s.Max(); hi != 10 {
		t.Errorf("Max = %#x", uint32(hi))
	}
	for x, in := range map[Seq]bool{0xFFFFFFFD: false, 0xFFFFFFFF: true, 0: true, 1: false, 6: true, 7: false, 10: true, 11: false} {
		if s.Contains(x) != in {
			t.Errorf("Contains(%#x) = %v", uint32(x), !in)
		}
	}
	if got := s.AppendDescending(nil, 2); !slices.Equal(got, []Range{{10, 10}, {5, 6}}) {
		t.Errorf("AppendDescending = %v", got)
	}
	s.RemoveBelow(6)
	if got := rangesOf(&s); !slices.Equal(got, []Range{{6, 6}, {10, 10}}) {
		t.Errorf("after RemoveBelow(6): %v", got)
	}
	s.RemoveBelow(11)
	if s.Len() != 0 {
		t.Errorf("after RemoveBelow(11): %v", rangesOf(&s))
	}
	s.AddSeq(3)
	s.Reset()
	if s.Len() != 0 {
		t.Error("Reset left ranges")
	}
}

// TestRangeSetRandom checks RangeSet against a plain set of numbers. With a
// cap high enough never to bite, the two must agree exactly; with a low cap,
// the set must be a subset of the model that keeps its highest number.
func TestRangeSetRandom(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 2))
			base := Seq(rng.Uint32())
			maxRanges := 1 + rng.IntN(40)
			s := NewRangeSet(maxRanges)
			ref := map[int]bool{} // offsets from base
			lowest := 0
			capped := false // the cap may have bitten
			for range 400 {
				switch rng.IntN(8) {
				case 0:
					lowest += rng.IntN(10)
					s.RemoveBelow(base.Add(lowest))
					for k := range ref {
						if k < lowest {
							delete(ref, k)
						}
					}
				default:
					lo := lowest + rng.IntN(200)
					hi := lo + rng.IntN(4)
					s.Add(Range{base.Add(lo), base.Add(hi)})
					for k := lo; k <= hi; k++ {
						ref[k] = true
					}
				}
				got := rangesOf(s)
				if len(got) > maxRanges {
					t.Fatalf("%d ranges over a cap of %d", len(got), maxRanges)
				}
				for i, r := range got {
					if r.End.Less(r.Start) || (i > 0 && !got[i-1].End.Add(1).Less(r.Start)) {
						t.Fatalf("ranges not sorted, disjoint and apart: %v", got)
					}
				}
				for k := lowest - 2; k < lowest+210; k++ {
					if s.Contains(base.Add(k)) && !ref[k] {
						t.Fatalf("contains %d, never added", k)
					}
				}
				// The cap drops the lowest ranges, so the highest number
				// added is always kept.
				if hi := maxKey(ref); hi >= 0 && !s.Contains(base.Add(hi)) {
					t.Fatalf("lost the highest number %d: %v", hi, got)
				}
				capped = capped || len(got) == maxRanges
				if !capped {
					for k := range ref {
						if !s.Contains(base.Add(k)) {
							t.Fatalf("under the cap yet lost %d", k)
						}
					}
				}
			}
		})
	}
}

func TestRangeSetAddAllocs(t *testing.T) {
	s := NewRangeSet(8)
	x := Seq(0)
	allocs := testing.AllocsPerRun(1000, func() {
		s.AddSeq(x)
		s.AddSeq(x + 2)
		s.RemoveBelow(x)
		x += 3
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}

func maxKey(m map[int]bool) int {
	hi := -1
	for k := range m {
		hi = max(hi, k)
	}
	return hi
}
