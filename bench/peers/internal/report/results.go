package report

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"

	"golang.org/x/perf/benchfmt"
)

// Units as benchfmt tidies them.
const (
	UnitMsgs    = "msgs/s"
	UnitBytes   = "B/s" // MB/s in the test output
	UnitAllocs  = "allocs/op"
	UnitRetrans = "retrans/msg"
	UnitP50     = "p50-us"
	UnitP99     = "p99-us"
	// The multicast benchmarks' units (per subscriber).
	UnitDelivered = "delivered/msg"
	UnitRepairs   = "repairs/msg"
	UnitNaks      = "naks/msg"
	UnitOverruns  = "overruns"
	// BenchmarkSessions' units: resident bytes per idle session end,
	// established (before the throughput run) and after it.
	UnitSessionBytes      = "B/session"
	UnitSessionBytesAfter = "B/session-after"
)

// Results holds every measurement of a run, by benchmark name (without
// the Benchmark prefix and the -GOMAXPROCS suffix) and unit.
type Results struct {
	vals  map[string]map[string][]float64
	order []string
}

var procs = regexp.MustCompile(`-\d+$`)

// Parse reads Go benchmark output (several runs and packages may be
// concatenated).
func Parse(r io.Reader, fileName string) (*Results, error) {
	res := &Results{vals: make(map[string]map[string][]float64)}
	br := benchfmt.NewReader(r, fileName)
	for br.Scan() {
		switch rec := br.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, rec
		case *benchfmt.Result:
			name := procs.ReplaceAllString(rec.Name.String(), "")
			m := res.vals[name]
			if m == nil {
				m = make(map[string][]float64)
				res.vals[name] = m
				res.order = append(res.order, name)
			}
			for _, v := range rec.Values {
				m[v.Unit] = append(m[v.Unit], v.Value)
			}
		}
	}
	if err := br.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// Names lists the benchmarks in the order they first appeared.
func (r *Results) Names() []string { return slices.Clone(r.order) }

// Median returns the median of a benchmark's values in unit, and false
// when there are none.
func (r *Results) Median(name, unit string) (float64, bool) {
	v := r.vals[name][unit]
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// Max returns the largest of a benchmark's values in unit over every
// run, and false when there are none: a bound that no single run may
// break (a median would hide one that did).
func (r *Results) Max(name, unit string) (float64, bool) {
	v := r.vals[name][unit]
	if len(v) == 0 {
		return 0, false
	}
	return slices.Max(v), true
}

// Count is how many runs of a benchmark reported unit.
func (r *Results) Count(name, unit string) int { return len(r.vals[name][unit]) }

// Benchmark names of the suite, so that the report and the benchmarks
// agree in one place.
func RawName(size int) string            { return fmt.Sprintf("RawNetlink/size=%d", size) }
func RawBatchedName(size int) string     { return fmt.Sprintf("RawNetlinkBatched/size=%d", size) }
func ReliableName(loss, size int) string { return fmt.Sprintf("Reliable/loss=%d/size=%d", loss, size) }
func KCPName(loss, size int) string      { return fmt.Sprintf("KCP/loss=%d/size=%d", loss, size) }
func SeqpacketName(size int) string      { return fmt.Sprintf("Seqpacket/size=%d", size) }
func TCPName(size int) string            { return fmt.Sprintf("TCPBuffered/size=%d", size) }

// MulticastSubs are the subscriber counts of the multicast benchmarks,
// MulticastBigRcvbuf the receive buffer of their /rcvbuf= variants (the
// plain ones use 4 KiB), and MulticastTargetSubs the count the multicast
// target is set at.
var MulticastSubs = []int{1, 4, 16}

const (
	MulticastBigRcvbuf  = 65536
	MulticastTargetSubs = 16
)

// RawMulticastName and MulticastName name the multicast benchmarks with
// subs subscribers; rcvbuf 0 is the default 4 KiB buffer.
func RawMulticastName(subs, rcvbuf int) string { return multicastName("RawMulticast", subs, rcvbuf) }
func MulticastName(subs, rcvbuf int) string    { return multicastName("Multicast", subs, rcvbuf) }

func multicastName(prefix string, subs, rcvbuf int) string {
	if rcvbuf == 0 {
		return fmt.Sprintf("%s/subs=%d", prefix, subs)
	}
	return fmt.Sprintf("%s/subs=%d/rcvbuf=%d", prefix, subs, rcvbuf)
}

// SessionCounts are the session counts of BenchmarkSessions, and
// SessionsTargetN the one its targets are set at.
var SessionCounts = []int{1, 10, 100, 1000}

const SessionsTargetN = 1000

// SessionsName names BenchmarkSessions with n sessions on one endpoint.
func SessionsName(n int) string { return fmt.Sprintf("Sessions/n=%d", n) }

const (
	RequestReplyName      = "RequestReply"
	RequestReplyLossyName = "RequestReplyLossy/loss=1"
	RawPingPongName       = "RawPingPong"
)

// Impl is one transport in the size comparison.
type Impl struct {
	Label string
	Name  func(size int) string
}

// Impls are the transports compared at 0% loss, cnlink first.
var Impls = []Impl{
	{"cnlink reliable", func(s int) string { return ReliableName(0, s) }},
	{"raw netlink", RawName},
	{"raw netlink, batched", RawBatchedName},
	{"unix SOCK_SEQPACKET", SeqpacketName},
	{"TCP, buffered", TCPName},
	{"kcp-go", func(s int) string { return KCPName(0, s) }},
}
