package window

import (
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

// sh drives a Sender[int] whose values are the offsets of their sequence
// numbers from isn, and checks after every call that the Sender's structures
// agree and that nothing is released twice.
type sh struct {
	t        *testing.T
	s        *Sender[int]
	isn      Seq
	released map[int]int // offset -> times released
	last     []int       // released by the last call, sorted
}

func newSH(t *testing.T, isn Seq, cfg SenderConfig) *sh {
	return &sh{t: t, s: NewSender[int](isn, cfg), isn: isn, released: map[int]int{}}
}

func (h *sh) seq(off int) Seq { return h.isn.Add(off) }
func (h *sh) off(s Seq) int   { return s.Sub(h.isn) }

func (h *sh) check() {
	h.t.Helper()
	if err := h.s.check(); err != nil {
		h.t.Fatalf("sender invariant: %v", err)
	}
}

// push pushes records at now until Next is isn+upTo.
func (h *sh) push(now time.Duration, upTo int) {
	h.t.Helper()
	for h.off(h.s.Next()) < upTo {
		off := h.off(h.s.Next())
		if got := h.s.Push(now, off); got != h.seq(off) {
			h.t.Fatalf("Push returned isn%+d, want isn%+d", h.off(got), off)
		}
	}
	h.check()
}

func (h *sh) release(seq Seq, v int) {
	if v != h.off(seq) {
		h.t.Errorf("released isn%+d with value %d", h.off(seq), v)
	}
	h.released[v]++
	if h.released[v] > 1 {
		h.t.Errorf("isn%+d released %d times", v, h.released[v])
	}
	h.last = append(h.last, v)
}

// ack sends an Ack with Cum isn+cum, SACK ranges given as offset pairs, and
// a limit that does not get in the way.
func (h *sh) ack(now time.Duration, cum int, ranges ...[2]int) AckResult {
	h.t.Helper()
	a := Ack{Cum: h.seq(cum), Limit: h.seq(cum + 1<<20)}
	for _, r := range ranges {
		a.Ranges = append(a.Ranges, Range{h.seq(r[0]), h.seq(r[1])})
	}
	return h.onAck(now, a)
}

func (h *sh) onAck(now time.Duration, a Ack) AckResult {
	h.t.Helper()
	h.last = h.last[:0]
	res := h.s.OnAck(now, a, h.release)
	slices.Sort(h.last)
	h.check()
	return res
}

// popAll retransmits every lost record at now and returns their offsets.
func (h *sh) popAll(now time.Duration) []int {
	h.t.Helper()
	var out []int
	for {
		seq, v, ok := h.s.PopLost(now)
		if !ok {
			break
		}
		if v != h.off(seq) {
			h.t.Errorf("PopLost gave isn%+d with value %d", h.off(seq), v)
		}
		out = append(out, v)
	}
	h.check()
	return out
}

func TestSenderCanSend(t *testing.T) {
	forISNs(t, "window", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 4})
		if h.s.Limit() != isn.Add(4) {
			t.Fatalf("initial Limit = isn%+d, want isn+4", h.off(h.s.Limit()))
		}
		h.push(0, 4)
		if h.s.CanSend() {
			t.Fatal("CanSend with a full window")
		}
		// SACKing records above a hole does not open the window: the span
		// from the oldest unacknowledged record is what the receiver's
		// window must hold.
		h.ack(ms, 0, [2]int{1, 3})
		if h.s.InFlight() != 1 || h.s.CanSend() {
			t.Fatalf("after SACK: InFlight %d, CanSend %v; want 1, false", h.s.InFlight(), h.s.CanSend())
		}
		h.ack(ms, 1)
		if h.s.Base() != isn.Add(4) || !h.s.CanSend() {
			t.Fatalf("after cumulative ack: Base isn%+d, CanSend %v", h.off(h.s.Base()), h.s.CanSend())
		}
	})
	forISNs(t, "limit", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 8})
		h.push(0, 2)
		h.onAck(ms, Ack{Cum: isn.Add(2), Limit: isn.Add(3)})
		h.push(ms, 3)
		if h.s.CanSend() {
			t.Fatal("CanSend at the peer's limit")
		}
		res := h.onAck(ms, Ack{Cum: isn.Add(2), Limit: isn.Add(5)})
		if !res.LimitMoved || !h.s.CanSend() {
			t.Fatalf("window update: LimitMoved %v, CanSend %v", res.LimitMoved, h.s.CanSend())
		}
	})
	t.Run("push panics", func(t *testing.T) {
		s := NewSender[int](0, SenderConfig{Window: 1})
		s.Push(0, 0)
		defer func() {
			if recover() == nil {
				t.Error("Push with CanSend false did not panic")
			}
		}()
		s.Push(0, 1)
	})
}

