package discover

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/transport"
)

// The range of PortForName. The kernel's autobind hands out a process's
// PID (at most 2^22, PID_MAX_LIMIT) or, after a collision, a port in
// [2^31, 2^32-4096]; this range lies between, so that a named port never
// meets an autobound one.
const (
	MinNamedPort = 1 << 30   // 1073741824
	MaxNamedPort = 1<<31 - 1 // 2147483647
)

// PortForName returns the conventional port of the service called name:
//
//	0x40000000 | (FNV-1a-32(name) & 0x3fffffff)
//
// (hash/fnv's New32a over the bytes of name). It is deterministic, never
// 0, and always within [MinNamedPort, MaxNamedPort]. A peer written in C
// computes the same with FNV-1a: offset basis 2166136261, prime 16777619.
func PortForName(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return MinNamedPort | h.Sum32()&(MinNamedPort-1)
}

// ErrPortInUse: the port a server wanted is held by another socket.
var ErrPortInUse = errors.New("cnlink/discover: port in use")

// ErrUnexpectedOwner: the socket on the port is not held by the process a
// client expects, or its holder cannot be seen.
var ErrUnexpectedOwner = errors.New("cnlink/discover: port held by an unexpected process")

// PortInUseError is Open's error when the port is taken (EADDRINUSE). It
// names the holders when this process can see them. It matches
// ErrPortInUse, and the transport's error (and so unix.EADDRINUSE).
type PortInUseError struct {
	Port uint32
	// Name is the service name for OpenName, "" for Open.
	Name string
	// Holders are the processes holding the port at the time of the
	// error; empty when this process may not see them (see the package
	// doc) or the holder has closed it meanwhile.
	Holders []Process
	// Err is transport.Open's error.
	Err error
}

func (e *PortInUseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cnlink/discover: port %d", e.Port)
	if e.Name != "" {
		fmt.Fprintf(&b, " (name %q)", e.Name)
	}
	b.WriteString(" is in use")
	if len(e.Holders) == 0 {
		b.WriteString(" by a process this process cannot inspect (run as root to see it)")
	} else {
		b.WriteString(" by ")
		b.WriteString(describe(e.Holders))
	}
	return b.String()
}

// Unwrap returns ErrPortInUse and the transport's error.
func (e *PortInUseError) Unwrap() []error { return []error{ErrPortInUse, e.Err} }

// describe lists processes as "pid 12 (comm, uid 0), pid 13 (...)".
func describe(ps []Process) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		uid := "uid ?"
		if p.UID >= 0 {
			uid = fmt.Sprintf("uid %d", p.UID)
		}
		comm := p.Comm
		if comm == "" {
			comm = "?"
		}
		parts[i] = fmt.Sprintf("pid %d (%s, %s)", p.PID, comm, uid)
	}
	return strings.Join(parts, ", ")
}

// Open opens a NETLINK_CONNECTOR transport as transport.Open does, on
// cfg.Port. When the port is taken it returns a *PortInUseError naming the
// process that holds it.
func Open(cfg transport.Config) (*transport.Conn, error) {
	return open("", cfg)
}

// OpenName opens the transport of the service called name: Open on
// PortForName(name) (cfg.Port is ignored). This is the server's side of
// the convention; clients Dial the same PortForName(name), or Resolve it.
func OpenName(name string, cfg transport.Config) (*transport.Conn, error) {
	cfg.Port = PortForName(name)
	return open(name, cfg)
}

func open(name string, cfg transport.Config) (*transport.Conn, error) {
	c, err := transport.Open(cfg)
	if err == nil {
		return c, nil
	}
	if cfg.Port == 0 || !errors.Is(err, unix.EADDRINUSE) {
		return nil, err
	}
	e := &PortInUseError{Port: cfg.Port, Name: name, Err: err}
	if s, lerr := ByPort(cfg.Port); lerr == nil {
		e.Holders = s.Owners
	}
	return nil, e
}

// Expect says which process a client expects on a port. The zero Expect
// accepts any holder.
type Expect struct {
	// Comm, if not empty, is the command name (/proc/PID/comm, compared
	// after truncation to 15 bytes as the kernel truncates it) one of the
	// socket's holders must have.
	Comm string
	// UIDs, if not empty, are the real UIDs that holder may have.
	UIDs []int
}

func (x Expect) match(p Process) bool {
	if x.Comm != "" && p.Comm != truncComm(x.Comm) {
		return false
	}
	if len(x.UIDs) > 0 && !slices.Contains(x.UIDs, p.UID) {
		return false
	}
	return true
}

func (x Expect) String() string {
	var parts []string
	if x.Comm != "" {
		parts = append(parts, fmt.Sprintf("comm %q", x.Comm))
	}
	if len(x.UIDs) > 0 {
		parts = append(parts, fmt.Sprintf("uid in %v", x.UIDs))
	}
	if len(parts) == 0 {
		return "any process"
	}
	return strings.Join(parts, ", ")
}

// OwnerError is Check's error when the port's holder is not the expected
// one. It matches ErrUnexpectedOwner.
type OwnerError struct {
	Port   uint32
	Want   Expect
	Owners []Process // empty: the holder cannot be seen
}

func (e *OwnerError) Error() string {
	got := "a process this process cannot inspect"
	if len(e.Owners) > 0 {
		got = describe(e.Owners)
	}
	return fmt.Sprintf("cnlink/discover: port %d is held by %s, want %v", e.Port, got, e.Want)
}

// Unwrap returns ErrUnexpectedOwner.
func (e *OwnerError) Unwrap() error { return ErrUnexpectedOwner }

// Check returns the socket on port after checking that one of its holders
// matches want. Errors: ErrNotFound when no socket holds the port (the
// server is not running); *OwnerError (ErrUnexpectedOwner) when no holder
// matches, or when want sets something and the holders cannot be seen.
// The check is advisory (see the package doc): pin the peer's credentials
// in the session as well.
func Check(port uint32, want Expect) (Socket, error) {
	ss, err := Sockets()
	if err != nil {
		return Socket{}, err
	}
	return check(ss, port, want)
}

func check(ss []Socket, port uint32, want Expect) (Socket, error) {
	s, err := findPort(ss, port)
	if err != nil {
		return Socket{}, err
	}
	if want.Comm == "" && len(want.UIDs) == 0 {
		return s, nil
	}
	if !slices.ContainsFunc(s.Owners, want.match) {
		return Socket{}, &OwnerError{Port: port, Want: want, Owners: s.Owners}
	}
	return s, nil
}

// Resolve is the client's side of PortForName: it returns the port of the
// service called name after checking, as Check does, that a process
// matching want holds it.
func Resolve(name string, want Expect) (uint32, error) {
	port := PortForName(name)
	if _, err := Check(port, want); err != nil {
		return 0, &serviceError{name: name, err: err}
	}
	return port, nil
}

// serviceError puts the service name in front of Check's error.
type serviceError struct {
	name string
	err  error
}

func (e *serviceError) Error() string {
	return fmt.Sprintf("cnlink/discover: service %q: %s", e.name, strings.TrimPrefix(e.err.Error(), "cnlink/discover: "))
}

func (e *serviceError) Unwrap() error { return e.err }
