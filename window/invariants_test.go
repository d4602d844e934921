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
	// Ring sizes: powers of two, the bitmaps as large as the ring and at
	// least 64, the ring no larger than the whole ring of old and large
	// enough for the span, room as Push computes it.
	if n := len(s.recs); n&(n-1) != 0 || int(s.mask) != n-1 || n > s.horizon || span > n || s.room != min(n, s.window) {
		return fmt.Errorf("ring of %d (mask %#x, room %d) for window %d, span %d", n, s.mask, s.room, s.window, span)
	}
	if s.acked.size() != max(len(s.recs), 64) || s.lost.size() != s.acked.size() ||
		int(s.acked.mask) != s.acked.size()-1 || int(s.lost.mask) != s.lost.size()-1 {
		return fmt.Errorf("bitmaps of %d and %d bits for a ring of %d", s.acked.size(), s.lost.size(), len(s.recs))
	}
	if err := s.checkRetired(); err != nil {
		return err
	}
	nretx := 0
	for i := range s.recs {
		if s.recs[i].flags&fRetx != 0 && len(s.recs) < s.horizon {
			nretx++
		}
	}
	if s.retxInRing != nretx {
		return fmt.Errorf("retxInRing %d, %d slots hold retransmitted records", s.retxInRing, nretx)
	}
	// Bits only inside [base, next).
	nacked, nlostBits := 0, 0
	for i := 0; i <= int(s.acked.mask); i++ {
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

// checkRetired verifies the retired list: increasing sequence numbers,
// retransmitted, out of the ring, and, unless all have expired, within twice
// the horizon of Next.
func (s *Sender[T]) checkRetired() error {
	if n := len(s.retired); n&(n-1) != 0 || s.nretired > n || s.nretired < 0 || n > 0 && (s.rhead < 0 || s.rhead >= n) {
		return fmt.Errorf("retired: %d entries from %d in %d", s.nretired, s.rhead, n)
	}
	if s.allExpired() {
		return nil
	}
	for k := range s.nretired {
		e := s.retired[(s.rhead+k)&(len(s.retired)-1)]
		// Push retires the record of Next-len(recs) and then pushes, so
		// its entries are 2 or more before Next; Shrink retires up to
		// Next-1.
		if d := s.next.Sub(e.seq); d < 1 || d > 2*s.horizon {
			return fmt.Errorf("retired: %#x is %d before next %#x", uint32(e.seq), d, uint32(s.next))
		}
		if e.flags&(fPushed|fRetx) != fPushed|fRetx {
			return fmt.Errorf("retired: %#x has flags %#x", uint32(e.seq), e.flags)
		}
		if k > 0 && !s.retired[(s.rhead+k-1)&(len(s.retired)-1)].seq.Less(e.seq) {
			return fmt.Errorf("retired: %#x out of order", uint32(e.seq))
		}
		if r := s.recs[uint32(e.seq)&s.mask]; r.flags&fPushed != 0 && r.seq == e.seq {
			return fmt.Errorf("retired: %#x still in the ring", uint32(e.seq))
		}
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
	if n := len(r.vals); n&(n-1) != 0 || int(r.vmask) != n-1 || n > ringSize(r.window) || r.room != min(n, r.window) ||
		r.have.size() != max(n, 64) || int(r.have.mask) != r.have.size()-1 {
		return fmt.Errorf("ring of %d (mask %#x), bitmap of %d, for window %d", n, r.vmask, r.have.size(), r.window)
	}
	n := 0
	for i := 0; i <= int(r.have.mask); i++ {
		q := r.base.Add(i)
		h := r.have.get(q)
		switch {
		case i >= r.window || i >= len(r.vals) || r.highest.Less(q):
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