func TestSenderAcks(t *testing.T) {
	type rg = [2]int
	type ack struct {
		cum    int
		ranges []rg
	}
	tests := []struct {
		name     string
		push     int
		acks     []ack
		released []int // by the last ack
		base     int
		inFlight int
	}{
		{"cumulative", 5, []ack{{3, nil}}, []int{0, 1, 2}, 3, 2},
		{"all", 5, []ack{{5, nil}}, []int{0, 1, 2, 3, 4}, 5, 0},
		{"nothing new", 5, []ack{{3, nil}, {3, nil}}, nil, 3, 2},
		{"selective", 6, []ack{{0, []rg{{2, 3}, {5, 5}}}}, []int{2, 3, 5}, 0, 3},
		{"cumulative after selective", 6, []ack{{0, []rg{{2, 3}}}, {4, nil}}, []int{0, 1}, 4, 2},
		{"base jumps over sacked", 6, []ack{{0, []rg{{1, 3}}}, {1, nil}}, []int{0}, 4, 2},
		{"overlapping ranges", 6, []ack{{0, []rg{{1, 3}, {2, 4}, {1, 1}}}}, []int{1, 2, 3, 4}, 0, 2},
		{"range over cum", 6, []ack{{2, []rg{{0, 3}}}}, []int{0, 1, 2, 3}, 4, 2},
		// Parts outside [Base, Next) are ignored, not trusted.
		{"range past next", 4, []ack{{0, []rg{{2, 9}}}}, []int{2, 3}, 0, 2},
		{"range before base", 6, []ack{{3, nil}, {3, []rg{{-5, 4}}}}, []int{3, 4}, 5, 1},
		{"range wholly past next", 4, []ack{{0, []rg{{5, 9}}}}, nil, 0, 4},
		{"malformed range", 4, []ack{{0, []rg{{3, 1}}}}, nil, 0, 4},
		{"huge range clamped", 4, []ack{{0, []rg{{1, 1 << 31}}}}, []int{1, 2, 3}, 0, 1},
		{"range of more than half the space is malformed", 4, []ack{{0, []rg{{1, 1 + 1<<31}}}}, nil, 0, 4},
		{"stale cum", 6, []ack{{4, nil}, {2, []rg{{5, 5}}}}, []int{5}, 4, 1},
		{"cum past next ignored", 4, []ack{{5, []rg{{1, 2}}}}, nil, 0, 4},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			h := newSH(t, isn, SenderConfig{Window: 16, ReorderWindowMin: time.Hour, PacketThreshold: 100})
			h.push(0, tt.push)
			for _, a := range tt.acks {
				h.ack(ms, a.cum, a.ranges...)
			}
			if !slices.Equal(h.last, tt.released) {
				t.Errorf("last ack released %v, want %v", h.last, tt.released)
			}
			if got := h.off(h.s.Base()); got != tt.base {
				t.Errorf("Base = isn%+d, want isn%+d", got, tt.base)
			}
			if got := h.s.InFlight(); got != tt.inFlight {
				t.Errorf("InFlight = %d, want %d", got, tt.inFlight)
			}
		})
	}
}

// TestSenderHostileAcks sends acknowledgements no honest receiver sends and
// checks that the Sender stays whole: nothing released twice (sh checks),
// nothing released that lies outside what was sent, structures intact.
func TestSenderHostileAcks(t *testing.T) {
	tests := []struct {
		name    string
		ack     func(isn Seq) Ack
		acked   int
		ignored bool
	}{
		{"cum far ahead", func(isn Seq) Ack { return Ack{Cum: isn.Add(1 << 30), Limit: isn.Add(1 << 30)} }, 0, true},
		{"cum just past next", func(isn Seq) Ack { return Ack{Cum: isn.Add(9), Limit: isn.Add(20)} }, 0, true},
		{"cum more than 2^31 ahead reads as stale", func(isn Seq) Ack {
			return Ack{Cum: isn.Add(8 + 1<<31 + 5), Ranges: []Range{{isn.Add(2), isn.Add(2)}}}
		}, 1, false},
		{"ranges beyond the cap", func(isn Seq) Ack {
			a := Ack{Cum: isn}
			for range MaxAckRanges {
				a.Ranges = append(a.Ranges, Range{isn.Add(1), isn.Add(1)})
			}
			a.Ranges = append(a.Ranges, Range{isn.Add(5), isn.Add(5)}) // ignored
			return a
		}, 1, false},
		{"every range the whole space", func(isn Seq) Ack {
			a := Ack{Cum: isn}
			for range 50 {
				a.Ranges = append(a.Ranges, Range{isn.Add(-1 << 29), isn.Add(1 << 29)})
			}
			return a
		}, 8, false},
		{"duplicate of a number never sent", func(isn Seq) Ack { return Ack{Cum: isn, DupValid: true, Dup: isn.Add(100)} }, 0, false},
		{"duplicate of a first transmission", func(isn Seq) Ack { return Ack{Cum: isn, DupValid: true, Dup: isn.Add(2)} }, 0, false},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			h := newSH(t, isn, SenderConfig{Window: 8})
			h.push(0, 8)
			res := h.onAck(ms, tt.ack(isn))
			if res.Acked != tt.acked || res.Ignored != tt.ignored || res.Spurious != 0 {
				t.Errorf("result %+v, want Acked %d Ignored %v", res, tt.acked, tt.ignored)
			}
			for off := range h.released {
				if off < 0 || off >= 8 {
					t.Errorf("released isn%+d, never sent", off)
				}
			}
			if tt.ignored && h.s.Stats().IgnoredAcks != 1 {
				t.Errorf("IgnoredAcks = %d", h.s.Stats().IgnoredAcks)
			}
		})
	}
}

