package proc

import (
	"fmt"
	"strings"
)

// AnyCPU in Loss.CPU means the report covers gaps on more than one CPU
// (reports merged while the application was not reading), or none.
const AnyCPU = ^uint32(0)

// Loss says how many events did not reach the application, and why. A
// Monitor delivers it as an Event of KindLost at the point in the stream
// where the loss was detected; the stream then goes on. Each counter is
// independent of the others, and counters of successive reports add up
// (Monitor.Stats holds the totals).
type Loss struct {
	// Missed counts events the kernel generated but this socket never
	// received, found from a gap in a CPU's sequence numbers. The count
	// is exact. It is zero when the subscription is filtered by the
	// kernel (Config.KernelFilter), whose filtered-out events also
	// consume sequence numbers, so that gaps no longer mean loss.
	Missed uint64
	// CPU is the CPU whose sequence had the gap, and FirstSeq the first
	// missing sequence number (the gap is FirstSeq .. FirstSeq+Missed-1).
	// CPU is AnyCPU and FirstSeq zero when the report merges several gaps
	// or has none.
	CPU, FirstSeq uint32
	// After and Before bound when the missed events happened, as kernel
	// timestamps (Event.Timestamp) of the events received around the
	// gap: the last one before it on that CPU and the one that revealed
	// it. The kernel takes the timestamp a little before it assigns the
	// sequence number, so treat the bounds as approximate by a scheduling
	// delay. Zero when Missed is zero.
	After, Before uint64

	// Overruns counts ENOBUFS reports: the socket's receive queue was full
	// and the kernel dropped events for it, an unknown number of them. It
	// is reported at once so that the application can start a resync
	// (see Snapshot) without waiting; the number of events the overrun
	// cost appears in the Missed of the reports that follow, as each
	// CPU's next event arrives, unless the subscription is kernel-filtered.
	Overruns uint64

	// Dropped counts events that reached this Monitor but were discarded
	// because the application did not keep up and the event buffer
	// (Config.Buffer) was full. The count is exact.
	Dropped uint64
}

// IsZero reports whether l reports nothing.
func (l *Loss) IsZero() bool { return l.Missed == 0 && l.Overruns == 0 && l.Dropped == 0 }

// add merges o into l. A merged report keeps a gap's CPU and first
// sequence number only while it holds a single gap; the time bounds widen
// to cover every merged gap.
func (l *Loss) add(o Loss) {
	switch {
	case l.Missed == 0:
		l.CPU, l.FirstSeq, l.After, l.Before = o.CPU, o.FirstSeq, o.After, o.Before
	case o.Missed != 0:
		l.CPU, l.FirstSeq = AnyCPU, 0
		l.After = min(l.After, o.After)
		l.Before = max(l.Before, o.Before)
	}
	l.Missed += o.Missed
	l.Overruns += o.Overruns
	l.Dropped += o.Dropped
	if l.Missed == 0 {
		l.CPU = AnyCPU
	}
}

// sub removes the counts of o, a copy of l delivered meanwhile, from l;
// what was added to l since the copy remains. If gaps remain, l keeps its
// location and time bounds: either they are exactly those of the gap
// added since (o had none), or l merged several gaps and already says
// AnyCPU, with bounds that still cover what remains.
func (l *Loss) sub(o Loss) {
	l.Missed -= o.Missed
	l.Overruns -= o.Overruns
	l.Dropped -= o.Dropped
	if l.Missed == 0 {
		l.CPU, l.FirstSeq, l.After, l.Before = AnyCPU, 0, 0, 0
	}
}

func (l Loss) String() string {
	var parts []string
	if l.Missed != 0 {
		if l.CPU != AnyCPU {
			parts = append(parts, fmt.Sprintf("missed=%d cpu=%d seq=%d", l.Missed, l.CPU, l.FirstSeq))
		} else {
			parts = append(parts, fmt.Sprintf("missed=%d", l.Missed))
		}
	}
	if l.Overruns != 0 {
		parts = append(parts, fmt.Sprintf("overruns=%d", l.Overruns))
	}
	if l.Dropped != 0 {
		parts = append(parts, fmt.Sprintf("dropped=%d", l.Dropped))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// maxTrackedCPUs bounds the per-CPU sequence table (the kernel's own
// NR_CPUS limit is 8192 on the largest configurations). Events from a
// higher CPU number are delivered but their gaps go undetected; the table
// grows only as far as the highest CPU seen, 16 bytes per CPU.
const maxTrackedCPUs = 8192

// seqTracker finds gaps in each CPU's event sequence numbers. The kernel
// numbers the events of each CPU consecutively (a per-CPU counter taken
// under a local lock that also covers the send, so one CPU's events are
// queued in order), and it numbers every event it generates, its answers
// to LISTEN requests included. For an unfiltered listener a gap is
// therefore exactly a lost event.
//
// It belongs to the Monitor's reader goroutine.
type seqTracker struct {
	cpus      []cpuSeq
	untracked uint64 // events from CPUs beyond maxTrackedCPUs
	backwards uint64 // events whose seq did not advance (never expected)
}

type cpuSeq struct {
	last  uint32
	ts    uint64 // timestamp of the event with seq last
	valid bool
}

// observe records event seq of cpu, stamped ts, and returns the gap it
// reveals: missed events starting at first, after the event stamped
// after. Sequence numbers are compared in 32-bit serial arithmetic (RFC
// 1982), so the counter's wrap is not a gap; a number that does not move
// forward is counted in backwards and leaves the state as it was.
func (t *seqTracker) observe(cpu, seq uint32, ts uint64) (missed uint64, first uint32, after uint64) {
	if cpu >= maxTrackedCPUs {
		t.untracked++
		return 0, 0, 0
	}
	if int(cpu) >= len(t.cpus) {
		t.cpus = append(t.cpus, make([]cpuSeq, int(cpu)+1-len(t.cpus))...)
	}
	c := &t.cpus[cpu]
	if !c.valid {
		*c = cpuSeq{last: seq, ts: ts, valid: true}
		return 0, 0, 0
	}
	d := seq - c.last // serial distance; 1 means no gap
	if d == 0 || d >= 1<<31 {
		t.backwards++
		return 0, 0, 0
	}
	missed, first, after = uint64(d-1), c.last+1, c.ts
	c.last, c.ts = seq, ts
	return missed, first, after
}
