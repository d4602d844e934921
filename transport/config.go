package transport

import (
	"fmt"
)

// MaxGroup is the highest multicast group a NETLINK_CONNECTOR socket can
// join or address: the kernel sizes the connector's group table to 32.
const MaxGroup = 32

// Config configures Open. The zero value is a usable default: a socket on
// a kernel-assigned port, in no group, with system-default buffers and
// sender credentials attached to every received datagram.
type Config struct {
	// Port is the netlink port ID to bind. 0 lets the kernel assign one
	// (see Conn.LocalPort), which is what tests and most endpoints want:
	// any user may bind any free port, and IDs are reused after close.
	Port uint32

	// Groups are multicast groups (1..MaxGroup) joined at open. Without
	// CAP_NET_ADMIN the kernel lets a socket join only odd groups.
	Groups []uint32

	// ReadBuffer is SO_RCVBUF in bytes; 0 keeps the system default. With
	// CAP_NET_ADMIN the limit net.core.rmem_max is bypassed
	// (SO_RCVBUFFORCE); without it the value is capped by that limit.
	// The kernel doubles the value for bookkeeping (see Conn.ReadBuffer).
	ReadBuffer int

	// WriteBuffer is SO_SNDBUF in bytes, likewise (SO_SNDBUFFORCE). It
	// bounds the largest datagram Send accepts (about WriteBuffer*2 - 32
	// bytes after the kernel's doubling).
	WriteBuffer int

	// NoCredentials turns off SO_PASSCRED. By default every received
	// datagram carries the sender's pid/uid/gid in Packet.Creds.
	NoCredentials bool

	// Connect, when set, connect()s the socket to port Peer: the kernel
	// then refuses unicasts from any other port (their Send fails with
	// ErrPeerGone). Peer 0 pins the socket to the kernel. Multicast
	// deliveries to joined groups are not filtered by connect().
	Connect bool
	// Peer is the port Connect pins the socket to.
	Peer uint32
}

// validate rejects a Config that could only fail later, so that Open
// fails fast with a message naming the field.
func (c *Config) validate() error {
	for _, g := range c.Groups {
		if g < 1 || g > MaxGroup {
			return fmt.Errorf("cnlink/transport: Config.Groups: group %d outside 1..%d", g, MaxGroup)
		}
	}
	if c.ReadBuffer < 0 {
		return fmt.Errorf("cnlink/transport: Config.ReadBuffer: negative (%d)", c.ReadBuffer)
	}
	if c.WriteBuffer < 0 {
		return fmt.Errorf("cnlink/transport: Config.WriteBuffer: negative (%d)", c.WriteBuffer)
	}
	if !c.Connect && c.Peer != 0 {
		return fmt.Errorf("cnlink/transport: Config.Peer %d set without Config.Connect", c.Peer)
	}
	return nil
}

// ConnStats are a Conn's cumulative counters. They are updated atomically
// on the data path and read with Conn.Stats.
type ConnStats struct {
	// DatagramsSent and BytesSent count successful sends.
	DatagramsSent, BytesSent uint64
	// DatagramsReceived and BytesReceived count received datagrams (bytes
	// as delivered into the caller's buffer).
	DatagramsReceived, BytesReceived uint64
	// Overruns counts ENOBUFS reports: each means the kernel dropped at
	// least one multicast or kernel-originated datagram for this socket.
	Overruns uint64
	// PeerBusy counts sends refused with EAGAIN (destination queue full).
	PeerBusy uint64
	// PeerGone counts sends refused with ECONNREFUSED (no socket on the
	// destination port, or the destination is connected to another peer).
	PeerGone uint64
	// Truncated counts datagrams larger than the buffer given to Receive.
	Truncated uint64
}