func TestSenderLimit(t *testing.T) {
	tests := []struct {
		name  string
		acks  []Ack // offsets from isn
		limit int
		moved bool // by the last ack
	}{
		{"from ack", []Ack{{Cum: 2, Limit: 10}}, 10, true},
		{"same limit", []Ack{{Cum: 2, Limit: 10}, {Cum: 3, Limit: 10}}, 10, false},
		{"may shrink", []Ack{{Cum: 2, Limit: 10}, {Cum: 3, Limit: 7}}, 7, true},
		{"stale ack's limit ignored", []Ack{{Cum: 3, Limit: 10}, {Cum: 2, Limit: 20}}, 10, false},
		{"below cum means no credit", []Ack{{Cum: 2, Limit: 0}}, 2, true},
		{"half the space away means no credit", []Ack{{Cum: 2, Limit: 2 + 1<<31}}, 2, true},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			h := newSH(t, isn, SenderConfig{Window: 8})
			h.push(0, 5)
			var res AckResult
			for _, a := range tt.acks {
				a.Cum, a.Limit = isn+a.Cum, isn+a.Limit
				res = h.onAck(ms, a)
			}
			if got := h.off(h.s.Limit()); got != tt.limit {
				t.Errorf("Limit = isn%+d, want isn%+d", got, tt.limit)
			}
			if res.LimitMoved != tt.moved {
				t.Errorf("LimitMoved = %v, want %v", res.LimitMoved, tt.moved)
			}
		})
	}
}

// TestSenderPacketThreshold checks RFC 9002 section 6.1.1: a record is lost
// when a record transmitted PacketThreshold or more transmissions after it
// is acknowledged. The time threshold is kept out of the way.
func TestSenderPacketThreshold(t *testing.T) {
	type rg = [2]int
	tests := []struct {
		name      string
		threshold int
		push      int
		cum       int
		ranges    []rg
		lost      []int
	}{
		{"three later acked", 0, 4, 0, []rg{{3, 3}}, []int{0}},
		{"two later acked", 0, 4, 0, []rg{{2, 2}}, nil},
		{"two lost", 0, 5, 0, []rg{{4, 4}}, []int{0, 1}},
		{"hole in the middle", 0, 8, 2, []rg{{4, 7}}, []int{2, 3}},
		{"only below the acked one", 0, 10, 0, []rg{{5, 5}}, []int{0, 1, 2}},
		{"threshold one", 1, 3, 0, []rg{{1, 1}}, []int{0}},
		{"threshold five", 5, 6, 0, []rg{{4, 4}}, nil},
		{"threshold five reached", 5, 6, 0, []rg{{5, 5}}, []int{0}},
		{"cumulative ack loses nothing", 0, 5, 5, nil, nil},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			h := newSH(t, isn, SenderConfig{Window: 16, PacketThreshold: tt.threshold, ReorderWindowMin: time.Hour})
			h.push(0, tt.push)
			res := h.ack(ms, tt.cum, tt.ranges...)
			if res.NewlyLost != len(tt.lost) {
				t.Errorf("NewlyLost = %d, want %d", res.NewlyLost, len(tt.lost))
			}
			if got := h.popAll(2 * ms); !slices.Equal(got, tt.lost) {
				t.Errorf("lost %v, want %v", got, tt.lost)
			}
		})
	}
}

// TestSenderLostRetransmission checks that "sent later" counts
// transmissions, not sequence numbers: a retransmission is judged against
// what was sent after it (RACK, RFC 8985 section 3: it "can detect lost
// retransmissions"), and is not declared lost again merely because higher
// sequence numbers were acknowledged before it was resent.
func TestSenderLostRetransmission(t *testing.T) {
	forISNs(t, "lost retransmission", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 16, ReorderWindowMin: time.Hour})
		h.push(0, 4)                                               // transmissions 1..4
		if res := h.ack(ms, 0, [2]int{3, 3}); res.NewlyLost != 1 { // transmission 4 acked
			t.Fatalf("NewlyLost = %d, want 1", res.NewlyLost)
		}
		if got := h.popAll(2 * ms); !slices.Equal(got, []int{0}) { // transmission 5
			t.Fatalf("retransmitted %v", got)
		}
		// 1 and 2 were sent before the retransmission of 0: their
		// acknowledgement says nothing about it.
		if res := h.ack(3*ms, 0, [2]int{1, 3}); res.NewlyLost != 0 {
			t.Fatalf("retransmission declared lost by earlier transmissions")
		}
		h.push(3*ms, 7)                                              // transmissions 6, 7, 8
		if res := h.ack(4*ms, 0, [2]int{1, 4}); res.NewlyLost != 0 { // transmission 6
			t.Fatalf("NewlyLost = %d after one later transmission", res.NewlyLost)
		}
		if res := h.ack(4*ms, 0, [2]int{1, 6}); res.NewlyLost != 1 { // transmission 8: 3 after 5
			t.Fatalf("lost retransmission not detected: NewlyLost %d", res.NewlyLost)
		}
		if got := h.popAll(5 * ms); !slices.Equal(got, []int{0}) {
			t.Fatalf("retransmitted %v", got)
		}
		if st := h.s.Stats(); st.Lost != 2 || st.Retransmitted != 2 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestSenderTimeThreshold checks RACK's time threshold (RFC 8985 section 6.2
