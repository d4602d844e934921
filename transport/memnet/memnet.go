package memnet

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/cnlink/cnlink/transport"
)

// Kernel constants memnet reproduces (measured on Linux 6.18).
const (
	// DefaultReadBuffer is net.core.rmem_default: a socket's sk_rcvbuf
	// before any SO_RCVBUF.
	DefaultReadBuffer = 212992
	// DefaultWriteBuffer is net.core.wmem_default.
	DefaultWriteBuffer = 212992
	// MinReadBuffer is SOCK_MIN_RCVBUF: SO_RCVBUF never goes lower.
	MinReadBuffer = 2304
	// MinWriteBuffer is SOCK_MIN_SNDBUF.
	MinWriteBuffer = 4608
	// sndbufSlack: netlink_sendmsg refuses datagrams longer than
	// sk_sndbuf - 32 with EMSGSIZE.
	sndbufSlack = 32
	// maxGroup: the connector's group table has 32 bits.
	maxGroup = 32
)

// Config configures a Network. The zero value is a kernel-like default.
type Config struct {
	// ReadBuffer is the receive queue budget (sk_rcvbuf) in bytes that a
	// new Conn starts with, charged per datagram by Truesize. Zero means
	// DefaultReadBuffer. Unlike Conn.SetReadBuffer it is not doubled: it
	// plays the part of net.core.rmem_default.
	ReadBuffer int

	// WriteBuffer is a new Conn's sk_sndbuf; Send refuses datagrams longer
	// than WriteBuffer-32 with ErrTooLarge. Zero means DefaultWriteBuffer.
	WriteBuffer int

	// Creds returns the credentials stamped on datagrams sent from port
	// (SCM_CREDENTIALS). It is called when a Conn opens and for every
	// Inject. Nil means {PID: port, UID: 0, GID: 0, Valid: true}.
	// Datagrams from port 0 (the kernel) always carry {0, 0, 0, true}, as
	// the kernel's do.
	Creds func(port uint32) transport.Creds

	// Kernel, if set, receives every datagram a Conn sends to port 0 (the
	// kernel's connector socket), including the copy that goes to the
	// kernel when a group is addressed with Port 0. It runs on the
	// sender's goroutine after Send has queued all deliveries and without
	// memnet's lock held, so it may call Inject to answer (a fake
	// cn_proc). b is valid only during the call. Nil drops such datagrams
	// silently, as the real kernel does for ids nobody registered.
	Kernel func(from uint32, b []byte)
}

// Network is an in-memory netlink bus: a port namespace, 32 multicast
// groups and one receive queue per Conn, with the kernel's queueing rules
// (see the package documentation). All state is guarded by one mutex,
// which keeps multicast delivery atomic and the model simple; nothing
// blocks while holding it.
type Network struct {
	cfg Config

	mu     sync.Mutex
	ports  map[uint32]*Conn
	groups [maxGroup + 1][]*Conn // members by group, in join order
	pool   bufPool
}

// New returns an empty Network.
func New(cfg Config) *Network {
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.WriteBuffer <= 0 {
		cfg.WriteBuffer = DefaultWriteBuffer
	}
	return &Network{cfg: cfg, ports: make(map[uint32]*Conn)}
}

func (n *Network) creds(port uint32) transport.Creds {
	if port == 0 {
		return transport.Creds{Valid: true}
	}
	if n.cfg.Creds != nil {
		return n.cfg.Creds(port)
	}
	return transport.Creds{PID: port, Valid: true}
}

