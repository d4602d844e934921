//go:build !linux

package transport

import (
	"fmt"
	"runtime"
)

// Conn is the NETLINK_CONNECTOR Transport. Netlink exists only on Linux:
// on this platform Open always fails with ErrUnsupported, and the methods
// exist so that portable code compiles.
type Conn struct{}

var _ Transport = (*Conn)(nil)

func unsupported(op string) error {
	return &OpError{Op: op, Kind: ErrUnsupported, Err: fmt.Errorf("GOOS=%s GOARCH=%s", runtime.GOOS, runtime.GOARCH)}
}

// Open fails with an error matching ErrUnsupported that names the platform.
func Open(cfg Config) (*Conn, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, unsupported("open")
}

// LocalPort returns 0.
func (c *Conn) LocalPort() uint32 { return 0 }

// SendPermitted fails with ErrUnsupported.
func (c *Conn) SendPermitted() error { return unsupported("check") }

// Send fails with ErrUnsupported.
func (c *Conn) Send(dst Addr, b []byte) error { return unsupported("send") }

// Receive fails with ErrUnsupported.
func (c *Conn) Receive(buf []byte) (Packet, error) { return Packet{}, unsupported("receive") }

// JoinGroup fails with ErrUnsupported.
func (c *Conn) JoinGroup(group uint32) error { return unsupported("join") }

// LeaveGroup fails with ErrUnsupported.
func (c *Conn) LeaveGroup(group uint32) error { return unsupported("leave") }

// SetReadBuffer fails with ErrUnsupported.
func (c *Conn) SetReadBuffer(bytes int) error { return unsupported("setsockopt SO_RCVBUF") }

// ReadBuffer fails with ErrUnsupported.
func (c *Conn) ReadBuffer() (int, error) { return 0, unsupported("getsockopt SO_RCVBUF") }

// WriteBuffer fails with ErrUnsupported.
func (c *Conn) WriteBuffer() (int, error) { return 0, unsupported("getsockopt SO_SNDBUF") }

// Stats returns zero counters.
func (c *Conn) Stats() ConnStats { return ConnStats{} }

// Close returns nil.
func (c *Conn) Close() error { return nil }
