package window

// RangeSet is a set of sequence numbers held as disjoint, non-adjacent
// ranges in ascending order, with a cap on the number of ranges, in the
// manner of x/net/quic's rangeset and quic-go's received_packet_history.
// When an Add would go over the cap, the lowest range is dropped: the set
// remembers the most recent information and its memory stays bounded
// whatever is added.
//
// Sender and Receiver do not need it: each keeps a bitmap over its ring,
// which is exact. RangeSet is for state that is not a window of values,
// such as the gaps a multicast subscriber asks to have repaired (see
// Receiver.AppendMissing), or NACKs a publisher merges from many
// subscribers.
//
// Ordering is serial (RFC 1982), so every number in a set must lie within
// 2^31 of every other. A set fed numbers further apart gives meaningless
// answers, but never panics and never grows past its cap.
//
// The zero value is an empty set with a cap of DefaultMaxRanges. A RangeSet
// allocates once, on the first Add; after that nothing it does allocates.
type RangeSet struct {
	r   []Range
	max int
}

// NewRangeSet returns an empty set that holds at most maxRanges ranges.
// It panics if maxRanges < 1.
func NewRangeSet(maxRanges int) *RangeSet {
	if maxRanges < 1 {
		panic("window: NewRangeSet with maxRanges < 1")
	}
	return &RangeSet{r: make([]Range, 0, maxRanges+1), max: maxRanges}
}

// Len returns the number of ranges in the set.
func (s *RangeSet) Len() int { return len(s.r) }

// At returns the i-th range, in ascending order.
func (s *RangeSet) At(i int) Range { return s.r[i] }

// Min returns the lowest number in the set.
func (s *RangeSet) Min() (Seq, bool) {
	if len(s.r) == 0 {
		return 0, false
	}
	return s.r[0].Start, true
}

// Max returns the highest number in the set.
func (s *RangeSet) Max() (Seq, bool) {
	if len(s.r) == 0 {
		return 0, false
	}
	return s.r[len(s.r)-1].End, true
}

// Reset empties the set, keeping its memory.
func (s *RangeSet) Reset() { s.r = s.r[:0] }

// Contains reports whether x is in the set.
func (s *RangeSet) Contains(x Seq) bool {
	i := s.searchEnd(x)
	return i < len(s.r) && s.r[i].Start.LessEq(x)
}

// AddSeq adds x to the set.
func (s *RangeSet) AddSeq(x Seq) { s.Add(Range{x, x}) }

// Add adds every number of rg to the set. A malformed range (End before
// Start) is ignored.
func (s *RangeSet) Add(rg Range) {
	if rg.End.Less(rg.Start) {
		return
	}
	if s.max == 0 {
		s.max = DefaultMaxRanges
	}
	if s.r == nil {
		s.r = make([]Range, 0, s.max+1)
	}
	n := len(s.r)
	// Fast paths: in-order arrivals extend or follow the highest range.
	if n == 0 || s.r[n-1].End.Add(1).Less(rg.Start) {
		s.r = append(s.r, rg)
		s.trim()
		return
	}
	if last := &s.r[n-1]; last.Start.LessEq(rg.Start) {
		if last.End.Less(rg.End) {
			last.End = rg.End
		}
		return
	}
	// i: the first range that ends at or after rg.Start-1 (it may merge).
	// j: the first range that starts after rg.End+1 (it cannot).
	i := s.searchEnd(rg.Start.Add(-1))
	j := i
	for j < n && s.r[j].Start.LessEq(rg.End.Add(1)) {
		j++
	}
	if i == j {
		s.r = append(s.r, Range{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = rg
		s.trim()
		return
	}
	if s.r[i].Start.Less(rg.Start) {
		rg.Start = s.r[i].Start
	}
	if rg.End.Less(s.r[j-1].End) {
		rg.End = s.r[j-1].End
	}
	s.r[i] = rg
	s.r = append(s.r[:i+1], s.r[j:]...)
}

// RemoveBelow removes every number before x.
func (s *RangeSet) RemoveBelow(x Seq) {
	i := s.searchEnd(x)
	if i < len(s.r) && s.r[i].Start.Less(x) {
		s.r[i].Start = x
	}
	if i > 0 {
		s.r = append(s.r[:0], s.r[i:]...)
	}
}

// AppendDescending appends to dst at most n ranges of the set, highest
// first, and returns the extended slice.
func (s *RangeSet) AppendDescending(dst []Range, n int) []Range {
	for i := len(s.r) - 1; i >= 0 && n > 0; i-- {
		dst = append(dst, s.r[i])
		n--
	}
	return dst
}

// searchEnd returns the index of the first range whose End is at or after
// x, or Len if there is none.
func (s *RangeSet) searchEnd(x Seq) int {
	lo, hi := 0, len(s.r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.r[m].End.Less(x) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// trim drops the lowest ranges beyond the cap.
func (s *RangeSet) trim() {
	if over := len(s.r) - s.max; over > 0 {
		s.r = append(s.r[:0], s.r[over:]...)
	}
}