// step 5): a record sent before the most recently sent delivered record is
// lost once now >= its send time + RACK.rtt + reordering window. At the time
// of the acknowledgement, that is: it was sent a reordering window or more
// before the delivered record.
func TestSenderTimeThreshold(t *testing.T) {
	tests := []struct {
		name     string
		sent     []time.Duration // send time of each record
		ackAt    time.Duration
		acked    int           // the record acknowledged (selectively)
		srtt     time.Duration // 0: none
		lost     int           // records lost by the ack
		deadline time.Duration // LossDeadline after the ack, -1 for none
	}{
		// Reordering window 1 ms (the minimum).
		{"sent a window earlier", []time.Duration{0, 2 * ms}, 3 * ms, 1, 0, 1, -1},
		{"sent exactly a window earlier", []time.Duration{0, 1 * ms}, 3 * ms, 1, 0, 1, -1},
		{"sent less than a window earlier", []time.Duration{0, ms / 2}, ms + ms/2, 1, 0, 0, 2 * ms},
		{"sent at the same time", []time.Duration{ms, ms}, 2 * ms, 1, 0, 0, 3 * ms},
		{"two sent earlier, one in time", []time.Duration{0, ms / 2, 3 * ms / 2, 2 * ms}, 3 * ms, 3, 0, 2, 3*ms + ms/2},
		// SRTT 20 ms: window 5 ms.
		{"srtt widens the window", []time.Duration{0, 2 * ms}, 3 * ms, 1, 20 * ms, 0, 6 * ms},
		{"srtt window passed", []time.Duration{0, 6 * ms}, 7 * ms, 1, 20 * ms, 1, -1},
		{"nothing sent before", []time.Duration{0, ms}, 5 * ms, 0, 0, 0, -1},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			h := newSH(t, isn, SenderConfig{Window: 16, PacketThreshold: 100, ReorderWindowMin: ms})
			h.s.SetSRTT(tt.srtt)
			for i, at := range tt.sent {
				h.push(at, i+1)
			}
			res := h.ack(tt.ackAt, 0, [2]int{tt.acked, tt.acked})
			if res.NewlyLost != tt.lost {
				t.Errorf("NewlyLost = %d, want %d", res.NewlyLost, tt.lost)
			}
			d, ok := h.s.LossDeadline()
			switch {
			case tt.deadline < 0 && ok:
				t.Errorf("LossDeadline = %v, want none", d)
			case tt.deadline >= 0 && (!ok || d != tt.deadline):
				t.Errorf("LossDeadline = %v %v, want %v", d, ok, tt.deadline)
			}
			if ok {
				// Just before the deadline nothing happens; at it, the
				// head record is lost.
				if n := h.s.DetectLoss(d - 1); n != 0 {
					t.Errorf("DetectLoss before the deadline = %d", n)
				}
				if n := h.s.DetectLoss(d); n < 1 {
					t.Errorf("DetectLoss at the deadline = %d", n)
				}
				h.check()
			}
		})
	}
}

