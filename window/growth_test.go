package window

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// The rings start small and grow as used. These tests check that growth
// changes nothing a caller can see: a Sender or Receiver whose rings start at
// one slot behaves exactly as one whose rings are whole from the start.

// FuzzSenderReceiverGrowth is FuzzSenderReceiver with rings that start at one
// slot, so that they grow as often as they can: every doubling from 1 to the
// window, with records in flight, lost, SACKed and retired, across 2^32. It
// starts from the seeds and the committed corpus of FuzzSenderReceiver.
func FuzzSenderReceiverGrowth(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	for _, seed := range readCorpus(f, "FuzzSenderReceiver") {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzOpsRing(t, data, 1)
	})
}

// readCorpus returns the []byte inputs of the committed corpus of a fuzz
// target.
func readCorpus(tb testing.TB, target string) [][]byte {
	tb.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
			!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			tb.Fatalf("%s: not a one-[]byte corpus file", e.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			tb.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, []byte(s))
	}
	if len(out) == 0 {
		tb.Fatalf("no corpus in %s", dir)
	}
	return out
}

// senderPair drives a Sender whose ring is whole from the start (as they
// all were) and one whose ring starts at one slot, and checks that they
// answer alike, that they stay alike and that their invariants hold.
type senderPair struct {
	t           *testing.T
	whole, lazy *Sender[int]
}

func newSenderPair(t *testing.T, isn Seq, cfg SenderConfig) *senderPair {
	c := cfg.withDefaults()
	p := &senderPair{t: t, whole: newSender[int](isn, cfg, ringSize(c.Window)), lazy: newSender[int](isn, cfg, 1)}
	if len(p.whole.recs) != ringSize(c.Window) || len(p.lazy.recs) != 1 {
		t.Fatalf("rings of %d and %d", len(p.whole.recs), len(p.lazy.recs))
	}
	return p
}

// same checks that the two answered alike.
func (p *senderPair) same(what string, a, b any) {
	p.t.Helper()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		p.t.Fatalf("%s: whole ring %v, growing ring %v", what, a, b)
	}
}

// state checks that the two are alike, and sound, after what.
func (p *senderPair) state(what string) {
	p.t.Helper()
	for _, s := range []*Sender[int]{p.whole, p.lazy} {
		if err := s.check(); err != nil {
			p.t.Fatalf("after %s: ring of %d: %v", what, len(s.recs), err)
		}
	}
	w, l := p.whole, p.lazy
	ws := fmt.Sprint(w.Base(), w.Next(), w.Limit(), w.InFlight(), w.Lost(), w.CanSend(), w.PacketThreshold(), w.ReorderWindow(), w.Stats())
	ls := fmt.Sprint(l.Base(), l.Next(), l.Limit(), l.InFlight(), l.Lost(), l.CanSend(), l.PacketThreshold(), l.ReorderWindow(), l.Stats())
	if ws != ls {
		p.t.Fatalf("after %s: whole ring %s, growing ring %s", what, ws, ls)
	}
	wd, wok := w.LossDeadline()
	ld, lok := l.LossDeadline()
	wo, wook := w.OldestSentAt()
	lo, look := l.OldestSentAt()
	if wd != ld || wok != lok || wo != lo || wook != look {
		p.t.Fatalf("after %s: deadlines %v %v %v %v, growing ring %v %v %v %v", what, wd, wok, wo, wook, ld, lok, lo, look)
	}
}

func (p *senderPair) push(now time.Duration, v int) Seq {
	p.t.Helper()
	a, b := p.whole.Push(now, v), p.lazy.Push(now, v)
	if a != b {
		p.t.Fatalf("Push: whole ring %#x, growing ring %#x", uint32(a), uint32(b))
	}
	return a
}

func (p *senderPair) onAck(now time.Duration, a Ack) AckResult {
	p.t.Helper()
	var ra, rb []string
	x := p.whole.OnAck(now, a, func(s Seq, v int) { ra = append(ra, fmt.Sprint(s, v)) })
	y := p.lazy.OnAck(now, a, func(s Seq, v int) { rb = append(rb, fmt.Sprint(s, v)) })
	slices.Sort(ra)
	slices.Sort(rb)
	p.same(fmt.Sprintf("OnAck(%s) released", fmtAck(a)), ra, rb)
	p.same(fmt.Sprintf("OnAck(%s)", fmtAck(a)), x, y)
	p.state("OnAck")
	return x
}

