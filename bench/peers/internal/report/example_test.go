package report_test

import (
	"fmt"
	"strings"

	"github.com/cnlink/cnlink/bench/peers/internal/report"
)

// Parse reads `go test -bench` output; Targets checks the performance
// targets (docs/ARCHITECTURE.md §6, issues 14 and 15) on the medians.
// Benchmarks the run did not include count as not measured.
func Example() {
	out := `pkg: github.com/cnlink/cnlink/bench
BenchmarkRawNetlink/size=256-2       1000  1700 ns/op  588000 msgs/s
BenchmarkReliable/loss=0/size=256-2  1000   300 ns/op  3300000 msgs/s
BenchmarkReliable/loss=0/size=256-2  1000   310 ns/op  3200000 msgs/s
BenchmarkReliable/loss=0/size=256-2  1000   290 ns/op  3400000 msgs/s
BenchmarkSessions/n=1-2              1000   260 ns/op  3800000 msgs/s  40960 B/session
BenchmarkSessions/n=1000-2           1000   310 ns/op  3230000 msgs/s  44032 B/session
`
	r, err := report.Parse(strings.NewReader(out), "example.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	med, _ := r.Median(report.ReliableName(0, 256), report.UnitMsgs)
	fmt.Println("median:", report.Rate(med), "msgs/s")
	t := r.Targets()[0]
	fmt.Println(t.What)
	fmt.Println(t.GotString(), t.WantString(), t.Margin(), t.Pass())
	fmt.Println(r.Targets()[1].GotString(), r.Targets()[1].Pass())
	for _, t := range r.Targets() {
		if strings.Contains(t.How, report.SessionsName(1000)) {
			fmt.Println(t.How+":", t.GotString(), t.WantString(), t.Margin(), t.Pass())
		}
	}
	// Output:
	// median: 3.30M msgs/s
	// 256 B, no loss: at least 5x raw netlink, one message per datagram
	// 5.61x >= 5.00x +12% true
	// — false
	// Sessions/n=1000 ÷ Sessions/n=1 (msgs/s): 0.85x >= 0.80x +6% true
	// Sessions/n=1000 (B/session): 43.0 KiB <= 16.0 KiB -169% false
}
