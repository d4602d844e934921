//go:build linux

package transport

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// oobLen fits one SCM_CREDENTIALS control message with room to spare.
const oobLen = 64

// Conn is the NETLINK_CONNECTOR Transport: a non-blocking netlink socket
// whose data path bypasses mdlayher/netlink (which always addresses the
// kernel and discards the sender's address and ancillary data) and runs
// raw sendto/recvmsg through its syscall.RawConn, so that receiving waits
// in the Go netpoller and neither direction allocates per datagram.
//
// Send and Receive each hold their own mutex (a blocked Receive never
// delays a Send), which also guards the pre-built syscall arguments of that
// direction. Close takes no lock so that it can interrupt a pending
// Receive.
type Conn struct {
	nl     *netlink.Conn
	rc     syscall.RawConn
	port   uint32
	closed atomic.Bool

	// Send side, guarded by sendMu. doSendFn is the method value
	// c.doSend, built once in Open: building it per call would allocate a
	// closure per datagram.
	sendMu    sync.Mutex
	sendSA    unix.RawSockaddrNetlink
	sendBuf   []byte
	sendErrno unix.Errno
	doSendFn  func(fd uintptr) bool
	// errCache keeps the last ErrPeerBusy / ErrPeerGone error per kind: a
	// sender polling a busy peer then gets the same immutable error back
	// instead of a fresh allocation per refused datagram.
	errCache [2]*OpError
	sent     sendCounters

	_ [64]byte // keep the two directions off one cache line

	// Receive side, guarded by recvMu. msg points at recvSA, iov and oob,
	// all inside this struct; iov.Base points at the caller's buffer only
	// for the duration of one Receive.
	recvMu    sync.Mutex
	recvSA    unix.RawSockaddrNetlink
	iov       unix.Iovec
	msg       unix.Msghdr
	oob       [oobLen]byte
	recvN     int
	recvErrno unix.Errno
	doRecvFn  func(fd uintptr) bool
	recvd     recvCounters
}

// sendCounters and recvCounters are each direction's share of ConnStats.
// They are atomic so that Stats can read them while traffic flows.
type sendCounters struct {
	datagrams, bytes, busy, gone atomic.Uint64
}

type recvCounters struct {
	datagrams, bytes, overruns, truncated atomic.Uint64
}

var _ Transport = (*Conn)(nil)

// Open creates a NETLINK_CONNECTOR socket as cfg describes.
func Open(cfg Config) (*Conn, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	nl, err := netlink.Dial(unix.NETLINK_CONNECTOR, &netlink.Config{PID: cfg.Port})
	if err != nil {
		return nil, wrapErr("bind", Addr{Port: cfg.Port}, err)
	}
	c := &Conn{nl: nl, port: nl.PID()}
	if err := c.setup(&cfg); err != nil {
		_ = nl.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) setup(cfg *Config) error {
	rc, err := c.nl.SyscallConn()
	if err != nil {
		return wrapErr("open", Addr{}, err)
	}
	c.rc = rc
	if cfg.ReadBuffer > 0 {
		if err := c.SetReadBuffer(cfg.ReadBuffer); err != nil {
			return err
		}
	}
	if cfg.WriteBuffer > 0 {
		if err := c.nl.SetWriteBuffer(cfg.WriteBuffer); err != nil {
			return wrapErr("setsockopt SO_SNDBUF", Addr{}, err)
		}
	}
	if !cfg.NoCredentials {
		if err := c.setsockopt(unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			return wrapErr("setsockopt SO_PASSCRED", Addr{}, err)
		}
	}
	for _, g := range cfg.Groups {
		if err := c.JoinGroup(g); err != nil {
			return err
		}
	}
	if cfg.Connect {
		var cerr error
		err := rc.Control(func(fd uintptr) {
			cerr = unix.Connect(int(fd), &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: cfg.Peer})
		})
		if err == nil {
			err = cerr
		}
		if err != nil {
			return wrapErr("connect", Addr{Port: cfg.Peer}, err)
		}
	}

	c.sendSA.Family = unix.AF_NETLINK
	c.doSendFn = c.doSend
	c.msg.Name = (*byte)(unsafe.Pointer(&c.recvSA))
	c.msg.Iov = &c.iov
	c.msg.SetIovlen(1)
	c.msg.Control = &c.oob[0]
	c.doRecvFn = c.doRecv
	return nil
}

func (c *Conn) setsockopt(level, opt, v int) error {
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), level, opt, v)
	})
	if err != nil {
		return err
	}
	return serr
}

// LocalPort is the netlink port ID the socket is bound to.
func (c *Conn) LocalPort() uint32 { return c.port }

