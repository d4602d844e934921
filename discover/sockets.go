package discover

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ProtocolConnector is NETLINK_CONNECTOR, the protocol number in the Eth
// column of /proc/net/netlink.
const ProtocolConnector = 11

// ErrNotFound: no NETLINK_CONNECTOR socket holds the port.
var ErrNotFound = errors.New("cnlink/discover: no connector socket on that port")

// Socket is one NETLINK_CONNECTOR socket of this network namespace, as
// /proc/net/netlink shows it at the moment of the call.
type Socket struct {
	// Port is the socket's netlink port ID. Port 0 is the kernel's own
	// connector socket (Kernel reports it). Autobound ports are the
	// owner's PID or, after a collision, a value of 2^31 and above.
	Port uint32
	// Groups is the bitmask of multicast groups joined: bit g-1 for
	// group g (1..32). See GroupList.
	Groups uint32
	// Rmem is the number of bytes queued for the socket (its receive
	// queue, in the kernel's accounting: about 768 bytes per small
	// datagram), Wmem those queued for sending.
	Rmem, Wmem int
	// Drops counts datagrams the kernel dropped because the receive queue
	// was full (multicast and kernel-originated ones; a unicast to a full
	// queue is refused with EAGAIN instead and not counted).
	Drops uint64
	// Inode is the socket's inode number, as in the socket:[inode] links
	// of /proc/PID/fd. 0 for some kernel sockets.
	Inode uint64
	// Owners are the processes that hold the socket open, sorted by PID:
	// usually one, more after a fork. Empty for the kernel's socket and
	// for sockets of processes this process may not inspect.
	Owners []Process
}

// Process is a process that holds a socket.
type Process struct {
	PID int
	// Comm is the command name (/proc/PID/comm, at most 15 bytes).
	Comm string
	// UID is the real user ID (the one the kernel stamps on the
	// process's datagrams, SCM_CREDENTIALS); -1 when unknown.
	UID int
}

// Kernel reports whether s is the kernel's connector socket (port 0).
func (s Socket) Kernel() bool { return s.Port == 0 }

// GroupList returns the groups s joined, in increasing order.
func (s Socket) GroupList() []uint32 {
	var gs []uint32
	for m := s.Groups; m != 0; m &= m - 1 {
		gs = append(gs, uint32(bits.TrailingZeros32(m))+1)
	}
	return gs
}

// Owner returns the first owner (lowest PID) and true, or false when no
// owner is known.
func (s Socket) Owner() (Process, bool) {
	if len(s.Owners) == 0 {
		return Process{}, false
	}
	return s.Owners[0], true
}

// Sockets lists the NETLINK_CONNECTOR sockets of this network namespace,
// sorted by port, with their owners (see the package doc for what an
// unprivileged caller sees).
func Sockets() ([]Socket, error) { return sockets("/proc") }

// ByPort returns the socket that holds port, or an error matching
// ErrNotFound.
func ByPort(port uint32) (Socket, error) {
	ss, err := Sockets()
	if err != nil {
		return Socket{}, err
	}
	return findPort(ss, port)
}

// ByPID returns the connector sockets that process pid holds.
func ByPID(pid int) ([]Socket, error) {
	ss, err := Sockets()
	if err != nil {
		return nil, err
	}
	return filter(ss, func(p Process) bool { return p.PID == pid }), nil
}

// ByComm returns the connector sockets held by processes whose command
// name (/proc/PID/comm, truncated by the kernel to 15 bytes) is comm.
// A longer comm is truncated the same way before comparing.
func ByComm(comm string) ([]Socket, error) {
	ss, err := Sockets()
	if err != nil {
		return nil, err
	}
	comm = truncComm(comm)
	return filter(ss, func(p Process) bool { return p.Comm == comm }), nil
}

// truncComm cuts a name as the kernel cuts task->comm (TASK_COMM_LEN 16,
// NUL included).
func truncComm(s string) string {
	if len(s) > 15 {
		return s[:15]
	}
	return s
}

func findPort(ss []Socket, port uint32) (Socket, error) {
	for _, s := range ss {
		if s.Port == port {
			return s, nil
		}
	}
	return Socket{}, fmt.Errorf("%w: port %d", ErrNotFound, port)
}

func filter(ss []Socket, keep func(Process) bool) []Socket {
	var out []Socket
	for _, s := range ss {
		if slices.ContainsFunc(s.Owners, keep) {
			out = append(out, s)
		}
	}
	return out
}

// sockets reads root/net/netlink and the owners under root.
func sockets(root string) ([]Socket, error) {
	f, err := os.Open(filepath.Join(root, "net", "netlink"))
	if err != nil {
		return nil, fmt.Errorf("cnlink/discover: %w", err)
	}
	defer f.Close()
	ss, err := parseNetlink(f)
	if err != nil {
		return nil, err
	}
	if err := findOwners(root, ss); err != nil {
		return nil, err
	}
	slices.SortFunc(ss, func(a, b Socket) int {
		switch {
		case a.Port < b.Port:
			return -1
		case a.Port > b.Port:
			return 1
		}
		return 0
	})
	return ss, nil
}