func TestSenderReorderWindow(t *testing.T) {
	tests := []struct {
		name string
		min  time.Duration
		srtt time.Duration
		mult int
		want time.Duration
	}{
		{"no srtt: the minimum", 0, 0, 1, DefaultReorderWindowMin},
		{"srtt/4", -1, 20 * ms, 1, 5 * ms},
		{"minimum wins", 0, 2 * ms, 1, ms},
		{"negative minimum is none", -1, 2 * ms, 1, ms / 2},
		{"multiplier", -1, 20 * ms, 3, 15 * ms},
		{"capped at srtt", -1, 20 * ms, 9, 20 * ms},
		{"minimum over srtt", 50 * ms, 20 * ms, 9, 50 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSender[int](0, SenderConfig{ReorderWindowMin: tt.min})
			s.SetSRTT(tt.srtt)
			s.reoMult = tt.mult
			if got := s.ReorderWindow(); got != tt.want {
				t.Errorf("ReorderWindow = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSenderRTTSample checks Karn's rule: the sample comes from the newest
// newly acknowledged record that was never retransmitted, or there is none.
func TestSenderRTTSample(t *testing.T) {
	forISNs(t, "karn", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 16, ReorderWindowMin: time.Hour})
		h.push(0, 2)
		h.push(2*ms, 4)
		if res := h.ack(10*ms, 0, [2]int{0, 0}, [2]int{2, 2}); !res.RTTValid || res.RTT != 8*ms {
			t.Errorf("sample %v %v, want 8ms from the newest acknowledged", res.RTTValid, res.RTT)
		}
		h.s.MarkAllLost()
		h.popAll(20 * ms) // 1 and 3 retransmitted
		if res := h.ack(30*ms, 2); res.RTTValid {
			t.Errorf("sample %v from a retransmitted record", res.RTT)
		}
		h.push(31*ms, 5)
		if res := h.ack(40*ms, 5); !res.RTTValid || res.RTT != 9*ms {
			t.Errorf("sample %v %v, want 9ms from the only first transmission", res.RTTValid, res.RTT)
		}
	})
}

// TestSenderAmbiguousAck checks RFC 8985 section 6.2 step 2: an
// acknowledgement of a retransmitted record that comes back sooner than
// min_RTT after the retransmission is for the original transmission, and does
// not move RACK.
func TestSenderAmbiguousAck(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ackAt time.Duration
		lost  int
	}{
		{"sooner than min_RTT: ignored", 31 * ms, 0},
		{"after min_RTT: counts", 45 * ms, 1},
	} {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			h := newSH(t, isn, SenderConfig{Window: 16, PacketThreshold: 1, ReorderWindowMin: time.Hour})
			h.push(0, 1)
			h.ack(10*ms, 1) // min_RTT 10ms
			h.push(20*ms, 3)
			h.s.MarkAllLost()
			h.popAll(30 * ms) // 1 then 2, transmissions 4 and 5
			if res := h.ack(tt.ackAt, 1, [2]int{2, 2}); res.NewlyLost != tt.lost {
				t.Errorf("NewlyLost = %d, want %d", res.NewlyLost, tt.lost)
			}
		})
	}
}

// TestSenderSpurious checks the detection of spurious retransmissions from
// duplicate reports (RFC 2883) and the reordering window adaptation of
// RFC 8985 section 6.2 step 4.
func TestSenderSpurious(t *testing.T) {
	forISNs(t, "spurious", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 64, ReorderWindowMin: -1})
		h.s.SetSRTT(8 * ms) // reordering window 2ms * multiplier
		dup := func(now time.Duration, cum, d int) AckResult {
			return h.onAck(now, Ack{Cum: h.seq(cum), Limit: h.seq(cum + 64), DupValid: true, Dup: h.seq(d)})
		}
		h.push(0, 10)
		h.ack(5*ms, 0, [2]int{4, 4}) // 0, 1 lost by the packet threshold; min_RTT 5ms
		if got := h.popAll(5 * ms); !slices.Equal(got, []int{0, 1}) {
			t.Fatalf("retransmitted %v", got)
		}
		// The originals arrive after all, sooner after the retransmission
		// than any round trip: the receiver reports the retransmission of 0
		// as a duplicate. 10 is Next: the DSACK round lasts until
		// everything before it is acknowledged.
		if res := dup(6*ms, 5, 0); res.Spurious != 1 {
			t.Fatalf("Spurious = %d, want 1", res.Spurious)
		}
		if got := h.s.ReorderWindow(); got != 4*ms {
			t.Errorf("ReorderWindow = %v after a DSACK, want 4ms", got)
		}
		// 0 was declared lost 4 transmissions before the acknowledged one
		// (transmission 5): the threshold must now exceed 4.
		if got := h.s.PacketThreshold(); got != 5 {
			t.Errorf("PacketThreshold = %d after a spurious retransmission, want 5", got)
		}
		if res := dup(6*ms, 5, 0); res.Spurious != 0 {
			t.Error("the same retransmission counted twice")
		}
		if res := dup(6*ms, 5, 2); res.Spurious != 0 {
			t.Error("a duplicate of a first transmission counted as spurious")
		}
		// Another spurious retransmission in the same round counts, but
		// the multiplier grows once per round.
		if res := dup(6*ms, 5, 1); res.Spurious != 1 || h.s.ReorderWindow() != 4*ms {
			t.Errorf("same round: Spurious %d, window %v", res.Spurious, h.s.ReorderWindow())
		}
		// SND.UNA >= RACK.dsack_round: the round is over.
		h.ack(7*ms, 10)
		h.push(7*ms, 17) // transmissions 13..19
		if res := h.ack(20*ms, 10, [2]int{15, 15}); res.NewlyLost != 1 {
			t.Fatalf("NewlyLost = %d, want 1 (10: 5 transmissions before 15; the threshold is 5)", res.NewlyLost)
		}
		lost := h.popAll(21 * ms)
		if res := dup(22*ms, 17, lost[0]); res.Spurious != 1 || h.s.ReorderWindow() != 6*ms {
			t.Errorf("next round: Spurious %d, window %v, want 1, 6ms", res.Spurious, h.s.ReorderWindow())
		}
		if got := h.s.PacketThreshold(); got != 6 {
			t.Errorf("PacketThreshold = %d, want 6", got)
		}
		if st := h.s.Stats(); st.Spurious != 3 {
			t.Errorf("Stats().Spurious = %d", st.Spurious)
		}
	})
}

