// Package transporttest is the conformance suite every
// transport.Transport passes: the netlink adapter against the real
// kernel, transport/memnet, and transport/fault over memnet. It pins down
// the kernel behaviour the reliable engine depends on, so that the
// in-memory fakes cannot drift from it (docs/PLATFORM.md §2-§5):
//
//   - unicast is ordered and byte-exact; a full peer queue fails the send
//     with ErrPeerBusy at once and queues nothing; a closed port is
//     ErrPeerGone;
//   - multicast reaches every member except the sender; an address with
//     both a port and a group multicasts, then unicasts, one copy each;
//   - a member that overflows sees one overrun report before anything
//     else, loses multicasts until it has drained its queue, then
//     receives again;
//   - Packet.From is the kernel-stamped port whatever nlmsg_pid says;
//     credentials are real where the harness says so;
//   - Close unblocks Receive with ErrClosed and is safe twice; a short
//     buffer yields Truncated and consumes the datagram.
//
// The real kernel's groups are shared with every other process, so the
// suite uses random even groups and filters what it receives by a random
// marker in the payload. Run picks a random seed and names it in the
// subtest (seed=N); RunSeed replays one.
package transporttest
