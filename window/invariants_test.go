package window

import "fmt"

// checkSender verifies the Sender's internal structures against one another:
// the two lists, the two bitmaps and the counters. It returns nil if they
// agree.
func (s *Sender[T]) check() error {
	span := s.next.Sub(s.base)
	if span < 0 || span > s.window {
		return fmt.Errorf("span %d out of [0, %d]", span, s.window)
	}
	if span > 0 && s.acked.get(s.base) {
		return fmt.Errorf("base %#x is acknowledged", uint32(s.base))
	}
	inSpan := func(q Seq) bool { return s.base.LessEq(q) && q.Less(s.next) }
	// Bits only inside [base, next).
	nacked, nlostBits := 0, 0
	for i := 0; i <= int(s.mask); i++ {
		q := s.base.Add(i)
		a, l := s.acked.get(q), s.lost.get(q)
		if i >= span {
			if a || l {
				return fmt.Errorf("bit set outside span at %#x (acked %v lost %v)", uint32(q), a, l)
			}
			continue
		}
		if a && l {
			return fmt.Errorf("%#x both acked and lost", uint32(q))
		}
		if a {
			nacked++
		}
		if l {
			nlostBits++
			if !s.lostFrom.Less(s.base) && q.Less(s.lostFrom) {
				return fmt.Errorf("lost %#x below lostFrom %#x", uint32(q), uint32(s.lostFrom))
			}
		}
		if s.recs[uint32(q)&s.mask].seq != q || s.recs[uint32(q)&s.mask].flags&fPushed == 0 {
			return fmt.Errorf("slot of %#x holds %#x", uint32(q), uint32(s.recs[uint32(q)&s.mask].seq))
		}
	}
	if span-nacked != s.unacked {
		return fmt.Errorf("unacked %d, want %d", s.unacked, span-nacked)
	}
	if nlostBits != s.nlost {
		return fmt.Errorf("nlost %d, lost bits %d", s.nlost, nlostBits)
	}
	walk := func(name string, l list, lost bool) (n int, first, last uint64, err error) {
		prev := noSlot
		for i := l.head; i != noSlot; i = s.recs[i].next {
			r := &s.recs[i]
			if r.prev != prev {
				return 0, 0, 0, fmt.Errorf("%s: bad prev link at slot %d", name, i)
			}
			if !inSpan(r.seq) || s.acked.get(r.seq) || s.lost.get(r.seq) != lost {
				return 0, 0, 0, fmt.Errorf("%s: %#x misplaced", name, uint32(r.seq))
			}
			if n > 0 && r.xmit <= last {
				return 0, 0, 0, fmt.Errorf("%s: transmission numbers not increasing", name)
			}
			if n == 0 {
				first = r.xmit
			}
			last = r.xmit
			n++
			if n > span {
				return 0, 0, 0, fmt.Errorf("%s: cycle", name)
			}
			prev = i
		}
		if l.tail != prev {
			return 0, 0, 0, fmt.Errorf("%s: bad tail", name)
		}
		return n, first, last, nil
	}
	nf, _, _, err := walk("flight", s.flight, false)
	if err != nil {
		return err
	}
	nl, _, _, err := walk("lost", s.lostList, true)
	if err != nil {
		return err
	}
	if nl != s.nlost || nf+nl != s.unacked {
		return fmt.Errorf("lists hold %d+%d, want %d+%d", nf, nl, s.unacked-s.nlost, s.nlost)
	}
	return nil
}

// check verifies the Receiver's internal structures.
func (r *Receiver[T]) check() error {
	if r.cum.Less(r.base) || r.cum.Sub(r.base) > r.window {
		return fmt.Errorf("cum %#x out of window from %#x", uint32(r.cum), uint32(r.base))
	}
	if r.highest.Less(r.cum.Add(-1)) {
		return fmt.Errorf("highest %#x before cum %#x", uint32(r.highest), uint32(r.cum))
	}
	n := 0
	for i := 0; i <= int(r.have.mask); i++ {
		q := r.base.Add(i)
		h := r.have.get(q)
		switch {
		case i >= r.window || r.highest.Less(q):
			if h {
				return fmt.Errorf("bit set at %#x outside window", uint32(q))
			}
		case q.Less(r.cum):
			if !h {
				return fmt.Errorf("%#x before cum not held", uint32(q))
			}
		case q == r.cum:
			if h {
				return fmt.Errorf("cum %#x held", uint32(q))
			}
		case q == r.highest:
			if !h {
				return fmt.Errorf("highest %#x not held", uint32(q))
			}
		}
		if h {
			n++
		}
	}
	if n != r.buffered {
		return fmt.Errorf("buffered %d, bits %d", r.buffered, n)
	}
	return nil
}