// TestSenderReorderWindowReset checks "Reset the window after 16 DSACK-free
// recoveries" (RFC 8985 section 6.2 step 4).
func TestSenderReorderWindowReset(t *testing.T) {
	h := newSH(t, 0, SenderConfig{Window: 64, ReorderWindowMin: -1, MaxPacketThreshold: -1})
	h.s.SetSRTT(8 * ms)
	now := time.Duration(0)
	next := 0
	recovery := func() {
		h.push(now, next+4)
		h.ack(now+ms, next, [2]int{next + 3, next + 3}) // next lost: recovery
		for _, off := range h.popAll(now + ms) {
			_ = off
		}
		h.ack(now+2*ms, next+4) // all acknowledged: recovery over
		next += 4
		now += 10 * ms
	}
	// One recovery whose retransmission was spurious.
	h.push(now, 4)
	h.ack(ms, 0, [2]int{3, 3})
	h.popAll(ms)
	h.onAck(2*ms, Ack{Cum: 4, Limit: 100, DupValid: true, Dup: 0})
	next, now = 4, 10*ms
	if h.s.ReorderWindow() != 4*ms {
		t.Fatalf("ReorderWindow = %v after a DSACK", h.s.ReorderWindow())
	}
	for i := range 16 {
		if h.s.ReorderWindow() != 4*ms {
			t.Fatalf("ReorderWindow reset after %d recoveries", i)
		}
		recovery()
	}
	if h.s.ReorderWindow() != 2*ms {
		t.Errorf("ReorderWindow = %v after 16 DSACK-free recoveries, want 2ms", h.s.ReorderWindow())
	}
}

// TestSenderAdaptivePacketThreshold checks that observed reordering raises
// the packet threshold (RFC 9002 section 6.1.1 allows it, as Linux does),
// within MaxPacketThreshold, and that it returns to the configured value
// after 16 loss episodes.
func TestSenderAdaptivePacketThreshold(t *testing.T) {
	tests := []struct {
		name string
		max  int
		want int
	}{
		{"grows to the depth", 0, 5},
		{"capped", 4, 4},
		{"off", -1, 3},
	}
	for _, tt := range tests {
		forISNs(t, tt.name, func(t *testing.T, isn Seq) {
			h := newSH(t, isn, SenderConfig{Window: 64, ReorderWindowMin: time.Hour, MaxPacketThreshold: tt.max})
			h.push(0, 6)
			// 4 (transmission 5) arrives first; 0 (transmission 1), never
			// retransmitted, comes after it: reordering 4 deep.
			h.ack(ms, 0, [2]int{1, 4}) // 0 lost by the threshold of 3
			if res := h.ack(2*ms, 5); res.Acked != 1 {
				t.Fatalf("Acked = %d", res.Acked)
			}
			if got := h.s.PacketThreshold(); got != tt.want {
				t.Fatalf("PacketThreshold = %d, want %d", got, tt.want)
			}
			if h.s.HasLost() {
				t.Fatal("a record acknowledged is still waiting for PopLost")
			}
			if tt.want == 3 {
				return
			}
			// 16 loss episodes without reordering bring it back.
			next, now := 6, 10*ms
			for range 16 {
				h.push(now, next+10)
				h.ack(now+ms, next, [2]int{next + 1, next + 9}) // next lost
				h.popAll(now + ms)
				h.ack(now+2*ms, next+10)
				next += 10
				now += 10 * ms
			}
			if got := h.s.PacketThreshold(); got != 3 {
				t.Errorf("PacketThreshold = %d after 16 quiet loss episodes, want 3", got)
			}
			if st := h.s.Stats(); st.Reordered != 1 {
				t.Errorf("Reordered = %d, want 1", st.Reordered)
			}
		})
	}
}