func (p *senderPair) popLost(now time.Duration) (Seq, int, bool) {
	p.t.Helper()
	s1, v1, ok1 := p.whole.PopLost(now)
	s2, v2, ok2 := p.lazy.PopLost(now)
	if s1 != s2 || v1 != v2 || ok1 != ok2 {
		p.t.Fatalf("PopLost: whole ring %#x %d %v, growing ring %#x %d %v", uint32(s1), v1, ok1, uint32(s2), v2, ok2)
	}
	return s1, v1, ok1
}

// TestSenderGrowthRandom drives the pair with random operations, on either
// side of 2^32, with windows that end in rings from 1 slot to 512.
func TestSenderGrowthRandom(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			window := 1 + rng.IntN(400)
			isn := Seq(0xFFFFFFFF - uint32(rng.IntN(2*window+2)))
			p := newSenderPair(t, isn, SenderConfig{Window: window, ReorderWindowMin: -1})
			now := time.Duration(0)
			v := 0
			shrunk := 0
			for range 1500 {
				now += time.Duration(rng.IntN(200)) * time.Microsecond
				base, next := p.whole.Base(), p.whole.Next()
				span := next.Sub(base)
				pick := func() Seq { return base.Add(rng.IntN(span+4) - 2) }
				switch op := rng.IntN(13); {
				case op < 4: // push a burst, mostly a short one: the ring grows slowly
					for k := 1 + rng.IntN(1+rng.IntN(window)); k > 0 && p.whole.CanSend(); k-- {
						p.push(now, v)
						v++
					}
				case op < 7: // an Ack with SACK ranges and maybe a duplicate report
					a := Ack{Cum: base.Add(rng.IntN(max(span/4, 1) + 1))}
					if rng.IntN(4) == 0 {
						a.Cum = base // no cumulative progress, ranges only
					}
					a.Limit = a.Cum.Add(window)
					for range rng.IntN(5) {
						lo := pick()
						a.Ranges = append(a.Ranges, Range{lo, lo.Add(rng.IntN(8))})
					}
					if rng.IntN(3) == 0 {
						// Anywhere from two rings back to the span.
						a.DupValid, a.Dup = true, next.Add(-1-rng.IntN(2*ringSize(window)+2))
					}
					p.onAck(now, a)
				case op == 7:
					lo := pick()
					rg := Range{lo, lo.Add(rng.IntN(6))}
					p.same("MarkLost", p.whole.MarkLost(rg), p.lazy.MarkLost(rg))
				case op == 8:
					p.same("MarkAllLost", p.whole.MarkAllLost(), p.lazy.MarkAllLost())
				case op == 9:
					p.same("DetectLoss", p.whole.DetectLoss(now), p.lazy.DetectLoss(now))
				case op == 10:
					for k := rng.IntN(8); k > 0; k-- {
						p.popLost(now)
					}
				case op == 11:
					srtt := time.Duration(rng.IntN(20000)) * time.Microsecond
					p.whole.SetSRTT(srtt)
					p.lazy.SetSRTT(srtt)
				case op == 12: // everything acknowledged, then the growing ring shrinks
					a := Ack{Cum: next, Limit: next.Add(window)}
					if rng.IntN(2) == 0 {
						a.DupValid, a.Dup = true, next.Add(-1-rng.IntN(2*ringSize(window)+2))
					}
					p.onAck(now, a)
					if p.lazy.Shrink() {
						shrunk++
					}
				}
				p.state("the step")
			}
			t.Logf("window %d: ring grew to %d slots (shrunk %d times); %d retired now, room for %d", window, len(p.lazy.recs), shrunk, p.lazy.nretired, len(p.lazy.retired))
		})
	}
}

