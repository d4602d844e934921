package repair

import "github.com/cnlink/cnlink/window"

// Spans is a small set of MSNs held as disjoint, non-adjacent inclusive
// ranges in ascending (serial) order, with a cap: an Add beyond it merges
// the two closest ranges, so the set may grow to cover numbers nobody
// asked for (a repair of a message the subscriber has is a duplicate it
// drops) but never forgets one it was given. That is the right failure
// for a repair queue, where window.RangeSet's (forget the oldest) is not.
type Spans struct {
	r   []window.Range
	max int
}

// NewSpans returns an empty set of at most maxRanges ranges (>= 1).
func NewSpans(maxRanges int) Spans {
	return Spans{max: max(1, maxRanges)}
}

// Len returns the number of ranges.
func (s *Spans) Len() int { return len(s.r) }

// At returns the i-th range, lowest first.
func (s *Spans) At(i int) window.Range { return s.r[i] }

// Empty reports whether the set is empty.
func (s *Spans) Empty() bool { return len(s.r) == 0 }

// Min returns the lowest number.
func (s *Spans) Min() (window.Seq, bool) {
	if len(s.r) == 0 {
		return 0, false
	}
	return s.r[0].Start, true
}

// Count returns how many numbers the set holds.
func (s *Spans) Count() int {
	n := 0
	for _, r := range s.r {
		n += r.Len()
	}
	return n
}

// Reset empties the set.
func (s *Spans) Reset() { s.r = s.r[:0] }

// Add adds rg (ignored if End is before Start).
func (s *Spans) Add(rg window.Range) {
	if rg.End.Less(rg.Start) {
		return
	}
	// First range that ends at or after rg.Start-1 (touching merges).
	i := 0
	for i < len(s.r) && s.r[i].End.Add(1).Less(rg.Start) {
		i++
	}
	j := i
	for j < len(s.r) && s.r[j].Start.LessEq(rg.End.Add(1)) {
		if s.r[j].Start.Less(rg.Start) {
			rg.Start = s.r[j].Start
		}
		if rg.End.Less(s.r[j].End) {
			rg.End = s.r[j].End
		}
		j++
	}
	switch {
	case i == j:
		s.r = append(s.r, window.Range{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = rg
	default:
		s.r[i] = rg
		s.r = append(s.r[:i+1], s.r[j:]...)
	}
	for len(s.r) > s.max {
		s.mergeClosest()
	}
}

func (s *Spans) mergeClosest() {
	best, gap := 0, -1
	for i := 0; i+1 < len(s.r); i++ {
		if g := s.r[i+1].Start.Sub(s.r[i].End); gap < 0 || g < gap {
			best, gap = i, g
		}
	}
	s.r[best].End = s.r[best+1].End
	s.r = append(s.r[:best+1], s.r[best+2:]...)
}

// Remove removes every number of rg.
func (s *Spans) Remove(rg window.Range) {
	if rg.End.Less(rg.Start) {
		return
	}
	var buf [2 * DefaultMaxRanges]window.Range
	out := buf[:0]
	for _, r := range s.r {
		if r.End.Less(rg.Start) || rg.End.Less(r.Start) {
			out = append(out, r)
			continue
		}
		if r.Start.Less(rg.Start) {
			out = append(out, window.Range{Start: r.Start, End: rg.Start - 1})
		}
		if rg.End.Less(r.End) {
			out = append(out, window.Range{Start: rg.End + 1, End: r.End})
		}
	}
	s.r = append(s.r[:0], out...)
	for len(s.r) > s.max {
		// A split went over the cap: merging gives back numbers just
		// removed (a repair sent twice), never loses one.
		s.mergeClosest()
	}
}

// RemoveBelow removes every number before x.
func (s *Spans) RemoveBelow(x window.Seq) {
	k := 0
	for _, r := range s.r {
		if r.End.Less(x) {
			continue
		}
		if r.Start.Less(x) {
			r.Start = x
		}
		s.r[k] = r
		k++
	}
	s.r = s.r[:k]
}
