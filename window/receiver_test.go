package window

import (
	"fmt"
	"slices"
	"testing"
)

// testISNs are the initial sequence numbers every table runs with: the
// plain case, just before 2^32 so that the window wraps, and just before
// 2^31 where signed and unsigned views disagree.
var testISNs = []Seq{0, 0xFFFFFFF0, 0x7FFFFFF8}

func forISNs(t *testing.T, name string, f func(t *testing.T, isn Seq)) {
	for _, isn := range testISNs {
		t.Run(fmt.Sprintf("%s/isn=%#x", name, uint32(isn)), func(t *testing.T) { f(t, isn) })
	}
}

func TestReceiverPush(t *testing.T) {
	tests := []struct {
		name     string
		window   int
		pops     int   // Pop calls after the pushes
		push     []int // offsets from isn
		want     []Verdict
		cum      int
		buffered int
	}{
		{"in order", 8, 0, []int{0, 1, 2}, []Verdict{Accepted, Accepted, Accepted}, 3, 3},
		{"gap", 8, 0, []int{0, 2, 3}, []Verdict{Accepted, Accepted, Accepted}, 1, 3},
		{"gap filled", 8, 0, []int{2, 3, 0, 1}, []Verdict{Accepted, Accepted, Accepted, Accepted}, 4, 4},
		{"duplicate in order", 8, 0, []int{0, 0}, []Verdict{Accepted, Duplicate}, 1, 1},
		{"duplicate out of order", 8, 0, []int{3, 3}, []Verdict{Accepted, Duplicate}, 0, 1},
		{"before isn is a duplicate", 8, 0, []int{-1, -5}, []Verdict{Duplicate, Duplicate}, 0, 0},
		{"last in window", 8, 0, []int{7}, []Verdict{Accepted}, 0, 1},
		{"first out of window", 8, 0, []int{8, 1000}, []Verdict{OutOfWindow, OutOfWindow}, 0, 0},
		// More than 2^31 ahead reads as behind: serial arithmetic cannot
		// tell, and it is garbage either way.
		{"far ahead reads as behind", 8, 0, []int{1 << 31, 1<<31 + 5}, []Verdict{Duplicate, Duplicate}, 0, 0},
		{"window of one", 1, 0, []int{1, 0, 0}, []Verdict{OutOfWindow, Accepted, Duplicate}, 1, 1},
		{"full window then cum", 4, 0, []int{1, 2, 3, 0}, []Verdict{Accepted, Accepted, Accepted, Accepted}, 4, 4},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			r := NewReceiver[int](isn, ReceiverConfig{Window: tt.window})
			for i, off := range tt.push {
				if got := r.Push(isn.Add(off), off); got != tt.want[i] {
					t.Errorf("Push(isn%+d) = %v, want %v", off, got, tt.want[i])
				}
				if err := r.check(); err != nil {
					t.Fatal(err)
				}
			}
			if got := r.Cum().Sub(isn); got != tt.cum {
				t.Errorf("Cum = isn%+d, want isn%+d", got, tt.cum)
			}
			if got := r.Buffered(); got != tt.buffered {
				t.Errorf("Buffered = %d, want %d", got, tt.buffered)
			}
		})
	}
}

func TestReceiverWindowSlidesWithPop(t *testing.T) {
	forISNs(t, "slide", func(t *testing.T, isn Seq) {
		r := NewReceiver[int](isn, ReceiverConfig{Window: 4})
		for off := range 4 {
			r.Push(isn.Add(off), off)
		}
		if got := r.Push(isn.Add(4), 4); got != OutOfWindow {
			t.Fatalf("Push(isn+4) with nothing popped = %v, want OutOfWindow", got)
		}
		r.Pop()
		if got := r.Push(isn.Add(4), 4); got != Accepted {
			t.Fatalf("Push(isn+4) after a Pop = %v, want Accepted", got)
		}
		if got := r.Push(isn, 0); got != Duplicate {
			t.Fatalf("Push(isn) after it was popped = %v, want Duplicate", got)
		}
		if r.NextPop() != isn.Add(1) || r.Cum() != isn.Add(5) {
			t.Fatalf("NextPop, Cum = isn%+d, isn%+d", r.NextPop().Sub(isn), r.Cum().Sub(isn))
		}
	})
}