// TestReceiverGrowthRandom drives a Receiver whose ring is whole from the
// start and one whose ring starts at one slot with the same arrivals
// (reordered, duplicated, out of window), on either side of 2^32, and checks
// that they answer alike.
func TestReceiverGrowthRandom(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 9))
			window := 1 + rng.IntN(600)
			isn := Seq(0xFFFFFFFF - uint32(rng.IntN(2*window+2)))
			cfg := ReceiverConfig{Window: window, MaxRanges: 1 + rng.IntN(MaxAckRanges)}
			whole := newReceiver[int](isn, cfg, ringSize(window))
			lazy := newReceiver[int](isn, cfg, 1)
			same := func(what string, a, b any) {
				t.Helper()
				if fmt.Sprint(a) != fmt.Sprint(b) {
					t.Fatalf("%s: whole ring %v, growing ring %v", what, a, b)
				}
			}
			push := func(seq Seq) {
				t.Helper()
				if a, b := whole.Push(seq, int(seq)), lazy.Push(seq, int(seq)); a != b {
					t.Fatalf("Push(%#x): whole ring %v, growing ring %v", uint32(seq), a, b)
				}
			}
			state := func(what string) {
				t.Helper()
				for _, r := range []*Receiver[int]{whole, lazy} {
					if err := r.check(); err != nil {
						t.Fatalf("after %s: ring of %d: %v", what, len(r.vals), err)
					}
				}
				ws := fmt.Sprint(whole.Cum(), whole.NextPop(), whole.Buffered(), whole.Stats(), whole.AppendMissing(nil, 1<<30))
				ls := fmt.Sprint(lazy.Cum(), lazy.NextPop(), lazy.Buffered(), lazy.Stats(), lazy.AppendMissing(nil, 1<<30))
				if ws != ls {
					t.Fatalf("after %s: whole ring %s, growing ring %s", what, ws, ls)
				}
			}
			maxRing, shrunk := 0, 0
			for range 1500 {
				switch op := rng.IntN(10); {
				case op < 6:
					// Mostly within the window, sometimes just past it or
					// before NextPop.
					push(lazy.NextPop().Add(rng.IntN(window+window/8+2) - window/16 - 1))
				case op < 8:
					for k := rng.IntN(window/4 + 2); k > 0; k-- {
						v1, ok1 := whole.Pop()
						v2, ok2 := lazy.Pop()
						same("Pop", fmt.Sprint(v1, ok1), fmt.Sprint(v2, ok2))
					}
					if rng.IntN(3) == 0 && lazy.Shrink() { // only when it holds nothing
						shrunk++
					}
				case op == 8:
					backlog := rng.IntN(window+2) - 1
					if a, b := whole.Ack(backlog), lazy.Ack(backlog); !ackEqual(a, b) || len(a.Ranges) != len(b.Ranges) {
						t.Fatalf("Ack: whole ring %s, growing ring %s", fmtAck(a), fmtAck(b))
					}
				case op == 9 && rng.IntN(2) == 0:
					// A block from NextPop in random order, its first
					// number last: the ring fills to the brim, then Cum
					// jumps across it.
					m := 1 + rng.IntN(window)
					if rng.IntN(2) == 0 {
						m = min(pow2(m), window)
					}
					ks := rng.Perm(m)
					base := lazy.NextPop()
					for _, k := range ks {
						if k != 0 {
							push(base.Add(k))
						}
					}
					state("a block but its first")
					push(base)
				case op == 9 && rng.IntN(10) == 0:
					var a, b []int
					whole.Drain(func(v int) { a = append(a, v) })
					lazy.Drain(func(v int) { b = append(b, v) })
					same("Drain", a, b)
				}
				state("the step")
				maxRing = max(maxRing, len(lazy.vals))
			}
			if maxRing > pow2(window) {
				t.Errorf("ring grew to %d for a window of %d", maxRing, window)
			}
			t.Logf("window %d: ring grew to %d at most, shrunk %d times", window, maxRing, shrunk)
		})
	}
}

