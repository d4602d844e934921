package discover

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) ([]Socket, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return parseNetlink(f)
}

// TestParseNetlink: the connector lines of a real /proc/net/netlink (Linux
// 6.18: an autobound port, one after an autobind collision, the kernel's
// socket, a socket in groups 3 and 31, one with a queued datagram), other
// protocols skipped.
func TestParseNetlink(t *testing.T) {
	ss, err := parseFile(t, "netlink.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Port: 2811266209, Inode: 508810},
		{Port: 3199, Groups: 1, Inode: 508808},
		{Port: 0, Inode: 1027},
		{Port: 77, Groups: 0x40000004, Inode: 508811},
		{Port: 1234567890, Rmem: 832, Inode: 508809},
	}
	if !reflect.DeepEqual(ss, want) {
		t.Fatalf("got  %+v\nwant %+v", ss, want)
	}
	if g := ss[3].GroupList(); !reflect.DeepEqual(g, []uint32{3, 31}) {
		t.Errorf("GroupList = %v, want [3 31]", g)
	}
	if g := ss[0].GroupList(); g != nil {
		t.Errorf("GroupList = %v, want none", g)
	}
	if !ss[2].Kernel() || ss[1].Kernel() {
		t.Error("Kernel() wrong")
	}
}

// TestParseNetlinkDrops: a socket whose multicast group overflowed (real
// file: 50 datagrams to group 5 with SO_RCVBUF 1024, 48 dropped).
func TestParseNetlinkDrops(t *testing.T) {
	ss, err := parseFile(t, "netlink-drops.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Port: 4030430958, Inode: 510461},
		{Port: 0, Inode: 1027},
		{Port: 3324, Groups: 0x10, Rmem: 1664, Drops: 48, Inode: 510460},
	}
	if !reflect.DeepEqual(ss, want) {
		t.Fatalf("got  %+v\nwant %+v", ss, want)
	}
	if g := ss[2].GroupList(); !reflect.DeepEqual(g, []uint32{5}) {
		t.Errorf("GroupList = %v, want [5]", g)
	}
}

