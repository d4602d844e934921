// Package peers benchmarks what a user would pick instead of cnlink, on
// the same machine and with the same messages and checks as the suite in
// github.com/cnlink/cnlink/bench:
//
//   - BenchmarkSeqpacket/size=N: a unix SOCK_SEQPACKET connection (Go's
//     "unixpacket"), one Write per message: reliable, ordered, with
//     message boundaries, but only between processes on one host and
//     with no request/reply or session semantics.
//   - BenchmarkTCPBuffered/size=N: TCP over loopback with a 64 KiB
//     bufio.Writer and a 4-byte length prefix per message: a stream, so
//     it coalesces everything; the framing is the application's job.
//   - BenchmarkKCP/loss=P/size=N: github.com/xtaci/kcp-go/v5 over UDP
//     loopback in fast mode (NoDelay(1, 10, 2, 1), 1024-packet windows),
//     no FEC, no encryption, with P percent of the datagrams each side
//     sends dropped by LossyConn, as the fault injector drops cnlink's.
//
// It is a separate module so that the library's users never download
// kcp-go, gonum/plot or benchstat. The report generator that runs both
// suites and writes docs/BENCHMARKS.md lives in cmd/report.
package peers