// Open binds a new Conn to port. Port 0 assigns the lowest free port
// (starting at 1): unlike the kernel, which tries the process ID and then
// random ports, this hands out a just-closed port again at once, so code
// that confuses a new socket with an old one on the same port fails early.
// Binding a taken port fails with an *transport.OpError wrapping
// syscall.EADDRINUSE.
//
// A Conn's channels belong to the testing/synctest bubble (if any) it is
// opened in: open it in the bubble that uses it.
func (n *Network) Open(port uint32) (*Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if port == 0 {
		for port = 1; n.ports[port] != nil; port++ {
		}
	} else if n.ports[port] != nil {
		return nil, &transport.OpError{Op: "bind", Addr: transport.Addr{Port: port}, Err: syscall.EADDRINUSE}
	}
	c := &Conn{
		net:    n,
		port:   port,
		creds:  n.creds(port),
		rcvbuf: n.cfg.ReadBuffer,
		sndbuf: n.cfg.WriteBuffer,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	n.ports[port] = c
	return c, nil
}

// Inject sends datagram b to dst as if from port from, which need not be
// held by any Conn: from 0 plays the kernel (proc connector events, whose
// deliveries to a full queue cause an overrun even when unicast), any
// other port plays a squatter, a restarted peer or a spoofer. Packet.From
// of the deliveries is from. A Conn holding from, if any, is excluded from
// the multicast like a real sender. The errors are Send's.
func (n *Network) Inject(from uint32, dst transport.Addr, b []byte) error {
	n.mu.Lock()
	err := n.send(n.ports[from], from, n.creds(from), DefaultWriteBuffer, dst, b)
	n.mu.Unlock()
	if err == nil && dst.Port == 0 && from != 0 && n.cfg.Kernel != nil {
		n.cfg.Kernel(from, b)
	}
	return err
}

// send delivers b from port from (held by src, which may be nil) to dst:
// first to the group's members, then to dst.Port, as netlink_sendmsg does.
// Called with n.mu held.
func (n *Network) send(src *Conn, from uint32, creds transport.Creds, sndbuf int, dst transport.Addr, b []byte) error {
	if dst.Group > maxGroup {
		return &transport.OpError{Op: "send", Addr: dst, Err: syscall.EINVAL}
	}
	if len(b) == 0 {
		// Measured: sendto of an empty datagram fails with ENODATA.
		return &transport.OpError{Op: "send", Addr: dst, Err: syscall.ENODATA}
	}
	if len(b) > sndbuf-sndbufSlack {
		return &transport.OpError{Op: "send", Addr: dst, Kind: transport.ErrTooLarge, Err: syscall.EMSGSIZE}
	}
	kernel := from == 0
	// Group-addressed and kernel-built datagrams get a kmalloc'ed head.
	ts := Truesize(len(b), dst.Group != 0 || kernel)
	if dst.Group != 0 {
		for _, m := range n.groups[dst.Group] {
			// do_one_broadcast skips the sending socket and the
			// destination port, which gets its copy by unicast below.
			if m == src || (dst.Port != 0 && m.port == dst.Port) {
				continue
			}
			if m.admits(ts) {
				m.enqueue(b, ts, from, dst.Group, creds)
			} else {
				m.overrun()
			}
		}
	}
	if dst.Port == 0 {
		// The kernel's connector socket swallows everything: unknown ids
		// are freed silently, oversized messages too, and sendto succeeds.
		return nil
	}
	t := n.ports[dst.Port]
	if t == nil || (t.connected && t.peer != from) {
		if src != nil {
			src.stats.PeerGone++
			return src.cachedErr(1, dst, transport.ErrPeerGone, syscall.ECONNREFUSED)
		}
		return &transport.OpError{Op: "send", Addr: dst, Kind: transport.ErrPeerGone, Err: syscall.ECONNREFUSED}
	}
	if !t.admits(ts) {
		// netlink_attachskb: a non-blocking sender gets EAGAIN; only when
		// the sender is the kernel does the receiver also lose the
		// datagram as an overrun.
		if kernel {
			t.overrun()
		}
		if src != nil {
			src.stats.PeerBusy++
			return src.cachedErr(0, dst, transport.ErrPeerBusy, syscall.EAGAIN)
		}
		return &transport.OpError{Op: "send", Addr: dst, Kind: transport.ErrPeerBusy, Err: syscall.EAGAIN}
	}
	// The unicast copy of a group-addressed datagram still reports the
	// group (NETLINK_CB(skb).dst_group), as measured.
	t.enqueue(b, ts, from, dst.Group, creds)
	return nil
}

func (n *Network) join(c *Conn, g uint32) {
	if c.groups&(1<<(g-1)) != 0 {
		return
	}
	c.groups |= 1 << (g - 1)
	n.groups[g] = append(n.groups[g], c)
}

func (n *Network) leave(c *Conn, g uint32) {
	if c.groups&(1<<(g-1)) == 0 {
		return
	}
	c.groups &^= 1 << (g - 1)
	l := n.groups[g]
	for i, m := range l {
		if m == c {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			n.groups[g] = l[:len(l)-1]
			return
		}
	}
}

// String describes the network for failure messages.
func (n *Network) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("memnet{%d ports}", len(n.ports))
}
