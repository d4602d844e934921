package torture

import "fmt"

// Message contents. Message i of a stream is a pure function of the
// stream's key and i: its size and every byte, each byte depending on its
// position, so that a receiver can check a message without any header in
// it (1-byte messages are checked too, with a 1/256 chance of missing a
// swap with a neighbour) and a replay sends the same bytes.

// splitmix is SplitMix64's finalizer: a cheap, well-mixed hash.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// stream describes the messages one side sends on one session.
type stream struct {
	key  uint64
	max  int     // largest message: the smaller MaxMessage of the two endpoints
	bigP float64 // probability that a message is drawn up to max rather than small
}

// replies is the stream of the replies the peer sends to this stream's
// requests: reply to request i is message i of it.
func (st stream) replies() stream {
	return stream{key: splitmix(st.key ^ 0x5245504c494553), max: st.max, bigP: st.bigP / 2}
}

func (st stream) base(i int) uint64 { return splitmix(st.key ^ splitmix(uint64(i)+0x51ed27)) }

// size is the length of message i: mostly up to 32 bytes, a quarter up to
// 512, and with probability bigP anything up to max.
func (st stream) size(i int) int {
	h := st.base(i)
	u := float64(h>>11) / (1 << 53)
	v := splitmix(h)
	switch {
	case u < st.bigP:
		return 1 + int(v%uint64(st.max))
	case u < st.bigP+0.25:
		return 1 + int(v%uint64(min(st.max, 512)))
	default:
		return 1 + int(v%uint64(min(st.max, 32)))
	}
}

// word is the j-th 8-byte word of message i's contents.
func word(base uint64, j int) uint64 { return splitmix(base + uint64(j)*0x2545f4914f6cdd1d) }

// appendMsg appends message i to dst.
func (st stream) appendMsg(dst []byte, i int) []byte {
	n, base := st.size(i), st.base(i)
	for j := 0; j < n; j += 8 {
		w := word(base, j>>3)
		for k := 0; k < 8 && j+k < n; k++ {
			dst = append(dst, byte(w>>(8*k)))
		}
	}
	return dst
}

// matches reports whether b is exactly message i.
func (st stream) matches(b []byte, i int) bool {
	if len(b) != st.size(i) {
		return false
	}
	base := st.base(i)
	for j := 0; j < len(b); j += 8 {
		w := word(base, j>>3)
		for k := 0; k < 8 && j+k < len(b); k++ {
			if b[j+k] != byte(w>>(8*k)) {
				return false
			}
		}
	}
	return true
}

// identify names what b is when it is not the expected message want: the
// nearest message of the same kind that it is (positions lists the stream positions
// of that kind, k is want's rank among them), or garbage.
func (st stream) identify(b []byte, positions []int, k int) string {
	for d := 1; d <= len(positions); d++ {
		for _, j := range []int{k + d, k - d} {
			if j >= 0 && j < len(positions) && st.matches(b, positions[j]) {
				if j < k {
					return fmt.Sprintf("message %d again (duplicate or reordering)", positions[j])
				}
				return fmt.Sprintf("message %d instead (%d lost or reordered)", positions[j], j-k)
			}
		}
	}
	return fmt.Sprintf("%d bytes matching no message of the stream (corrupted, truncated or foreign)", len(b))
}
