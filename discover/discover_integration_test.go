//go:build linux

package discover

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/transport"
)

// These tests open real NETLINK_CONNECTOR sockets (no privilege needed to
// bind any free port) and find them through /proc.

func selfComm(t *testing.T) string {
	t.Helper()
	c := readComm("/proc", os.Getpid())
	if c == "" {
		t.Fatal("cannot read /proc/self/comm")
	}
	return c
}

// ownInodes returns the inodes of this process's sockets.
func ownInodes(t *testing.T) []uint64 {
	t.Helper()
	return socketInodes(fmt.Sprintf("/proc/%d/fd", os.Getpid()))
}

func TestSocketsFindsOwnSocket(t *testing.T) {
	c, err := transport.Open(transport.Config{Groups: []uint32{5}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := c.LocalPort()

	s, err := ByPort(port)
	if err != nil {
		t.Fatalf("ByPort(%d): %v", port, err)
	}
	me := Process{PID: os.Getpid(), Comm: selfComm(t), UID: os.Getuid()}
	if !slices.Contains(s.Owners, me) {
		t.Errorf("owners %+v, want %+v among them", s.Owners, me)
	}
	if !slices.Equal(s.GroupList(), []uint32{5}) {
		t.Errorf("groups %v, want [5]", s.GroupList())
	}
	if !slices.Contains(ownInodes(t), s.Inode) {
		t.Errorf("inode %d is not among this process's sockets %v", s.Inode, ownInodes(t))
	}

	byPID, err := ByPID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(byPID, func(x Socket) bool { return x.Port == port && x.Inode == s.Inode }) {
		t.Errorf("ByPID(%d) = %+v, misses port %d", os.Getpid(), byPID, port)
	}
	byComm, err := ByComm(me.Comm)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(byComm, func(x Socket) bool { return x.Port == port }) {
		t.Errorf("ByComm(%q) misses port %d", me.Comm, port)
	}

	all, err := Sockets()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, Socket.Kernel) {
		t.Error("the kernel's connector socket (port 0) is not listed")
	}
	if !slices.IsSortedFunc(all, func(a, b Socket) int { return int(int64(a.Port) - int64(b.Port)) }) {
		t.Error("not sorted by port")
	}

	c.Close()
	if _, err := ByPort(port); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Close: %v, want ErrNotFound", err)
	}
}

// TestSocketRmem: a datagram queued on the socket shows in Rmem.
func TestSocketRmem(t *testing.T) {
	testenvNetAdmin(t)
	a, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	frame, err := transport.AppendFrame(nil, &transport.Frame{NlType: transport.NlmsgDone, ID: transport.CbID{Idx: 0x434e4c4b, Val: 9}, Payload: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Send(transport.Addr{Port: a.LocalPort()}, frame); err != nil {
		t.Fatal(err)
	}
	s, err := ByPort(a.LocalPort())
	if err != nil {
		t.Fatal(err)
	}
	if s.Rmem == 0 {
		t.Errorf("Rmem 0 with a datagram queued")
	}
}

func testName(t *testing.T) string {
	return fmt.Sprintf("cnlink-discover-test-%d-%x", os.Getpid(), rand.Uint64())
}

func TestOpenNameTaken(t *testing.T) {
	name := testName(t)
	c, err := OpenName(name, transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.LocalPort() != PortForName(name) {
		t.Fatalf("port %d, want %d", c.LocalPort(), PortForName(name))
	}
	c2, err := OpenName(name, transport.Config{})
	if err == nil {
		c2.Close()
		t.Fatal("second OpenName succeeded")
	}
	var pe *PortInUseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPortInUse) || !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("err %v (%T), want *PortInUseError matching EADDRINUSE", err, err)
	}
	if pe.Name != name || pe.Port != c.LocalPort() || !slices.ContainsFunc(pe.Holders, func(p Process) bool { return p.PID == os.Getpid() }) {
		t.Errorf("error %+v does not name this process", pe)
	}
	t.Log(err)

	// Open on an explicit port reports the same way.
	_, err = Open(transport.Config{Port: c.LocalPort()})
	if !errors.As(err, &pe) || pe.Name != "" {
		t.Errorf("Open on a taken port: %v", err)
	}
}

func TestResolve(t *testing.T) {
	name := testName(t)
	if _, err := Resolve(name, Expect{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before the server: %v, want ErrNotFound", err)
	}
	c, err := OpenName(name, transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port, err := Resolve(name, Expect{Comm: selfComm(t), UIDs: []int{os.Getuid()}})
	if err != nil || port != c.LocalPort() {
		t.Fatalf("Resolve = %d, %v; want %d", port, err, c.LocalPort())
	}
	_, err = Resolve(name, Expect{Comm: "not-" + selfComm(t)})
	var oe *OwnerError
	if !errors.Is(err, ErrUnexpectedOwner) || !errors.As(err, &oe) {
		t.Fatalf("wrong comm: %v, want *OwnerError", err)
	}
	t.Log(err)
	if _, err := Check(c.LocalPort(), Expect{UIDs: []int{os.Getuid() + 1}}); !errors.Is(err, ErrUnexpectedOwner) {
		t.Errorf("wrong uid: %v", err)
	}
}
