package window

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestBitRingRuns(t *testing.T) {
	for _, size := range []int{64, 128, 256} {
		for seed := range uint64(20) {
			t.Run(fmt.Sprintf("size=%d/seed=%d", size, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 1))
				b := newBitRing(size)
				ref := make([]bool, size)
				density := rng.Float64()
				for i := range size {
					if rng.Float64() < density {
						ref[i] = true
						b.set(Seq(i))
					}
				}
				for range 200 {
					start := Seq(rng.Uint32())
					n := rng.IntN(2*size + 1)
					val := rng.IntN(2) == 0
					up, down := 0, 0
					for up < n && ref[(int(start)+up)&(size-1)] == val {
						up++
					}
					for down < n && ref[(int(start)-down)&(size-1)] == val {
						down++
					}
					if got := b.runUp(start, n, val); got != up {
						t.Fatalf("runUp(%#x, %d, %v) = %d, want %d", uint32(start), n, val, got, up)
					}
					if got := b.runDown(start, n, val); got != down {
						t.Fatalf("runDown(%#x, %d, %v) = %d, want %d", uint32(start), n, val, got, down)
					}
				}
			})
		}
	}
}

func TestRingSize(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{0, 64}, {1, 64}, {64, 64}, {65, 128}, {1024, 1024}, {1025, 2048}} {
		if got := ringSize(tt.n); got != tt.want {
			t.Errorf("ringSize(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}
