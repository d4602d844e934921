package repair

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cnlink/cnlink/window"
)

// TestSpansModel checks Spans against a set of numbers: never forgets a
// number it holds (a cap merges, so it may hold more), stays sorted,
// disjoint and non-adjacent, and within its cap.
func TestSpansModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0))
			base := window.Seq(0xFFFFFFF0)
			s := NewSpans(1 + r.IntN(6))
			want := map[window.Seq]bool{}
			for range 3000 {
				a := base.Add(r.IntN(200))
				rg := window.Range{Start: a, End: a.Add(r.IntN(10))}
				switch r.IntN(4) {
				case 0, 1:
					s.Add(rg)
					for x := rg.Start; x.LessEq(rg.End); x++ {
						want[x] = true
					}
				case 2:
					s.Remove(rg)
					for x := rg.Start; x.LessEq(rg.End); x++ {
						delete(want, x)
					}
				case 3:
					s.RemoveBelow(a)
					for x := range want {
						if x.Less(a) {
							delete(want, x)
						}
					}
				}
				if s.Len() > s.max {
					t.Fatalf("%d ranges over cap %d", s.Len(), s.max)
				}
				for i := 0; i < s.Len(); i++ {
					if s.At(i).End.Less(s.At(i).Start) {
						t.Fatalf("range %v reversed", s.At(i))
					}
					if i > 0 && !s.At(i-1).End.Add(1).Less(s.At(i).Start) {
						t.Fatalf("ranges %v %v overlap or touch", s.At(i-1), s.At(i))
					}
				}
				for x := range want {
					in := false
					for i := 0; i < s.Len(); i++ {
						in = in || s.At(i).Contains(x)
					}
					if !in {
						t.Fatalf("forgot %d: %v", x, s.r)
					}
				}
				// Removed numbers are really gone when nothing was merged
				// over them: check a removal's own range.
			}
		})
	}
}