// parseNetlink parses /proc/net/netlink and keeps the NETLINK_CONNECTOR
// lines. The kernel prints (netlink_seq_show in net/netlink/af_netlink.c)
//
//	sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
//
// with sk a pointer (zeros unless kptr_restrict allows), Eth the protocol,
// Pid the port (unsigned), Groups the first 32 group bits in hex, and the
// rest decimal. Columns are found by name from the header, so that a
// kernel that adds one does not break the parse.
func parseNetlink(r io.Reader) ([]Socket, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("cnlink/discover: /proc/net/netlink: %w", err)
		}
		return nil, errors.New("cnlink/discover: /proc/net/netlink: empty")
	}
	col := map[string]int{}
	for i, h := range strings.Fields(sc.Text()) {
		col[h] = i
	}
	for _, h := range []string{"Eth", "Pid", "Groups", "Rmem", "Wmem", "Drops", "Inode"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("cnlink/discover: /proc/net/netlink: no %s column in header %q", h, sc.Text())
		}
	}
	var ss []Socket
	line := 1
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < len(col) {
			return nil, fmt.Errorf("cnlink/discover: /proc/net/netlink line %d: %d fields, want %d", line, len(f), len(col))
		}
		if f[col["Eth"]] != strconv.Itoa(ProtocolConnector) {
			continue
		}
		var s Socket
		var errs []error
		u := func(name string, base, size int) uint64 {
			v, err := strconv.ParseUint(f[col[name]], base, size)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			return v
		}
		i := func(name string) int {
			v, err := strconv.Atoi(f[col[name]])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			return v
		}
		s.Port = uint32(u("Pid", 10, 32))
		s.Groups = uint32(u("Groups", 16, 32))
		s.Rmem = i("Rmem")
		s.Wmem = i("Wmem")
		s.Drops = u("Drops", 10, 64)
		s.Inode = u("Inode", 10, 64)
		if len(errs) > 0 {
			return nil, fmt.Errorf("cnlink/discover: /proc/net/netlink line %d: %w", line, errors.Join(errs...))
		}
		ss = append(ss, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cnlink/discover: /proc/net/netlink: %w", err)
	}
	return ss, nil
}

// findOwners fills in the Owners of ss by reading the fd links of every
// process under root. Processes that vanish or that this process may not
// inspect are skipped; only a failure to list root itself is an error.
func findOwners(root string, ss []Socket) error {
	byInode := make(map[uint64][]int, len(ss)) // inode -> indexes into ss
	for i, s := range ss {
		if s.Inode != 0 {
			byInode[s.Inode] = append(byInode[s.Inode], i)
		}
	}
	if len(byInode) == 0 {
		return nil
	}
	d, err := os.Open(root)
	if err != nil {
		return fmt.Errorf("cnlink/discover: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("cnlink/discover: %w", err)
	}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		inodes := socketInodes(filepath.Join(root, name, "fd"))
		var p *Process
		for _, ino := range inodes {
			for _, i := range byInode[ino] {
				if p == nil {
					p = &Process{PID: pid, Comm: readComm(root, pid), UID: readUID(root, pid)}
				}
				if !slices.ContainsFunc(ss[i].Owners, func(q Process) bool { return q.PID == pid }) {
					ss[i].Owners = append(ss[i].Owners, *p)
				}
			}
		}
	}
	for i := range ss {
		slices.SortFunc(ss[i].Owners, func(a, b Process) int { return a.PID - b.PID })
	}
	return nil
}

// socketInodes returns the inodes of the sockets among the fd links in
// dir; nothing when dir cannot be read (no permission, process gone).
func socketInodes(dir string) []uint64 {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var out []uint64
	for _, n := range names {
		l, err := os.Readlink(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if ino, ok := parseSocketLink(l); ok {
			out = append(out, ino)
		}
	}
	return out
}

// parseSocketLink parses the target of a /proc/PID/fd link to a socket,
// "socket:[12345]".
func parseSocketLink(l string) (uint64, bool) {
	s, ok := strings.CutPrefix(l, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}

// readComm reads /proc/PID/comm without its newline; "" if unreadable.
func readComm(root string, pid int) string {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return string(bytes.TrimSuffix(b, []byte("\n")))
}

// readUID reads the real UID from /proc/PID/status; -1 if unreadable.
func readUID(root string, pid int) int {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return -1
	}
	uid, ok := parseStatusUID(b)
	if !ok {
		return -1
	}
	return uid
}

// parseStatusUID finds the real UID, the first number of the "Uid:" line
// of /proc/PID/status.
func parseStatusUID(b []byte) (int, bool) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		uid, err := strconv.Atoi(string(f[0]))
		return uid, err == nil
	}
	return 0, false
}
