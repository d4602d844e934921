// Package memnet is an in-memory netlink network that queues, drops and
// refuses datagrams the way the Linux kernel does for NETLINK_CONNECTOR
// sockets, so that the reliable engine can be tested fast and
// deterministically, inside testing/synctest bubbles, and still meet the
// kernel's traps (docs/PLATFORM.md §2-§5, and §9 for the queue
// accounting). The conformance suite in transport/transporttest runs
// against it and against the real kernel.
//
// # Queueing
//
// Each Conn has a receive queue with a byte budget (sk_rcvbuf, default
// 212992). A datagram is charged its kernel skb truesize (see Truesize:
// 832 bytes for anything up to 256 bytes, then power-of-two slab sizes plus
// 256), not its length, so the number of datagrams that fit matches the
// kernel's. SetReadBuffer doubles its argument and enforces a 2304-byte
// minimum, as SO_RCVBUF(FORCE) does. The kernel accepts a datagram when
// the queue is empty (whatever its size) or when the charge stays within
// the budget.
//
// # Unicast
//
// Unicast has backpressure and no loss: when the destination's queue
// cannot take the datagram, Send fails at once with ErrPeerBusy (EAGAIN)
// and nothing is queued; it never blocks, and nothing tells the sender
// when the peer drains. A port nobody holds, or held by a Conn connected
// to another peer, is ErrPeerGone (ECONNREFUSED). A datagram sent to port
// 0 goes to the kernel, which swallows it (see Config.Kernel).
//
// # Multicast and overruns
//
// A multicast reaches every member of the group except the sender. A
// member whose queue cannot take it loses it, and the first such loss
// marks the member congested and arms one overrun report
// (NETLINK_S_CONGESTED and ENOBUFS): its next Receive returns
// Packet{Overrun: true} before any queued datagram, and every later
// multicast to it is dropped, and every unicast refused with ErrPeerBusy,
// until a Receive has left its queue empty. An address with both a Group
// and a Port multicasts to the members other than Port, then unicasts to
// Port; every copy reports the group. Kernel-originated unicasts (Inject
// from port 0) that do not fit are lost with an overrun too.
//
// # Trust
//
// Packet.From is the sending Conn's port whatever the frames say, and
// Packet.Creds are stamped by the network (Config.Creds). Inject sends as
// any port, including 0, the kernel: that is how tests play cn_proc, a
// squatter on a reused port or a restarted peer. Ports are reused: Open(0)
// hands out the lowest free port, so a just-closed port comes back at
// once.
//
// # Divergences from the kernel
//
// memnet has no permissions (every Conn may send to ports and groups, as
// with CAP_NET_ADMIN, and join even groups), no namespaces, no
// NETLINK_NO_ENOBUFS, and no connector callbacks other than Config.Kernel.
// Autobind picks the lowest free port, not the process ID followed by
// random ports. The kernel charges and frees memory when skbs are freed,
// which can lag a recvmsg by microseconds; memnet frees on dequeue.
//
// # Cost
//
// One mutex per Network guards everything; a Conn starts no goroutine.
// Queued copies come from a free list, so a send and receive allocate
// nothing in steady state.
package memnet
