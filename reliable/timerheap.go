package reliable

import (
	"container/heap"
	"time"
)

// timerHeap orders sessions by their next deadline so that the owner
// goroutine runs one time.Timer for the whole endpoint, whatever the number
// of sessions (no per-session ticking).
type timerHeap []*Session

const noDeadline = time.Duration(1<<63 - 1)

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *timerHeap) Push(x any) {
	s := x.(*Session)
	s.heapIdx = len(*h)
	*h = append(*h, s)
}
func (h *timerHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.heapIdx = -1
	return s
}

// schedule places s at deadline d (noDeadline removes it).
func (h *timerHeap) schedule(s *Session, d time.Duration) {
	s.deadline = d
	switch {
	case d == noDeadline && s.heapIdx >= 0:
		heap.Remove(h, s.heapIdx)
	case d == noDeadline:
	case s.heapIdx >= 0:
		heap.Fix(h, s.heapIdx)
	default:
		heap.Push(h, s)
	}
}

func (h timerHeap) earliest() time.Duration {
	if len(h) == 0 {
		return noDeadline
	}
	return h[0].deadline
}