func TestSenderTimeout(t *testing.T) {
	forISNs(t, "timeout", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 16, ReorderWindowMin: time.Hour})
		h.push(0, 3)
		h.push(ms, 6)
		h.ack(2*ms, 1, [2]int{3, 3})
		if at, ok := h.s.OldestSentAt(); !ok || at != 0 {
			t.Fatalf("OldestSentAt = %v %v, want 0", at, ok)
		}
		if n := h.s.MarkAllLost(); n != 4 {
			t.Fatalf("MarkAllLost = %d, want 4 (1, 2, 4, 5)", n)
		}
		if n := h.s.MarkAllLost(); n != 0 {
			t.Fatalf("second MarkAllLost = %d, want 0", n)
		}
		if !h.s.HasLost() || h.s.Lost() != 4 || h.s.InFlight() != 4 {
			t.Fatalf("HasLost %v, Lost %d, InFlight %d", h.s.HasLost(), h.s.Lost(), h.s.InFlight())
		}
		// Lowest first; a record retransmitted is in flight again, and the
		// oldest send time is that of the records still waiting.
		seq, v, ok := h.s.PopLost(20 * ms)
		if !ok || h.off(seq) != 1 || v != 1 {
			t.Fatalf("PopLost = isn%+d %d %v, want isn+1", h.off(seq), v, ok)
		}
		if at, _ := h.s.OldestSentAt(); at != 0 {
			t.Errorf("OldestSentAt = %v, want 0 (2 is still waiting)", at)
		}
		if got := h.popAll(21 * ms); !slices.Equal(got, []int{2, 4, 5}) {
			t.Errorf("PopLost order %v", got)
		}
		if at, _ := h.s.OldestSentAt(); at != 20*ms {
			t.Errorf("OldestSentAt = %v, want 20ms", at)
		}
		if h.s.HasLost() || h.s.InFlight() != 4 {
			t.Errorf("after retransmitting: HasLost %v, InFlight %d", h.s.HasLost(), h.s.InFlight())
		}
		h.ack(30*ms, 6)
		if _, ok := h.s.OldestSentAt(); ok || h.s.InFlight() != 0 {
			t.Errorf("all acknowledged, yet OldestSentAt ok, InFlight %d", h.s.InFlight())
		}
		if len(h.released) != 6 {
			t.Errorf("released %d of 6", len(h.released))
		}
	})
}

func TestSenderMarkAllLost(t *testing.T) {
	forISNs(t, "overrun", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 16, PacketThreshold: 100, ReorderWindowMin: time.Hour})
		h.push(0, 6)
		h.ack(ms, 0, [2]int{2, 3})
		if n := h.s.MarkAllLost(); n != 4 {
			t.Fatalf("MarkAllLost = %d, want 4: SACKed records stay acknowledged", n)
		}
		if got := h.popAll(2 * ms); !slices.Equal(got, []int{0, 1, 4, 5}) {
			t.Errorf("PopLost order %v", got)
		}
	})
}

// TestSenderMarkLost checks negative acknowledgements: the records named
// and unacknowledged become lost, in any order, and the lists stay in
// transmission order for the other ways of losing records.
func TestSenderMarkLost(t *testing.T) {
	forISNs(t, "nack", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 16, PacketThreshold: 100, ReorderWindowMin: time.Hour})
		for off := range 10 {
			h.push(time.Duration(off)*ms, off+1)
		}
		h.ack(10*ms, 0, [2]int{3, 3})
		if n := h.s.MarkLost(Range{h.seq(7), h.seq(8)}); n != 2 {
			t.Fatalf("MarkLost(7..8) = %d", n)
		}
		if n := h.s.MarkLost(Range{h.seq(1), h.seq(4)}); n != 3 {
			t.Fatalf("MarkLost(1..4) = %d, want 3: 3 is acknowledged", n)
		}
		if n := h.s.MarkLost(Range{h.seq(2), h.seq(2)}); n != 0 {
			t.Fatalf("MarkLost of a lost record = %d", n)
		}
		if n := h.s.MarkLost(Range{h.seq(-5), h.seq(-1)}) + h.s.MarkLost(Range{h.seq(20), h.seq(30)}) + h.s.MarkLost(Range{h.seq(5), h.seq(4)}); n != 0 {
			t.Fatalf("MarkLost outside the window or malformed = %d", n)
		}
		if at, _ := h.s.OldestSentAt(); at != 0 {
			t.Errorf("OldestSentAt = %v, want 0", at)
		}
		// An overrun now merges the rest (0, 5, 6, 9) into the lost list.
		if n := h.s.MarkAllLost(); n != 4 {
			t.Fatalf("MarkAllLost = %d, want 4", n)
		}
		h.check()
		if got := h.popAll(20 * ms); !slices.Equal(got, []int{0, 1, 2, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("PopLost order %v", got)
		}
	})
}

// TestSenderLostThenAcked checks a record declared lost whose original
// arrives before it is retransmitted: it is released once and no longer
// waits for PopLost.
func TestSenderLostThenAcked(t *testing.T) {
	forISNs(t, "late original", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 16})
		h.push(0, 4)
		h.s.MarkAllLost()
		res := h.ack(2*ms, 2)
		if res.Acked != 2 || !res.RTTValid || h.s.Lost() != 2 {
			t.Errorf("result %+v, Lost %d", res, h.s.Lost())
		}
		if got := h.popAll(3 * ms); !slices.Equal(got, []int{2, 3}) {
			t.Errorf("PopLost %v", got)
		}
	})
}

