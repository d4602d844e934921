// Package bench holds cnlink's benchmark suite and the helpers the suite
// shares with the benchmarks of the alternatives (in the nested module
// bench/peers, so that library users never download them).
//
// The benchmarks run over real netlink and need CAP_NET_ADMIN (root):
//
//   - BenchmarkRawNetlink/size=N: one connector message per datagram,
//     blocking sendto/recvfrom on two sockets, no protocol. The floor a
//     reliable layer that sends one datagram per message would sit on.
//   - BenchmarkRawNetlinkBatched/size=N: as many messages as fit in
//     64 KiB per datagram. The ceiling: what coalescing can reach.
//   - BenchmarkReliable/loss=P/size=N: a cnlink session between two
//     endpoints, with P percent of the datagrams each side sends dropped by
//     the fault injector (transport/fault).
//   - BenchmarkRequestReply and BenchmarkRawPingPong: one 64-byte message
//     out and back, reporting the p50-us and p99-us round trip;
//     BenchmarkRequestReplyLossy/loss=1 is the request/reply run with 1%
//     loss, whose p99 is what recovery costs a caller.
//   - BenchmarkSessions/n=N: N sessions on one accepting endpoint from up
//     to 4 dialing endpoints, default Config, 256-byte messages spread
//     over all of them: aggregate msgs/s, retrans/msg, and B/session, the
//     Go memory one idle established session end holds (B/session-after:
//     the same after the run).
//   - BenchmarkRawMulticast and BenchmarkMulticast/subs=N/rcvbuf=B: a
//     connector group with N subscribers, raw (loss allowed) and reliable
//     (package multicast), msgs/s per subscriber.
//
// Every benchmark sends b.N messages whose first 8 bytes carry their index
// (Stamp) and checks on the receiving side that all of them arrive once,
// in order and whole (Checker); it reports msgs/s, MB/s (b.SetBytes with
// the payload size) and allocations per message, and retrans/msg where
// the protocol retransmits; the reliable runs add dgrams/msg (datagrams
// the sender used per message: coalescing) and eagain/msg (sends that met
// a full peer queue). Sender and receiver run in one process, so
// allocs/op counts both ends.
//
// `make bench` runs the suite with benchstat and writes
// docs/BENCHMARKS.md; `make bench-smoke` runs every benchmark once.
package bench