// TestSenderGrowthAcrossWrap grows a Sender's ring from one slot while
// records are in flight, SACKed and lost, and the span crosses 2^32, so that
// records and their bits move between the ends of the ring; the records, the
// lists and the bitmaps must come through intact.
func TestSenderGrowthAcrossWrap(t *testing.T) {
	const isn = Seq(0xFFFFFFFA) // 6 records before 2^32
	s := newSender[int](isn, SenderConfig{Window: 200, PacketThreshold: 3, ReorderWindowMin: -1}, 1)
	chk := func() {
		t.Helper()
		if err := s.check(); err != nil {
			t.Fatalf("ring of %d: %v", len(s.recs), err)
		}
	}
	released := map[Seq]int{}
	release := func(q Seq, v int) {
		if _, dup := released[q]; dup {
			t.Fatalf("%#x released twice", uint32(q))
		}
		if v != q.Sub(isn) {
			t.Fatalf("%#x released with %d", uint32(q), v)
		}
		released[q] = v
	}
	ms := time.Millisecond
	for k := range 10 {
		s.Push(time.Duration(k)*ms, k)
		chk()
	}
	// 10 in flight across 2^32: [isn, isn+10). SACK isn+3..isn+7: the packet
	// threshold declares isn..isn+2 lost (isn+7 was sent 3 or more after
	// them); isn+8, isn+9 stay in flight.
	res := s.OnAck(10*ms, Ack{Cum: isn, Limit: isn.Add(200), Ranges: []Range{{isn.Add(3), isn.Add(7)}}}, release)
	if res.Acked != 5 || res.NewlyLost != 3 || s.Lost() != 3 || s.InFlight() != 5 {
		t.Fatalf("OnAck = %+v, lost %d, in flight %d", res, s.Lost(), s.InFlight())
	}
	if len(s.recs) != 16 {
		t.Fatalf("ring of %d after 10 pushes from 1, want 16", len(s.recs))
	}
	chk()
	// Retransmit isn (it goes to the tail of the flight list), then grow
	// to 128 slots with more records.
	if q, v, ok := s.PopLost(11 * ms); !ok || q != isn || v != 0 {
		t.Fatalf("PopLost = %#x %d %v", uint32(q), v, ok)
	}
	for k := 10; k < 100; k++ {
		s.Push(time.Duration(k+2)*ms, k)
		chk()
	}
	if len(s.recs) != 128 || s.acked.size() != 128 || s.lost.size() != 128 {
		t.Fatalf("ring of %d, bitmaps %d %d, want 128", len(s.recs), s.acked.size(), s.lost.size())
	}
	// What was SACKed and lost before growing still is.
	for k := range 10 {
		q := isn.Add(k)
		if got, want := s.acked.get(q), k >= 3 && k <= 7; got != want {
			t.Errorf("%#x acked %v, want %v", uint32(q), got, want)
		}
		if got, want := s.lost.get(q), k == 1 || k == 2; got != want {
			t.Errorf("%#x lost %v, want %v", uint32(q), got, want)
		}
	}
	if s.Lost() != 2 || s.InFlight() != 95 {
		t.Fatalf("lost %d, in flight %d, want 2, 95", s.Lost(), s.InFlight())
	}
	// The lost list hands out isn+1, isn+2, lowest first; the flight list
	// starts with isn+8, isn+9 and ends with the retransmission of isn and
	// the new records, in transmission order.
	var flight []Seq
	for i := s.flight.head; i != noSlot; i = s.recs[i].next {
		flight = append(flight, s.recs[i].seq)
	}
	want := []Seq{isn.Add(8), isn.Add(9), isn}
	for k := 10; k < 100; k++ {
		want = append(want, isn.Add(k))
	}
	if !slices.Equal(flight, want) {
		t.Fatalf("flight list %v, want %v", flight, want)
	}
	for _, k := range []int{1, 2} {
		if q, v, ok := s.PopLost(200 * ms); !ok || q != isn.Add(k) || v != k {
			t.Fatalf("PopLost = %#x %d %v, want %#x", uint32(q), v, ok, uint32(isn.Add(k)))
		}
	}
	chk()
	// Acknowledge everything: every record released once, with its value.
	res = s.OnAck(300*ms, Ack{Cum: s.Next(), Limit: s.Next().Add(200)}, release)
	if res.Acked != 95 || len(released) != 100 || s.InFlight() != 0 || s.Base() != isn.Add(100) {
		t.Fatalf("OnAck = %+v, released %d, in flight %d", res, len(released), s.InFlight())
	}
	chk()
}

