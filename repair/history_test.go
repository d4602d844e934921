package repair

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cnlink/cnlink/window"
)

func TestHistoryLimitsAndFloor(t *testing.T) {
	h := NewHistory(100, 4, 1000)
	for i := range 4 {
		msn, _, ok := h.Push(make([]byte, 10), 100, nil)
		if !ok || msn != window.Seq(100+i) {
			t.Fatalf("push %d: msn %d ok %v", i, msn, ok)
		}
	}
	// Full by count; the floor (a registered subscriber at 100) pins 100.
	if h.Room(10, 100) {
		t.Fatal("room with the floor at the oldest message")
	}
	if _, _, ok := h.Push(make([]byte, 10), 100, nil); ok {
		t.Fatal("push evicted a message below the floor")
	}
	// Floor moves: the oldest goes.
	msn, ev, ok := h.Push(make([]byte, 10), 101, nil)
	if !ok || msn != 104 || len(ev) != 1 || h.Oldest() != 101 {
		t.Fatalf("msn %d evicted %d ok %v oldest %d", msn, len(ev), ok, h.Oldest())
	}
	// By bytes: 980 more (40 held, limit 1000) evicts two.
	_, ev, ok = h.Push(make([]byte, 980), h.Next(), nil)
	if !ok || len(ev) != 2 || h.Len() != 3 || h.Bytes() != 1000 {
		t.Fatalf("evicted %d ok %v len %d bytes %d", len(ev), ok, h.Len(), h.Bytes())
	}
	// A message bigger than MaxBytes is kept alone.
	_, _, ok = h.Push(make([]byte, 5000), h.Next(), nil)
	if !ok || h.Len() != 1 {
		t.Fatalf("oversized: ok %v len %d", ok, h.Len())
	}
	if got, ok := h.Get(h.Oldest()); !ok || len(got) != 5000 {
		t.Fatal("Get oldest")
	}
	if _, ok := h.Get(h.Next()); ok {
		t.Fatal("Get of Next")
	}
}

// TestHistoryModel compares History with a plain map over random pushes
// and floors, across the u32 wrap.
func TestHistoryModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0))
			isn := window.Seq(0xFFFFFF00)
			maxM, maxB := 1+r.IntN(100), 1+r.IntN(5000)
			h := NewHistory(isn, maxM, maxB)
			model := map[window.Seq][]byte{}
			first, next := isn, isn
			floor := isn
			for range 5000 {
				if r.IntN(3) == 0 {
					floor = first.Add(r.IntN(next.Sub(first) + 1))
				}
				msg := make([]byte, r.IntN(200))
				msg = append(msg, byte(next))
				room := h.Room(len(msg), floor)
				msn, ev, ok := h.Push(msg, floor, nil)
				if ok != room {
					t.Fatalf("Room %v but Push %v", room, ok)
				}
				if !ok {
					// Must be full within the floor.
					continue
				}
				if msn != next {
					t.Fatalf("msn %d want %d", msn, next)
				}
				for _, e := range ev {
					if !first.Less(floor) {
						t.Fatalf("evicted at or above the floor %d (first %d)", floor, first)
					}
					if &e[0] != &model[first][0] {
						t.Fatal("evicted the wrong message")
					}
					delete(model, first)
					first++
				}
				model[next] = msg
				next++
				bytes := 0
				for _, m := range model {
					bytes += len(m)
				}
				if h.Len() != len(model) || h.Bytes() != bytes || h.Oldest() != first || h.Next() != next {
					t.Fatalf("len %d/%d bytes %d/%d", h.Len(), len(model), h.Bytes(), bytes)
				}
				if h.Len() > maxM || (h.Bytes() > maxB && h.Len() > 1) {
					t.Fatalf("over limits: %d msgs %d bytes", h.Len(), h.Bytes())
				}
				for s, m := range model {
					if g, ok := h.Get(s); !ok || &g[0] != &m[0] {
						t.Fatalf("Get(%d)", s)
					}
				}
			}
		})
	}
}
