package window

import "math/rand/v2"

// Seq is a 32-bit sequence number. Sequence numbers wrap around 2^32, so they
// are compared with serial number arithmetic (RFC 1982) rather than as plain
// integers: a is less than b when the distance from a forward to b is shorter
// than half the number space.
//
// RFC 1982 section 3.2 leaves the comparison undefined for two numbers exactly
// 2^31 apart. Seq defines it (int32(a-b) < 0, so a.Less(a.Add(1<<31)) is
// false and a.Add(1<<31).Less(a) is true), which only matters for a hostile
// peer: every honest window in this package is far smaller than 2^31 (see
// MaxWindow), so honest numbers are never that far apart.
type Seq uint32

// Less reports whether a comes before b in serial number order.
func (a Seq) Less(b Seq) bool { return int32(a-b) < 0 }

// LessEq reports whether a comes before b or is b.
func (a Seq) LessEq(b Seq) bool { return int32(a-b) <= 0 }

// Add returns a advanced by n (n may be negative), wrapping around 2^32
// (RFC 1982 section 3.1).
func (a Seq) Add(n int) Seq { return a + Seq(uint32(n)) }

// Sub returns the signed serial distance a-b: positive when a comes after b.
// The result lies in [-2^31, 2^31).
func (a Seq) Sub(b Seq) int { return int(int32(a - b)) }

// RandomSeq returns a random initial sequence number. A random start makes a
// stale or forged frame from a previous session unlikely to fall inside the
// current window.
func RandomSeq() Seq { return Seq(rand.Uint32()) }

// Range is the inclusive range [Start, End] of sequence numbers. A Range
// whose End comes before its Start (in serial order) is malformed; the
// functions of this package ignore malformed ranges received from a peer.
type Range struct{ Start, End Seq }

// Len returns the number of sequence numbers in r, or 0 if r is malformed.
func (r Range) Len() int {
	n := r.End.Sub(r.Start)
	if n < 0 {
		return 0
	}
	return n + 1
}

// Contains reports whether s lies in r.
func (r Range) Contains(s Seq) bool { return r.Start.LessEq(s) && s.LessEq(r.End) }