// TestSenderRetiredSpurious checks that a duplicate report is matched with a
// retransmitted record as far back as the whole ring would (horizon records
// before Next), though a small ring reused its slot long before, and no
// further back.
func TestSenderRetiredSpurious(t *testing.T) {
	ms := time.Millisecond
	const isn = Seq(0xFFFFFF00)
	for _, tt := range []struct {
		name  string
		after int // records pushed and acknowledged after the retransmission's record
		want  int // Spurious
	}{
		{"still in its slot", 0, 1},
		{"retired", 1, 1},
		{"retired long ago", 1000, 1},
		{"last within the horizon", 4096 - 1, 1},
		{"past the horizon", 4096, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newSenderPair(t, isn, SenderConfig{Window: 4096})
			// Record isn is lost and retransmitted; the original arrives
			// after all, so the receiver will report the retransmission
			// as a duplicate.
			p.push(0, 0)
			if n := p.whole.MarkAllLost(); n != 1 || p.lazy.MarkAllLost() != 1 {
				t.Fatal("MarkAllLost")
			}
			p.popLost(ms)
			p.onAck(2*ms, Ack{Cum: isn.Add(1), Limit: isn.Add(4097)})
			// One record at a time: the one-slot ring never grows, and the
			// first push retires the retransmitted record.
			for k := range tt.after {
				p.push(3*ms, k+1)
				p.onAck(3*ms, Ack{Cum: p.whole.Next(), Limit: p.whole.Next().Add(4096)})
			}
			if len(p.lazy.recs) != 1 {
				t.Fatalf("ring grew to %d", len(p.lazy.recs))
			}
			if tt.after >= 1 && tt.after < 4096 && p.lazy.nretired != 1 {
				t.Fatalf("%d retired, want 1", p.lazy.nretired)
			}
			res := p.onAck(4*ms, Ack{Cum: p.whole.Next(), Limit: p.whole.Next().Add(4096), DupValid: true, Dup: isn})
			if res.Spurious != tt.want {
				t.Fatalf("Spurious = %d, want %d", res.Spurious, tt.want)
			}
			// Counted once only.
			if res := p.onAck(4*ms, Ack{Cum: p.whole.Next(), Limit: p.whole.Next().Add(4096), DupValid: true, Dup: isn}); res.Spurious != 0 {
				t.Fatalf("second report: Spurious = %d", res.Spurious)
			}
		})
	}
}

// TestSenderRetiredExpire keeps a one-slot ring busy with a retransmission
// every tenth record, so that records retire steadily and leave the horizon
// steadily, and sends duplicate reports for all of them at all ages: they
// must be matched exactly as the whole ring matches them, and the retired
// list must stay as small as the horizon allows.
func TestSenderRetiredExpire(t *testing.T) {
	const window = 64 // horizon 64
	ms := time.Millisecond
	p := newSenderPair(t, 0xFFFFFF80, SenderConfig{Window: window})
	now := time.Duration(0)
	spurious := 0
	for k := range 1000 {
		now += ms
		q := p.push(now, k)
		if k%10 == 0 {
			p.same("MarkLost", p.whole.MarkLost(Range{q, q}), p.lazy.MarkLost(Range{q, q}))
			p.popLost(now)
		}
		a := Ack{Cum: q.Add(1), Limit: q.Add(1 + window)}
		if k%7 == 0 {
			// A duplicate report for a record up to two horizons back.
			a.DupValid, a.Dup = true, q.Add(-(k * 13 % (2 * window)))
		}
		spurious += p.onAck(now, a).Spurious
		if p.lazy.nretired > window/10+1 || len(p.lazy.retired) > 8 {
			t.Fatalf("after %d: %d retired in room for %d", k, p.lazy.nretired, len(p.lazy.retired))
		}
	}
	if len(p.lazy.recs) != 1 || spurious == 0 {
		t.Fatalf("ring of %d, %d spurious", len(p.lazy.recs), spurious)
	}
	// Nothing retires for more than a horizon: all expire at once.
	for k := range 2 * window {
		q := p.push(now, k)
		p.onAck(now, Ack{Cum: q.Add(1), Limit: q.Add(1 + window), DupValid: true, Dup: q.Add(-window)})
	}
	if !p.lazy.allExpired() {
		t.Fatal("retired entries outlived the horizon")
	}
	// The next to retire finds the list empty.
	q := p.push(now, 0)
	p.whole.MarkLost(Range{q, q})
	p.lazy.MarkLost(Range{q, q})
	p.popLost(now)
	p.onAck(now, Ack{Cum: q.Add(1), Limit: q.Add(1 + window)})
	p.push(now, 0)
	if p.lazy.nretired != 1 || p.lazy.retired[p.lazy.rhead].seq != q {
		t.Fatalf("%d retired", p.lazy.nretired)
	}
	if res := p.onAck(now, Ack{Cum: q.Add(2), Limit: q.Add(2 + window), DupValid: true, Dup: q}); res.Spurious != 1 {
		t.Fatalf("Spurious = %d", res.Spurious)
	}
	t.Logf("%d spurious retransmissions found", spurious)
}

