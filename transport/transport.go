package transport

// Transport moves whole datagrams between netlink ports. Implementations:
// the NETLINK_CONNECTOR adapter in this package (Open), the in-memory
// network in transport/memnet, and the fault injector in transport/fault,
// which wraps any Transport. The conformance suite in
// transport/transporttest runs against all of them so that the fakes cannot
// drift from the kernel.
//
// Loss is data, not failure: a receive-queue overflow comes back from
// Receive as a Packet with Overrun set, and the transport keeps working.
// Only ErrClosed (and unrecoverable socket errors) end a Transport.
//
// Send and Receive may be called concurrently with each other and with
// Close; Close unblocks a pending Receive.
type Transport interface {
	// LocalPort is the netlink port ID this transport is bound to.
	LocalPort() uint32

	// Send transmits one datagram (one or more encoded frames, see
	// AppendFrame) to dst. It never blocks waiting for the peer: a full
	// peer queue is ErrPeerBusy, a port nobody holds is ErrPeerGone,
	// missing privilege is ErrPermission. Send does not keep b.
	Send(dst Addr, b []byte) error

	// Receive blocks until a datagram or an overrun report arrives and
	// returns it. The datagram is copied into buf; Packet.Data aliases
	// buf and is valid until buf is reused. A datagram larger than buf is
	// reported with Truncated set and Data holding the part that fit.
	Receive(buf []byte) (Packet, error)

	// JoinGroup and LeaveGroup change multicast membership (1..32).
	JoinGroup(group uint32) error
	LeaveGroup(group uint32) error

	// Close releases the transport and unblocks a pending Receive, which
	// returns ErrClosed. It is safe to call more than once.
	Close() error
}

// Addr names a destination: a unicast port, a multicast group, or both
// (netlink delivers to the group members and then to the port).
// Port 0 is the kernel.
type Addr struct {
	Port  uint32
	Group uint32
}

// Creds are the sender's credentials as stamped by the kernel
// (SCM_CREDENTIALS). Valid is false when none were attached.
type Creds struct {
	PID, UID, GID uint32
	Valid         bool
}

// Packet is one received datagram or one overrun report.
type Packet struct {
	// From is the sender's port as stamped by the kernel (0 = kernel).
	// Never trust the nlmsghdr pid field instead.
	From uint32
	// Group is the multicast group the datagram was sent to, 0 for unicast.
	Group uint32
	// Creds are the sender's credentials, if the transport passes them.
	Creds Creds
	// Data is the raw datagram: one or more nlmsghdr + cn_msg frames.
	// It aliases the buffer passed to Receive.
	Data []byte
	// Truncated reports that the datagram did not fit the buffer.
	Truncated bool
	// Overrun reports that the kernel dropped one or more datagrams for
	// this socket because its receive queue was full (ENOBUFS). An
	// overrun Packet carries no data; the transport has already resumed
	// draining the queue.
	Overrun bool
}
