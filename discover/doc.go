// Package discover tells a cnlink client which netlink port its server
// listens on, and who holds a port.
//
// Netlink connector sockets have no names: a server is a port number, and
// a client must learn it somehow. This package offers two ways.
//
// # Looking at the sockets
//
// Sockets lists the NETLINK_CONNECTOR sockets of the calling process's
// network namespace from /proc/net/netlink (protocol 11), with their port,
// multicast groups, receive queue, drops and inode, and the processes that
// hold each one (PID, command name from /proc/PID/comm, real UID), found by
// matching the socket's inode against the socket:[inode] links in
// /proc/PID/fd. ByPID, ByComm and ByPort look sockets up.
//
// /proc/net/netlink is readable by everyone, but /proc/PID/fd only by the
// process's owner and by root (ptrace read access): without privilege a
// process sees the owners of its own sockets and of its own user's
// processes only, and the other sockets are listed with no Owners.
// Processes that exit while the scan runs are left out too.
//
// # A port per name
//
// PortForName maps a service name to a fixed port, so that a server and its
// clients agree on the port without looking anything up:
//
//	port = 0x40000000 | (FNV-1a-32(name) & 0x3fffffff)
//
// The ports lie in [MinNamedPort, MaxNamedPort] = [2^30, 2^31-1]. The kernel's
// autobind (a socket opened with port 0) gives either the process's PID,
// at most 2^22 (PID_MAX_LIMIT), or, after a collision, a value in
// [2^31, 2^32-4096] (a negative int32): a named port never collides with an
// autobound one. Two names can still hash to one port, and any process
// may bind any free port (docs/SECURITY.md §2.1), so the server side,
// OpenName, reports a taken port as a *PortInUseError that names the
// process holding it, and the client side, Resolve, checks that the
// process on the port is the one it expects (command name, UID).
//
// A check made from /proc is advisory: the process can die and another
// take its port between the check and the Dial. A client that must know
// who it talks to also pins the peer with the kernel-stamped credentials
// (reliable.Config.AllowCreds and Session.PeerCreds), which hold for the
// whole session.
package discover
