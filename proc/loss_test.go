package proc

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

func TestSeqTracker(t *testing.T) {
	type step struct {
		cpu, seq  uint32
		ts        uint64
		missed    uint64
		first     uint32
		after     uint64
		backwards uint64
		untracked uint64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first event of a CPU is no gap", []step{{cpu: 3, seq: 1000, ts: 1}}},
		{"consecutive", []step{{seq: 5, ts: 1}, {seq: 6, ts: 2}, {seq: 7, ts: 3}}},
		{"gap", []step{{seq: 5, ts: 10}, {seq: 9, ts: 20, missed: 3, first: 6, after: 10}}},
		{"CPUs are independent", []step{
			{cpu: 0, seq: 5, ts: 1}, {cpu: 1, seq: 100, ts: 2}, {cpu: 0, seq: 6, ts: 3},
			{cpu: 1, seq: 102, ts: 4, missed: 1, first: 101, after: 2},
		}},
		{"wrap is no gap", []step{{seq: 0xffffffff, ts: 1}, {seq: 0, ts: 2}}},
		{"gap across the wrap", []step{{seq: 0xfffffffe, ts: 1}, {seq: 1, ts: 2, missed: 2, first: 0xffffffff, after: 1}}},
		{"backwards leaves the state", []step{
			{seq: 10, ts: 1}, {seq: 8, ts: 2, backwards: 1}, {seq: 10, ts: 3, backwards: 2},
			{seq: 11, ts: 4, backwards: 2},
		}},
		{"CPU beyond the table", []step{{cpu: maxTrackedCPUs, seq: 1, untracked: 1}, {cpu: maxTrackedCPUs, seq: 9, untracked: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr seqTracker
			for i, s := range tt.steps {
				missed, first, after := tr.observe(s.cpu, s.seq, s.ts)
				if missed != s.missed || (missed > 0 && (first != s.first || after != s.after)) {
					t.Errorf("step %d: observe(%d, %d) = %d, %d, %d; want %d, %d, %d", i, s.cpu, s.seq, missed, first, after, s.missed, s.first, s.after)
				}
				if tr.backwards != s.backwards || tr.untracked != s.untracked {
					t.Errorf("step %d: backwards %d untracked %d, want %d %d", i, tr.backwards, tr.untracked, s.backwards, s.untracked)
				}
			}
			if len(tr.cpus) > maxTrackedCPUs {
				t.Errorf("table grew to %d", len(tr.cpus))
			}
		})
	}
}

// TestSeqTrackerModel drops random events from per-CPU streams and checks
// that the gaps found add up to exactly what was dropped, and that each
// gap starts at the first dropped sequence number.
func TestSeqTrackerModel(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("CNLINK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		rng := rand.New(rand.NewPCG(seed, 0))
		const cpus = 4
		var next [cpus]uint32
		for c := range next {
			next[c] = rng.Uint32() // any start, wraps included
		}
		var tr seqTracker
		var dropped, found uint64
		var firstDropped [cpus]int64 // -1: no drop pending
		for c := range firstDropped {
			firstDropped[c] = -1
		}
		seen := [cpus]bool{}
		for range 100000 {
			c := rng.IntN(cpus)
			seq := next[c]
			next[c]++
			if seen[c] && rng.IntN(10) == 0 {
				dropped++
				if firstDropped[c] < 0 {
					firstDropped[c] = int64(seq)
				}
				continue
			}
			seen[c] = true
			missed, first, _ := tr.observe(uint32(c), seq, 0)
			found += missed
			if missed > 0 && int64(first) != firstDropped[c] {
				t.Fatalf("cpu %d: gap starts at %d, first dropped %d", c, first, firstDropped[c])
			}
			firstDropped[c] = -1
		}
		// Drops at the tail of a CPU's stream show only with its next event.
		for c := range cpus {
			if firstDropped[c] >= 0 {
				missed, _, _ := tr.observe(uint32(c), next[c], 0)
				found += missed
			}
		}
		if found != dropped {
			t.Fatalf("gaps add up to %d, dropped %d", found, dropped)
		}
	})
}

func TestLossMergeAndSubtract(t *testing.T) {
	l := Loss{CPU: AnyCPU}
	l.add(Loss{Overruns: 1, CPU: AnyCPU})
	l.add(Loss{Missed: 3, CPU: 1, FirstSeq: 40, After: 100, Before: 200})
	if l.CPU != 1 || l.FirstSeq != 40 || l.After != 100 || l.Before != 200 {
		t.Fatalf("one gap keeps its location: %+v", l)
	}
	snap := l
	l.add(Loss{Dropped: 2, CPU: AnyCPU})
	l.add(Loss{Missed: 1, CPU: 0, FirstSeq: 7, After: 50, Before: 300})
	if l.CPU != AnyCPU || l.FirstSeq != 0 || l.After != 50 || l.Before != 300 || l.Missed != 4 {
		t.Fatalf("two gaps merge: %+v", l)
	}
	l.sub(snap) // snap was delivered; the later additions remain
	if l.Missed != 1 || l.Dropped != 2 || l.Overruns != 0 || l.After > 50 || l.Before < 300 {
		t.Fatalf("after sub: %+v", l)
	}
	l.sub(l)
	if !l.IsZero() || l.CPU != AnyCPU || l.After != 0 {
		t.Fatalf("emptied: %+v", l)
	}
	if s := (Loss{Missed: 2, CPU: 1, FirstSeq: 9, Overruns: 1, Dropped: 3}).String(); s != "missed=2 cpu=1 seq=9 overruns=1 dropped=3" {
		t.Errorf("String = %q", s)
	}
}