// TestReceiverGrowthKeepsReorderBuffer grows a Receiver's ring while it holds
// values out of order across 2^32: the values, the SACK ranges and the gaps
// must come through intact, and the values pop in order once the gaps fill.
func TestReceiverGrowthKeepsReorderBuffer(t *testing.T) {
	const isn = Seq(0xFFFFFFF8) // 8 numbers before 2^32
	r := NewReceiver[int](isn, ReceiverConfig{Window: 4096, MaxRanges: 16})
	if len(r.vals) != minRing {
		t.Fatalf("ring of %d, want %d", len(r.vals), minRing)
	}
	push := func(k int) {
		t.Helper()
		if v := r.Push(isn.Add(k), k); v != Accepted {
			t.Fatalf("Push(isn+%d) = %v", k, v)
		}
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
	}
	// Held: 1, 3..5 (before 2^32), 7..10 (across it), 14; missing 0, 2, 6,
	// 11..13.
	held := []int{14, 3, 4, 5, 1, 7, 8, 9, 10}
	for _, k := range held {
		push(k)
	}
	before := r.Ack(0).Clone()
	missing := r.AppendMissing(nil, 100)
	// Far ahead: the ring doubles to 64, then 256, then 4096.
	push(40)
	push(200)
	push(4095)
	if len(r.vals) != 4096 || r.have.size() != 4096 {
		t.Fatalf("ring of %d, bitmap of %d, want 4096", len(r.vals), r.have.size())
	}
	if r.Push(isn.Add(4096), 0) != OutOfWindow || r.Push(isn.Add(7), 0) != Duplicate {
		t.Fatal("window edge or duplicate misjudged after growth")
	}
	after := r.Ack(0)
	// The most recent arrival first, then the others from the highest
	// down: the new ranges, then the old ones, unchanged.
	wantRanges := []Range{{isn.Add(4095), isn.Add(4095)}, {isn.Add(200), isn.Add(200)}, {isn.Add(40), isn.Add(40)}}
	old := slices.Clone(before.Ranges)
	slices.SortFunc(old, func(a, b Range) int { return b.Start.Sub(a.Start) })
	wantRanges = append(wantRanges, old...)
	if len(wantRanges) != 7 {
		t.Fatalf("ranges before growth: %s", fmtAck(before))
	}
	if after.Cum != isn || !slices.Equal(after.Ranges, wantRanges) {
		t.Fatalf("Ack after growth %s, want cum %#x ranges %v (before: %s)", fmtAck(after), uint32(isn), wantRanges, fmtAck(before))
	}
	if got := r.AppendMissing(nil, len(missing)); !slices.Equal(got, missing) {
		t.Fatalf("gaps after growth %v, want %v", got, missing)
	}
	// Fill the gaps below 15: everything up to 14 pops, in order.
	for _, k := range []int{0, 2, 6, 11, 12, 13} {
		push(k)
	}
	for k := range 15 {
		if v, ok := r.Pop(); !ok || v != k {
			t.Fatalf("Pop = %d %v, want %d", v, ok, k)
		}
	}
	if _, ok := r.Pop(); ok || r.Cum() != isn.Add(15) || r.Buffered() != 3 {
		t.Fatalf("after popping: cum %#x buffered %d", uint32(r.Cum()), r.Buffered())
	}
}

// footprintMsg is the size of what the engine keeps per message: a pointer
// for the sender, a slice and a few fields for the receiver (reliable's
// rxItem: data, seq, ack, type, flags). Only its size matters, so the
// fields the test does not set are blank.
type footprintMsg struct {
	_   []byte
	seq uint32
	_   uint32
	_   uint8
	_   uint16
}