// SendPermitted reports, before any send, whether sends to user ports and
// groups can work: it returns an *OpError matching ErrPermission and EPERM
// when the calling thread lacks CAP_NET_ADMIN in its effective set (the
// kernel would refuse every such send), else nil. The kernel may still
// refuse where the capability does not count (a user namespace that does
// not own the network namespace); sends then fail with ErrPermission.
// Sends to the kernel (port 0) need no privilege.
func (c *Conn) SendPermitted() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell: let the first send decide
	}
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return &OpError{Op: "check", Kind: ErrPermission, Err: unix.EPERM}
	}
	return nil
}

// Send transmits datagram b to dst without ever waiting: the kernel never
// signals a netlink sender writable after EAGAIN, so a full peer queue is
// reported at once as ErrPeerBusy and the caller retries on a timer.
// A dst with a Group multicasts to the group's members (never back to
// this socket) and then unicasts to dst.Port: port 0 is the kernel, which
// parses the first frame and silently drops ids nobody registered. In a
// non-initial network namespace there is no kernel connector socket, so
// that unicast part fails with ErrPeerGone although the members got the
// datagram.
func (c *Conn) Send(dst Addr, b []byte) error {
	if dst.Group > MaxGroup {
		return &OpError{Op: "send", Addr: dst, Err: unix.EINVAL}
	}
	c.sendMu.Lock()
	if c.closed.Load() {
		c.sendMu.Unlock()
		return &OpError{Op: "send", Addr: dst, Kind: ErrClosed}
	}
	c.sendSA.Pid = dst.Port
	c.sendSA.Groups = groupMask(dst.Group)
	c.sendBuf = b
	c.sendErrno = 0
	err := c.rc.Write(c.doSendFn)
	c.sendBuf = nil // do not keep the caller's buffer reachable
	errno := c.sendErrno
	if err == nil && errno == 0 {
		c.sendMu.Unlock()
		c.sent.datagrams.Add(1)
		c.sent.bytes.Add(uint64(len(b)))
		return nil
	}
	var e error
	switch {
	case err != nil:
		e = c.ioErr("send", dst, err)
	case errno == unix.EAGAIN:
		c.sent.busy.Add(1)
		e = c.cachedErr(0, dst, ErrPeerBusy, errno)
	case errno == unix.ECONNREFUSED:
		c.sent.gone.Add(1)
		e = c.cachedErr(1, dst, ErrPeerGone, errno)
	default:
		e = &OpError{Op: "send", Addr: dst, Kind: errnoKind(errno), Err: errno}
	}
	c.sendMu.Unlock()
	return e
}

// cachedErr returns an immutable send error for dst, reusing the previous
// one of the same kind when dst matches. Called with sendMu held.
func (c *Conn) cachedErr(i int, dst Addr, kind error, errno unix.Errno) error {
	if e := c.errCache[i]; e != nil && e.Addr == dst {
		return e
	}
	e := &OpError{Op: "send", Addr: dst, Kind: kind, Err: errno}
	c.errCache[i] = e
	return e
}

// doSend is the RawConn.Write callback. It always reports done: waiting
// for writability after EAGAIN would hang until some unrelated event.
func (c *Conn) doSend(fd uintptr) bool {
	c.sendErrno = sendto(fd, c.sendBuf, &c.sendSA)
	return true
}

// Receive waits in the netpoller for the next datagram and copies it into
// buf. The sender's port and the destination group come from the
// kernel-filled sockaddr_nl, never from the frames. An ENOBUFS report
// (the kernel dropped multicast or kernel-originated datagrams for this
// socket) is returned as a Packet with Overrun set and no error; the
// socket stays usable, and the caller should keep calling Receive at once:
// the kernel drops every multicast for this socket until its queue has
// been drained empty.
func (c *Conn) Receive(buf []byte) (Packet, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.closed.Load() {
		return Packet{}, &OpError{Op: "receive", Kind: ErrClosed}
	}
	c.iov.Base = unsafe.SliceData(buf)
	c.iov.SetLen(len(buf))
	err := c.rc.Read(c.doRecvFn)
	c.iov.Base = nil // do not keep the caller's buffer reachable
	if err != nil {
		return Packet{}, c.ioErr("receive", Addr{}, err)
	}
	switch c.recvErrno {
	case 0:
	case unix.ENOBUFS:
		c.recvd.overruns.Add(1)
		return Packet{Overrun: true}, nil
	default:
		return Packet{}, &OpError{Op: "receive", Kind: errnoKind(c.recvErrno), Err: c.recvErrno}
	}
	n := min(c.recvN, len(buf))
	p := Packet{
		From:  c.recvSA.Pid,
		Group: maskGroup(c.recvSA.Groups),
		Data:  buf[:n:n],
	}
	if c.msg.Flags&unix.MSG_TRUNC != 0 {
		p.Truncated = true
		c.recvd.truncated.Add(1)
	}
	if cl := int(c.msg.Controllen); cl > 0 {
		p.Creds = parseCreds(c.oob[:min(cl, oobLen)])
	}
	c.recvd.datagrams.Add(1)
	c.recvd.bytes.Add(uint64(n))
	return p, nil
}

