// Package transport moves netlink connector datagrams: the nlmsghdr +
// cn_msg codec (several frames per datagram, 4-byte aligned, native
// endian), the Transport interface, and its NETLINK_CONNECTOR adapter
// built on github.com/mdlayher/netlink.
//
// It is the only package of cnlink that touches sockets. Siblings:
// transport/memnet (an in-memory network that behaves like the kernel and
// runs under testing/synctest), transport/fault (a seeded fault injector
// that wraps any Transport) and transport/transporttest (the conformance
// suite every implementation passes).
//
// Platform traps the adapter handles (docs/PLATFORM.md §1-§3 and §5): a
// non-blocking unicast to a full peer fails with EAGAIN and the kernel
// never wakes the sender, so Send never waits and returns ErrPeerBusy;
// ENOBUFS on receive means the kernel dropped multicast or
// kernel-originated messages and is reported as an Overrun packet, not a
// fatal error; the sender port comes from the kernel-stamped sockaddr,
// never from nlmsghdr.nlmsg_pid.
package transport