// TestFootprint checks that a fresh Sender and Receiver cost a few hundred
// bytes whatever the window, and that they grow to the whole window when it
// is used.
func TestFootprint(t *testing.T) {
	const window = 4096
	s := NewSender[*footprintMsg](0xFFFFF000, SenderConfig{Window: window})
	r := NewReceiver[footprintMsg](0xFFFFF000, ReceiverConfig{Window: window, MaxRanges: 16})
	sb := NewSender[[]byte](0, SenderConfig{Window: window})
	fs, fr, fb := s.Footprint(), r.Footprint(), sb.Footprint()
	t.Logf("fresh, window %d: Sender[*T] %d bytes, Sender[[]byte] %d bytes, Receiver[%d-byte T] %d bytes",
		window, fs, fb, unsafeSizeof[footprintMsg](), fr)
	for name, n := range map[string]int{"Sender[*T]": fs, "Sender[[]byte]": fb, "Receiver": fr} {
		if n >= 4<<10 {
			t.Errorf("fresh %s: Footprint %d bytes, want below 4 KiB", name, n)
		}
	}
	// A full window in flight, then acknowledged.
	m := &footprintMsg{}
	for s.CanSend() {
		q := s.Push(0, m)
		r.Push(q, footprintMsg{seq: uint32(q)})
	}
	if s.InFlight() != window || r.Buffered() != window {
		t.Fatalf("in flight %d, buffered %d", s.InFlight(), r.Buffered())
	}
	full := s.Footprint()
	for {
		if _, ok := r.Pop(); !ok {
			break
		}
	}
	s.OnAck(0, r.Ack(0), func(Seq, *footprintMsg) {})
	if s.InFlight() != 0 || s.Footprint() != full {
		t.Fatalf("in flight %d, footprint %d then %d", s.InFlight(), full, s.Footprint())
	}
	t.Logf("after a full window: Sender[*T] %d bytes (%d slots), Receiver %d bytes (%d slots)", s.Footprint(), len(s.recs), r.Footprint(), len(r.vals))
	if len(s.recs) != window || len(r.vals) != window {
		t.Errorf("rings of %d and %d slots after a full window, want %d", len(s.recs), len(r.vals), window)
	}
	recSize, valSize := unsafeSizeof[sentRecord[*footprintMsg]](), unsafeSizeof[footprintMsg]()
	if want := window*recSize + 2*window/8; s.Footprint() != want {
		t.Errorf("Sender Footprint %d, want %d", s.Footprint(), want)
	}
	if want := window*valSize + window/8 + 16*8; r.Footprint() != want {
		t.Errorf("Receiver Footprint %d, want %d", r.Footprint(), want)
	}
	// One message at a time needs no more than the first ring.
	s2 := NewSender[*footprintMsg](0, SenderConfig{Window: window})
	r2 := NewReceiver[footprintMsg](0, ReceiverConfig{Window: window})
	f2s, f2r := s2.Footprint(), r2.Footprint()
	for range 3 * window {
		q := s2.Push(0, m)
		r2.Push(q, footprintMsg{})
		r2.Pop()
		s2.OnAck(0, r2.Ack(0), func(Seq, *footprintMsg) {})
	}
	if s2.Footprint() != f2s || r2.Footprint() != f2r {
		t.Errorf("stop-and-wait: footprint %d and %d, was %d and %d", s2.Footprint(), r2.Footprint(), f2s, f2r)
	}
}

func unsafeSizeof[T any]() int {
	var v T
	return int(unsafe.Sizeof(v))
}

// TestGrownRingsDoNotAllocate checks that once the rings have grown to what
// the traffic needs, the steady state allocates nothing.
func TestGrownRingsDoNotAllocate(t *testing.T) {
	s := NewSender[*footprintMsg](0xFFFFFF00, SenderConfig{Window: 1024})
	r := NewReceiver[footprintMsg](0xFFFFFF00, ReceiverConfig{Window: 1024})
	m := &footprintMsg{}
	release := func(Seq, *footprintMsg) {}
	round := func() {
		// 256 in flight, the odd ones delivered first, then the rest.
		for range 256 {
			q := s.Push(0, m)
			if q&1 == 1 {
				r.Push(q, footprintMsg{})
			}
		}
		s.OnAck(0, r.Ack(0), release)
		for q := s.Base(); q != s.Next(); q++ {
			if q&1 == 0 {
				r.Push(q, footprintMsg{})
			}
		}
		for {
			if _, ok := r.Pop(); !ok {
				break
			}
		}
		s.OnAck(0, r.Ack(0), release)
	}
	round() // grows the rings to 256 slots
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Errorf("%v allocations per round of 256 messages once grown, want 0", n)
	}
	if len(s.recs) != 256 || len(r.vals) != 256 {
		t.Errorf("rings of %d and %d, want 256", len(s.recs), len(r.vals))
	}
}
