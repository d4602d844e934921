// Package report turns the output of the cnlink benchmark suite (bench/
// in the main module and bench/peers) into docs/BENCHMARKS.md and its
// charts: medians over the rounds of a run, same-run ratios between
// cnlink and each alternative, the performance targets (docs/ARCHITECTURE.md
// §6, issues 14 and 15) with pass or miss and the margin, and three PNG
// charts drawn with gonum/plot (throughput against message size, against
// injected loss, and throughput and memory per session against the number
// of sessions on one endpoint).
// cmd/report runs the suite and calls it; `make bench` runs cmd/report.
package report