func TestSenderPopLostAcrossWrap(t *testing.T) {
	h := newSH(t, 0xFFFFFFF0, SenderConfig{Window: 64, PacketThreshold: 100, ReorderWindowMin: time.Hour})
	h.push(0, 40)
	// Acknowledge every third record, across 2^32.
	var ranges [][2]int
	for off := 2; off < 40; off += 3 {
		ranges = append(ranges, [2]int{off, off})
	}
	h.ack(ms, 0, ranges...)
	h.s.MarkAllLost()
	got := h.popAll(3 * ms)
	var want []int
	for off := range 40 {
		if off%3 != 2 {
			want = append(want, off)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("PopLost order %v, want %v", got, want)
	}
	h.ack(4*ms, 40)
	if len(h.released) != 40 || h.s.Base() != h.seq(40) {
		t.Errorf("released %d, Base isn%+d", len(h.released), h.off(h.s.Base()))
	}
}

func TestSenderDrain(t *testing.T) {
	forISNs(t, "drain", func(t *testing.T, isn Seq) {
		h := newSH(t, isn, SenderConfig{Window: 16})
		h.push(0, 6)
		h.ack(ms, 1, [2]int{3, 3})
		h.s.MarkAllLost()
		h.last = h.last[:0]
		h.s.Drain(h.release)
		if !slices.Equal(h.last, []int{1, 2, 4, 5}) {
			t.Errorf("Drain released %v", h.last)
		}
		h.check()
		if h.s.InFlight() != 0 || h.s.HasLost() || h.s.Base() != h.s.Next() {
			t.Errorf("after Drain: InFlight %d, HasLost %v", h.s.InFlight(), h.s.HasLost())
		}
		// A late acknowledgement releases nothing again.
		if res := h.ack(3*ms, 6, [2]int{0, 5}); res.Acked != 0 {
			t.Errorf("late ack after Drain acked %d", res.Acked)
		}
		if len(h.released) != 6 {
			t.Errorf("released %d of 6", len(h.released))
		}
		// The Sender is finished: nothing more may be pushed (issue 9: a
		// session that failed mid-batch kept sending into a drained
		// window).
		if h.s.CanSend() {
			t.Errorf("CanSend after Drain")
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Push after Drain did not panic")
				}
			}()
			h.s.Push(4*ms, 7)
		}()
	})
}

func TestSenderConfig(t *testing.T) {
	s := NewSender[int](0, SenderConfig{})
	if s.Window() != DefaultWindow || s.pktThresh != DefaultPacketThreshold || s.reoMin != DefaultReorderWindowMin {
		t.Errorf("defaults: window %d, threshold %d, min %v", s.Window(), s.pktThresh, s.reoMin)
	}
	for _, cfg := range []SenderConfig{{Window: -1}, {Window: MaxWindow + 1}, {PacketThreshold: -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewSender(%+v) did not panic", cfg)
				}
			}()
			NewSender[int](0, cfg)
		}()
	}
}

func TestSenderStats(t *testing.T) {
	h := newSH(t, 0, SenderConfig{Window: 16})
	h.push(0, 5)
	h.ack(ms, 1, [2]int{4, 4})
	h.popAll(2 * ms)
	h.onAck(3*ms, Ack{Cum: 99})
	h.s.Drain(h.release)
	want := SenderStats{Pushed: 5, Acked: 2, Lost: 1, Retransmitted: 1, IgnoredAcks: 1, Released: 3}
	if got := h.s.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestSenderSteadyStateAllocs(t *testing.T) {
	s := NewSender[int](0, SenderConfig{Window: 64})
	now := time.Duration(0)
	release := func(Seq, int) {}
	ranges := []Range{{}}
	allocs := testing.AllocsPerRun(1000, func() {
		now += time.Microsecond
		a := s.Push(now, 1)
		s.Push(now, 2)
		ranges[0] = Range{a.Add(1), a.Add(1)}
		s.OnAck(now, Ack{Cum: a, Limit: a.Add(64), Ranges: ranges}, release)
		s.DetectLoss(now)
		s.PopLost(now)
		s.OnAck(now, Ack{Cum: a.Add(2), Limit: a.Add(66)}, release)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}

// A SACK range about half the sequence space away from Base passes every
// serial comparison with Base and Next (they are not transitive across
// 2^31) and must still be ignored: a hostile peer's ACK once made the
// Sender release slots it never filled.
func TestSenderSackHalfSpaceAway(t *testing.T) {
	forISNs(t, "half-space", func(t *testing.T, isn Seq) {
		for _, inFlight := range []int{0, 3} {
			h := newSH(t, isn, SenderConfig{Window: 16})
			h.push(0, inFlight)
			for _, start := range []int{1<<31 - 1, 1 << 31, 1<<31 + 1, -(1 << 31) + 2} {
				res := h.ack(ms, 0, [2]int{inFlight + start, inFlight + start + 0x100000})
				if res.Acked != 0 || len(h.released) != 0 {
					t.Fatalf("range at next%+d acknowledged %d records", start, res.Acked)
				}
			}
			h.check()
		}
	})
}
