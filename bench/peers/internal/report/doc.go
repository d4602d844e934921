// Package report turns the output of the cnlink benchmark suite (bench/
// in the main module and bench/peers) into docs/BENCHMARKS.md and its
// charts: medians over the rounds of a run, same-run ratios between
// cnlink and each alternative, the performance targets of
// docs/ARCHITECTURE.md §6 with
// pass or miss and the margin, and two PNG charts drawn with gonum/plot
// (throughput against message size, and against injected loss).
// cmd/report runs the suite and calls it; `make bench` runs cmd/report.
package report