func TestParseNetlinkEmptyAndBad(t *testing.T) {
	ss, err := parseFile(t, "netlink-empty.txt")
	if err != nil || len(ss) != 0 {
		t.Fatalf("header only: %v %v, want nothing", ss, err)
	}
	if _, err := parseFile(t, "netlink-bad.txt"); err == nil || !strings.Contains(err.Error(), "Groups") {
		t.Fatalf("bad Groups: err = %v", err)
	}
	for _, in := range []string{
		"",
		"sk Eth Pid Groups\n",
		"sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode\n0 11 5\n",
		"sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode\n0 11 99999999999 0 0 0 0 2 0 1\n",
	} {
		if _, err := parseNetlink(strings.NewReader(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestParseSocketLink(t *testing.T) {
	for _, tt := range []struct {
		in  string
		ino uint64
		ok  bool
	}{
		{"socket:[508808]", 508808, true},
		{"socket:[0]", 0, true},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
	} {
		ino, ok := parseSocketLink(tt.in)
		if ino != tt.ino || ok != tt.ok {
			t.Errorf("%q: %d %v, want %d %v", tt.in, ino, ok, tt.ino, tt.ok)
		}
	}
}

func TestParseStatusUID(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "status.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if uid, ok := parseStatusUID(b); !ok || uid != 1000 {
		t.Errorf("uid %d %v, want 1000", uid, ok)
	}
	if _, ok := parseStatusUID([]byte("Name:\tx\n")); ok {
		t.Error("no Uid line: ok")
	}
	if _, ok := parseStatusUID([]byte("Uid:\n")); ok {
		t.Error("empty Uid line: ok")
	}
}

// fakeProc builds a /proc tree: net/netlink from the fixture, and
// processes with fd links, comm and status.
func fakeProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p string, data string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join("testdata", "netlink.txt"))
	if err != nil {
		t.Fatal(err)
	}
	mk("net/netlink", string(b))
	// 3199 holds two sockets, and forked 3300, which shares one.
	mk("3199/comm", "python3\n")
	mk("3199/status", "Name:\tpython3\nUid:\t0\t0\t0\t0\n")
	link("/dev/null", "3199/fd/0")
	link("socket:[508808]", "3199/fd/3")
	link("socket:[508809]", "3199/fd/4")
	link("socket:[999]", "3199/fd/5") // some other socket
	mk("3300/comm", "worker\n")
	mk("3300/status", "Uid:\t1000\t1000\t1000\t1000\n")
	link("socket:[508809]", "3300/fd/7")
	// 4000 cannot be inspected (no fd directory), 4100 has no comm.
	mk("4000/comm", "secret\n")
	link("socket:[508811]", "4100/fd/3")
	mk("self/comm", "ignored\n") // not a PID
	return root
}

func TestSocketsOwners(t *testing.T) {
	ss, err := sockets(fakeProc(t))
	if err != nil {
		t.Fatal(err)
	}
	ports := []uint32{}
	for _, s := range ss {
		ports = append(ports, s.Port)
	}
	if want := []uint32{0, 77, 3199, 1234567890, 2811266209}; !reflect.DeepEqual(ports, want) {
		t.Fatalf("ports %v, want %v (sorted)", ports, want)
	}
	owners := func(port uint32) []Process {
		s, err := findPort(ss, port)
		if err != nil {
			t.Fatal(err)
		}
		return s.Owners
	}
	if o := owners(3199); !reflect.DeepEqual(o, []Process{{PID: 3199, Comm: "python3", UID: 0}}) {
		t.Errorf("3199: %+v", o)
	}
	if o := owners(1234567890); !reflect.DeepEqual(o, []Process{{PID: 3199, Comm: "python3", UID: 0}, {PID: 3300, Comm: "worker", UID: 1000}}) {
		t.Errorf("1234567890: %+v", o)
	}
	if o := owners(77); !reflect.DeepEqual(o, []Process{{PID: 4100, Comm: "", UID: -1}}) {
		t.Errorf("77: %+v", o)
	}
	if o := owners(0); o != nil {
		t.Errorf("kernel socket owned by %+v", o)
	}
	if o := owners(2811266209); o != nil {
		t.Errorf("2811266209 owned by %+v", o)
	}
	if got := filter(ss, func(p Process) bool { return p.PID == 3199 }); len(got) != 2 || got[0].Port != 3199 || got[1].Port != 1234567890 {
		t.Errorf("by pid 3199: %+v", got)
	}
	if got := filter(ss, func(p Process) bool { return p.Comm == "worker" }); len(got) != 1 || got[0].Port != 1234567890 {
		t.Errorf("by comm worker: %+v", got)
	}
	if _, err := findPort(ss, 5); !errors.Is(err, ErrNotFound) {
		t.Errorf("port 5: %v, want ErrNotFound", err)
	}
}

func TestSocketsNoNetlinkFile(t *testing.T) {
	if _, err := sockets(t.TempDir()); err == nil {
		t.Fatal("no error without net/netlink")
	}
}

func TestCheck(t *testing.T) {
	ss, err := sockets(fakeProc(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		port uint32
		want Expect
		err  error
	}{
		{3199, Expect{}, nil},
		{3199, Expect{Comm: "python3"}, nil},
		{3199, Expect{Comm: "python3", UIDs: []int{0}}, nil},
		{3199, Expect{UIDs: []int{1000}}, ErrUnexpectedOwner},
		{3199, Expect{Comm: "bash"}, ErrUnexpectedOwner},
		{1234567890, Expect{Comm: "worker", UIDs: []int{1000}}, nil}, // the second holder matches
		{1234567890, Expect{Comm: "worker", UIDs: []int{0}}, ErrUnexpectedOwner},
		{2811266209, Expect{}, nil},                         // holder unseen, nothing asked
		{2811266209, Expect{Comm: "x"}, ErrUnexpectedOwner}, // holder unseen: fail closed
		{42, Expect{}, ErrNotFound},
	} {
		_, err := check(ss, tt.port, tt.want)
		if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("port %d %v: %v, want %v", tt.port, tt.want, err, tt.err)
		}
	}
	_, err = check(ss, 3199, Expect{Comm: "bash"})
	if want := `cnlink/discover: port 3199 is held by pid 3199 (python3, uid 0), want comm "bash"`; err == nil || err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
}

func TestPortForName(t *testing.T) {
	// Values computed independently (FNV-1a 32, masked), so that a change
	// of the convention is noticed: peers in other languages rely on it.
	for name, want := range map[string]uint32{
		"":                1092394437,
		"a":               1678518572,
		"echo":            1419629700,
		"cnlink-echo":     1631963010,
		"example-service": 2072266295,
	} {
		if got := PortForName(name); got != want {
			t.Errorf("PortForName(%q) = %d, want %d", name, got, want)
		}
	}
	seen := map[uint32]string{}
	for i := range 10000 {
		name := "svc-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i)
		p := PortForName(name)
		if p < MinNamedPort || p > MaxNamedPort || p == 0 {
			t.Fatalf("PortForName(%q) = %d outside [%d, %d]", name, p, MinNamedPort, MaxNamedPort)
		}
		if p != PortForName(name) {
			t.Fatalf("PortForName(%q) not deterministic", name)
		}
		seen[p] = name
	}
	if len(seen) < 9990 { // 2^30 ports: a collision among 10,000 names has odds of about 5%
		t.Errorf("only %d distinct ports for 10000 names", len(seen))
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestPortInUseErrorText(t *testing.T) {
	e := &PortInUseError{Port: 7, Name: "svc", Holders: []Process{{PID: 12, Comm: "srv", UID: 0}}, Err: errors.New("x")}
	if want := `cnlink/discover: port 7 (name "svc") is in use by pid 12 (srv, uid 0)`; e.Error() != want {
		t.Errorf("%q\nwant %q", e.Error(), want)
	}
	e.Holders = nil
	if !strings.Contains(e.Error(), "cannot inspect") {
		t.Errorf("%q", e.Error())
	}
	if !errors.Is(e, ErrPortInUse) {
		t.Error("does not match ErrPortInUse")
	}
}