// doRecv is the RawConn.Read callback: false on EAGAIN makes the runtime
// park the goroutine until the socket is readable (or in error: the
// kernel's ENOBUFS report wakes the poller too) and call it again.
func (c *Conn) doRecv(fd uintptr) bool {
	// recvmsg overwrites the lengths and flags; reset them every attempt.
	c.msg.Namelen = unix.SizeofSockaddrNetlink
	c.msg.SetControllen(oobLen)
	c.msg.Flags = 0
	n, e := recvmsg(fd, &c.msg)
	if e == unix.EAGAIN {
		return false
	}
	c.recvN, c.recvErrno = n, e
	return true
}

// JoinGroup joins multicast group (1..32). Without CAP_NET_ADMIN only odd
// groups can be joined (ErrPermission otherwise).
func (c *Conn) JoinGroup(group uint32) error {
	return c.membership("join", group, c.nl.JoinGroup)
}

// LeaveGroup leaves multicast group (1..32).
func (c *Conn) LeaveGroup(group uint32) error {
	return c.membership("leave", group, c.nl.LeaveGroup)
}

func (c *Conn) membership(op string, group uint32, f func(uint32) error) error {
	addr := Addr{Group: group}
	if group < 1 || group > MaxGroup {
		return &OpError{Op: op, Addr: addr, Err: unix.EINVAL}
	}
	if c.closed.Load() {
		return &OpError{Op: op, Addr: addr, Kind: ErrClosed}
	}
	if err := f(group); err != nil {
		return c.ioErr(op, addr, err)
	}
	return nil
}

// SetReadBuffer sets SO_RCVBUF, bypassing net.core.rmem_max with
// SO_RCVBUFFORCE when the process has CAP_NET_ADMIN. The proc connector
// grows its buffer with it after overruns.
func (c *Conn) SetReadBuffer(bytes int) error {
	if c.closed.Load() {
		return &OpError{Op: "setsockopt SO_RCVBUF", Kind: ErrClosed}
	}
	if err := c.nl.SetReadBuffer(bytes); err != nil {
		return c.ioErr("setsockopt SO_RCVBUF", Addr{}, err)
	}
	return nil
}

// ReadBuffer reports SO_RCVBUF as the kernel holds it: twice the value
// set, since the kernel counts its bookkeeping overhead against it.
func (c *Conn) ReadBuffer() (int, error) {
	n, err := c.nl.ReadBuffer()
	if err != nil {
		return 0, c.ioErr("getsockopt SO_RCVBUF", Addr{}, err)
	}
	return n, nil
}

// WriteBuffer reports SO_SNDBUF as the kernel holds it (doubled).
func (c *Conn) WriteBuffer() (int, error) {
	n, err := c.nl.WriteBuffer()
	if err != nil {
		return 0, c.ioErr("getsockopt SO_SNDBUF", Addr{}, err)
	}
	return n, nil
}

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() ConnStats {
	return ConnStats{
		DatagramsSent:     c.sent.datagrams.Load(),
		BytesSent:         c.sent.bytes.Load(),
		PeerBusy:          c.sent.busy.Load(),
		PeerGone:          c.sent.gone.Load(),
		DatagramsReceived: c.recvd.datagrams.Load(),
		BytesReceived:     c.recvd.bytes.Load(),
		Overruns:          c.recvd.overruns.Load(),
		Truncated:         c.recvd.truncated.Load(),
	}
}

// Close closes the socket. It takes neither direction's lock, so it
// interrupts a pending Receive, which returns ErrClosed. Later calls
// return nil.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if err := c.nl.Close(); err != nil {
		return &OpError{Op: "close", Err: err}
	}
	return nil
}

// ioErr classifies an error from the netlink package or the RawConn: after
// Close every failure is ErrClosed (the runtime reports the closing fd in
// several ways); otherwise the errno, if any, picks the sentinel.
func (c *Conn) ioErr(op string, addr Addr, err error) error {
	if c.closed.Load() {
		return &OpError{Op: op, Addr: addr, Kind: ErrClosed, Err: err}
	}
	return wrapErr(op, addr, err)
}

func wrapErr(op string, addr Addr, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return &OpError{Op: op, Addr: addr, Kind: errnoKind(errno), Err: errno}
	}
	return &OpError{Op: op, Addr: addr, Err: err}
}

// errnoKind maps an errno to the sentinel callers act on, or nil.
func errnoKind(e unix.Errno) error {
	switch e {
	case unix.EAGAIN:
		return ErrPeerBusy
	case unix.ECONNREFUSED:
		return ErrPeerGone
	case unix.EPERM, unix.EACCES:
		return ErrPermission
	case unix.EMSGSIZE:
		return ErrTooLarge
	case unix.EBADF:
		return ErrClosed
	}
	return nil
}