func TestReceiverPopOrder(t *testing.T) {
	tests := []struct {
		name string
		push []int
		want []int // values popped after all pushes, in order
	}{
		{"in order", []int{0, 1, 2}, []int{0, 1, 2}},
		{"reversed", []int{4, 3, 2, 1, 0}, []int{0, 1, 2, 3, 4}},
		{"gap blocks", []int{0, 1, 3, 4}, []int{0, 1}},
		{"duplicates once", []int{1, 0, 1, 0, 2, 2}, []int{0, 1, 2}},
		{"nothing at isn", []int{1, 2}, nil},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			r := NewReceiver[int](isn, ReceiverConfig{Window: 16})
			for _, off := range tt.push {
				r.Push(isn.Add(off), off)
			}
			var got []int
			for {
				v, ok := r.Pop()
				if !ok {
					break
				}
				got = append(got, v)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("popped %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReceiverAck(t *testing.T) {
	type rg = [2]int
	tests := []struct {
		name      string
		window    int
		maxRanges int
		push      []int
		pops      int
		backlog   int
		cum       int
		limit     int
		ranges    []rg
		dup       int // -1000: no duplicate report
	}{
		{"nothing", 8, 0, nil, 0, 0, 0, 8, nil, -1000},
		{"in order, not popped", 8, 0, []int{0, 1, 2}, 0, 0, 3, 8, nil, -1000},
		{"in order, popped", 8, 0, []int{0, 1, 2}, 3, 0, 3, 11, nil, -1000},
		// The credit shrinks by what the caller holds undelivered...
		{"backlog", 8, 0, []int{0, 1, 2}, 3, 5, 3, 6, nil, -1000},
		{"backlog over window", 8, 0, []int{0, 1, 2}, 3, 50, 3, 3, nil, -1000},
		{"negative backlog is none", 8, 0, nil, 0, -3, 0, 8, nil, -1000},
		// ...but not by values waiting above a gap: they are inside the
		// window already.
		{"out of order does not shrink", 8, 0, []int{2, 3, 5}, 0, 0, 0, 8, []rg{{5, 5}, {2, 3}}, -1000},
		{"most recent first", 16, 0, []int{2, 6, 10, 5}, 0, 0, 0, 16, []rg{{5, 6}, {10, 10}, {2, 2}}, -1000},
		{"most recent is highest", 16, 0, []int{2, 6, 10}, 0, 0, 0, 16, []rg{{10, 10}, {6, 6}, {2, 2}}, -1000},
		{"cum past ranges", 16, 0, []int{1, 2, 4, 0}, 0, 0, 3, 16, []rg{{4, 4}}, -1000},
		{"recent merged into cum", 16, 0, []int{4, 1, 0}, 0, 0, 2, 16, []rg{{4, 4}}, -1000},
		// With more ranges than it may report, the receiver keeps the most
		// recent and the highest, and leaves out the lowest.
		{"cap keeps recent and highest", 32, 3, []int{2, 4, 6, 8, 10, 12, 5}, 0, 0, 0, 32, []rg{{4, 6}, {12, 12}, {10, 10}}, -1000},
		{"cap of one", 32, 1, []int{2, 4, 8}, 0, 0, 0, 32, []rg{{8, 8}}, -1000},
		{"duplicate below cum", 8, 0, []int{0, 1, 0}, 0, 0, 2, 8, nil, 0},
		{"duplicate buffered", 8, 0, []int{3, 3}, 0, 0, 0, 8, []rg{{3, 3}}, 3},
		{"latest duplicate wins", 8, 0, []int{0, 3, 3, 0}, 0, 0, 1, 8, []rg{{3, 3}}, 0},
		{"out of window is no duplicate", 8, 0, []int{9}, 0, 0, 0, 8, nil, -1000},
		{"lazy pop", 8, 0, []int{0, 1, 2, 3, 5}, 2, 0, 4, 10, []rg{{5, 5}}, -1000},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			r := NewReceiver[int](isn, ReceiverConfig{Window: tt.window, MaxRanges: tt.maxRanges})
			for _, off := range tt.push {
				r.Push(isn.Add(off), off)
			}
			for range tt.pops {
				r.Pop()
			}
			a := r.Ack(tt.backlog)
			if got := a.Cum.Sub(isn); got != tt.cum {
				t.Errorf("Cum = isn%+d, want isn%+d", got, tt.cum)
			}
			if got := a.Limit.Sub(isn); got != tt.limit {
				t.Errorf("Limit = isn%+d, want isn%+d", got, tt.limit)
			}
			var got []rg
			for _, x := range a.Ranges {
				got = append(got, rg{x.Start.Sub(isn), x.End.Sub(isn)})
			}
			if !slices.Equal(got, tt.ranges) {
				t.Errorf("Ranges = %v, want %v", got, tt.ranges)
			}
			switch {
			case tt.dup == -1000 && a.DupValid:
				t.Errorf("duplicate report isn%+d, want none", a.Dup.Sub(isn))
			case tt.dup != -1000 && (!a.DupValid || a.Dup.Sub(isn) != tt.dup):
				t.Errorf("duplicate report %v isn%+d, want isn%+d", a.DupValid, a.Dup.Sub(isn), tt.dup)
			}
			// The report is for one Ack only.
			if b := r.Ack(tt.backlog); b.DupValid {
				t.Error("second Ack repeats the duplicate report")
			}
		})
	}
}

func TestReceiverAckReusesRanges(t *testing.T) {
	r := NewReceiver[int](0, ReceiverConfig{})
	r.Push(2, 2)
	a := r.Ack(0)
	kept := a.Clone()
	r.Push(5, 5)
	b := r.Ack(0)
	if &a.Ranges[0] != &b.Ranges[0] {
		t.Error("Ack allocated a new Ranges slice")
	}
	if !slices.Equal(kept.Ranges, []Range{{2, 2}}) {
		t.Errorf("Clone shares memory: %v", kept.Ranges)
	}
	allocs := testing.AllocsPerRun(100, func() { r.Ack(0) })
	if allocs != 0 {
		t.Errorf("Ack allocates %v times", allocs)
	}
}

func TestReceiverAppendMissing(t *testing.T) {
	forISNs(t, "missing", func(t *testing.T, isn Seq) {
		r := NewReceiver[int](isn, ReceiverConfig{Window: 32})
		for _, off := range []int{1, 2, 5, 9, 10} {
			r.Push(isn.Add(off), off)
		}
		got := r.AppendMissing(nil, 10)
		want := []Range{{isn, isn}, {isn.Add(3), isn.Add(4)}, {isn.Add(6), isn.Add(8)}}
		if !slices.Equal(got, want) {
			t.Errorf("AppendMissing = %v, want %v", got, want)
		}
		if got := r.AppendMissing(nil, 2); len(got) != 2 {
			t.Errorf("AppendMissing with max 2 gave %d", len(got))
		}
		r.Push(isn, 0)
		for range 3 {
			r.Pop()
		}
		r.Push(isn.Add(3), 3)
		r.Push(isn.Add(4), 4)
		for _, off := range []int{6, 7, 8} {
			r.Push(isn.Add(off), off)
		}
		if got := r.AppendMissing(nil, 10); len(got) != 0 {
			t.Errorf("AppendMissing with no gap = %v", got)
		}
	})
}

func TestReceiverDrain(t *testing.T) {
	forISNs(t, "drain", func(t *testing.T, isn Seq) {
		r := NewReceiver[int](isn, ReceiverConfig{Window: 16})
		for _, off := range []int{0, 1, 2, 5, 7} {
			r.Push(isn.Add(off), off)
		}
		r.Pop()
		var got []int
		r.Drain(func(v int) { got = append(got, v) })
		if !slices.Equal(got, []int{1, 2, 5, 7}) {
			t.Errorf("Drain released %v", got)
		}
		if r.Buffered() != 0 || r.NextPop() != r.Cum() || r.Cum() != isn.Add(3) {
			t.Errorf("after Drain: buffered %d, NextPop isn%+d, Cum isn%+d", r.Buffered(), r.NextPop().Sub(isn), r.Cum().Sub(isn))
		}
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
		if _, ok := r.Pop(); ok {
			t.Error("Pop after Drain returned a value")
		}
		if got := r.Push(isn.Add(1), 1); got != Duplicate {
			t.Errorf("Push of a drained in-order value = %v, want Duplicate", got)
		}
		if got := r.Push(isn.Add(3), 3); got != Accepted {
			t.Errorf("Push after Drain = %v, want Accepted", got)
		}
	})
}

func TestReceiverConfig(t *testing.T) {
	r := NewReceiver[int](0, ReceiverConfig{})
	if r.Window() != DefaultWindow || r.maxRanges != DefaultMaxRanges {
		t.Errorf("defaults: window %d, max ranges %d", r.Window(), r.maxRanges)
	}
	for _, cfg := range []ReceiverConfig{{Window: -1}, {Window: MaxWindow + 1}, {MaxRanges: -1}, {MaxRanges: MaxAckRanges + 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewReceiver(%+v) did not panic", cfg)
				}
			}()
			NewReceiver[int](0, cfg)
		}()
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Accepted: "Accepted", Duplicate: "Duplicate", OutOfWindow: "OutOfWindow", 9: "Verdict(9)"} {
		if v.String() != want {
			t.Errorf("%d.String() = %q", int(v), v.String())
		}
	}
}

// TestReceiverStaleRecent covers a most-recent arrival left 2^31 behind by a
// long run of in-order arrivals: serial arithmetic then reads it as ahead of
// Cum, and Ack must not report a range for it. (Reaching it honestly takes
// 2^31 messages; the test plants it.)
func TestReceiverStaleRecent(t *testing.T) {
	r := NewReceiver[int](0, ReceiverConfig{Window: 64})
	r.Push(0, 0)
	r.Push(3, 3)
	r.recent = r.cum.Add(5) // not held
	a := r.Ack(0)
	if !slices.Equal(a.Ranges, []Range{{3, 3}}) {
		t.Errorf("Ranges = %v, want [{3 3}]", a.Ranges)
	}
	r.recent = r.cum.Add(1 << 30) // beyond the highest
	if a := r.Ack(0); !slices.Equal(a.Ranges, []Range{{3, 3}}) {
		t.Errorf("Ranges = %v, want [{3 3}]", a.Ranges)
	}
}
