package proc

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/cnlink/cnlink/transport"
)

// The datagrams in testdata/kernel were captured from Linux 6.18 by a
// program that listened on a NETLINK_CONNECTOR socket while it ran, as
// root: /bin/true (fork, exec, exit); /bin/true with uid and gid 65534
// (uid, gid); with setsid (sid); sh writing "cnlink-comm\n" to
// /proc/self/comm then exiting 3 (comm, exit_nonzero); sh killing itself
// with SIGSEGV under ulimit -c 0 (coredump, exit_signal); PTRACE_ATTACH
// and PTRACE_DETACH of a sleep (ptrace_*); a Go thread that started and
// exited (fork_thread, exit_thread). The capturing process was PID 25191
// (0x6267), started by PID 25187 (0x6263).

// loadCapture returns the single frame of a captured datagram.
func loadCapture(t testing.TB, name string) transport.Frame {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kernel", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := transport.DecodeFrames(nil, b)
	if err != nil || len(fs) != 1 {
		t.Fatalf("%s: %d frames, %v", name, len(fs), err)
	}
	return fs[0]
}

func TestDecodeKernelCaptures(t *testing.T) {
	const self, shell = 0x6267, 0x6263
	comm := func(s string) (c [CommLen]byte) { copy(c[:], s); return c }
	tests := []struct {
		name string
		want Event // Timestamp, CPU and Seq are checked separately
	}{
		{"ack", Event{Kind: KindNone, What: whatNone}},
		{"fork", Event{Kind: KindFork, What: whatFork, PID: 0x6272, TID: 0x6272, ParentPID: self, ParentTID: self}},
		{"exec", Event{Kind: KindExec, What: whatExec, PID: 0x6272, TID: 0x6272}},
		{"exit", Event{Kind: KindExit, What: whatExit, PID: 0x6272, TID: 0x6272, ExitSignal: uint32(syscall.SIGCHLD), ParentPID: self, ParentTID: self}},
		{"uid", Event{Kind: KindUID, What: whatUID, PID: 0x6273, TID: 0x6273, RealID: 65534, EffectiveID: 65534}},
		{"gid", Event{Kind: KindGID, What: whatGID, PID: 0x6273, TID: 0x6273, RealID: 65534, EffectiveID: 65534}},
		{"sid", Event{Kind: KindSID, What: whatSID, PID: 0x6274, TID: 0x6274}},
		{"comm", Event{Kind: KindComm, What: whatComm, PID: 0x6275, TID: 0x6275, Comm: comm("cnlink-comm\n")}},
		{"exit_nonzero", Event{Kind: KindExit, What: whatExit, PID: 0x6275, TID: 0x6275, ExitCode: 3 << 8, ExitSignal: uint32(syscall.SIGCHLD), ParentPID: self, ParentTID: self}},
		{"coredump", Event{Kind: KindCoredump, What: whatCoredump, PID: 0x6276, TID: 0x6276, ParentPID: self, ParentTID: self}},
		{"exit_signal", Event{Kind: KindExit, What: whatExit, PID: 0x6276, TID: 0x6276, ExitCode: uint32(syscall.SIGSEGV), ExitSignal: uint32(syscall.SIGCHLD), ParentPID: self, ParentTID: self}},
		{"ptrace_attach", Event{Kind: KindPtrace, What: whatPtrace, PID: 0x6277, TID: 0x6277, TracerPID: self, TracerTID: 0x6270}},
		{"ptrace_detach", Event{Kind: KindPtrace, What: whatPtrace, PID: 0x6277, TID: 0x6277}},
		// A thread: its exit_signal is -1 and, being gone from its
		// parent's view, it reports no parent.
		{"exit_thread", Event{Kind: KindExit, What: whatExit, PID: self, TID: 0x6270, ExitSignal: ^uint32(0)}},
		// A thread's "parent" is its process's parent (real_parent).
		{"fork_thread", Event{Kind: KindFork, What: whatFork, PID: self, TID: 0x6278, ParentPID: shell, ParentTID: shell}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := loadCapture(t, tt.name)
			if len(f.Payload) != EventLen {
				t.Fatalf("payload %d bytes, want %d", len(f.Payload), EventLen)
			}
			got, err := Decode(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if got.Timestamp == 0 || got.CPU > 1 {
				t.Errorf("timestamp %d cpu %d: header misdecoded", got.Timestamp, got.CPU)
			}
			got.Timestamp, got.CPU = 0, 0
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode:\n got %+v\nwant %+v", got, tt.want)
			}
			// The kernel copies cn_msg.seq into nlmsg_seq.
			if f.NlSeq != f.Seq || f.ID != procID || f.NlType != transport.NlmsgDone {
				t.Errorf("header: %+v", f)
			}
		})
	}
}

func TestDecodeCaptureHelpers(t *testing.T) {
	ev, _ := Decode(loadCapture(t, "comm").Payload)
	if got := ev.CommString(); got != "cnlink-comm\n" {
		t.Errorf("CommString = %q", got)
	}
	ev, _ = Decode(loadCapture(t, "exit_nonzero").Payload)
	if ws := ev.WaitStatus(); !ws.Exited() || ws.ExitStatus() != 3 {
		t.Errorf("exit_nonzero: WaitStatus %#x: exited=%v status=%d", uint32(ws), ws.Exited(), ws.ExitStatus())
	}
	ev, _ = Decode(loadCapture(t, "exit_signal").Payload)
	if ws := ev.WaitStatus(); !ws.Signaled() || ws.Signal() != syscall.SIGSEGV || ws.CoreDump() {
		t.Errorf("exit_signal: WaitStatus %#x", uint32(ws))
	}
	// The ack answers the capture's LISTEN: the kernel put its per-CPU
	// counter in seq and the request's ack + 1 in ack.
	f := loadCapture(t, "ack")
	if f.Ack == 0 {
		t.Errorf("ack capture has ack 0")
	}
}

// TestDecodeShort feeds every prefix of every capture: nothing panics, a
// payload without a whole header is ErrShortEvent, and a known type with
// a short body is KindUnknown holding the bytes, never zero-filled
// fields.
func TestDecodeShort(t *testing.T) {
	names, _ := filepath.Glob("testdata/kernel/*.bin")
	if len(names) == 0 {
		t.Fatal("no captures")
	}
	for _, path := range names {
		name := strings.TrimSuffix(filepath.Base(path), ".bin")
		p := loadCapture(t, name).Payload
		full, _ := Decode(p)
		_, need := kindOf(full.What)
		for n := 0; n <= len(p); n++ {
			ev, err := Decode(p[:n])
			switch {
			case n < eventHeaderLen:
				if !errors.Is(err, ErrShortEvent) {
					t.Errorf("%s[:%d]: err %v, want ErrShortEvent", name, n, err)
				}
			case n < eventHeaderLen+need:
				if err != nil || ev.Kind != KindUnknown || ev.What != full.What || string(ev.Raw) != string(p[:n]) {
					t.Errorf("%s[:%d]: %v %v, want KindUnknown with the raw bytes", name, n, ev, err)
				}
			default:
				if err != nil || ev.Kind != full.Kind {
					t.Errorf("%s[:%d]: %v %v, want %v", name, n, ev, err, full.Kind)
				}
			}
		}
	}
}

func TestDecodeUnknownAndLonger(t *testing.T) {
	p := loadCapture(t, "fork").Payload
	// A later kernel's larger union: the known prefix decodes.
	longer := append(append([]byte(nil), p...), 1, 2, 3, 4, 5, 6, 7, 8)
	a, _ := Decode(p)
	b, err := Decode(longer)
	if err != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("longer payload: %v %v, want %v", b, err, a)
	}
	// A type this package does not know (PROC_EVENT "next" bit 0x400).
	u := append([]byte(nil), p...)
	ne.PutUint32(u, 0x400)
	ev, err := Decode(u)
	if err != nil || ev.Kind != KindUnknown || ev.What != 0x400 || string(ev.Raw) != string(u) || ev.PID != 0 {
		t.Errorf("unknown type: %+v %v", ev, err)
	}
	u[0] = 9 // Raw is a copy, not an alias of the datagram
	if ev.Raw[0] == 9 {
		t.Error("Raw aliases the input")
	}
}

func TestAppendEventRoundTrip(t *testing.T) {
	names, _ := filepath.Glob("testdata/kernel/*.bin")
	for _, path := range names {
		name := strings.TrimSuffix(filepath.Base(path), ".bin")
		p := loadCapture(t, name).Payload
		ev, _ := Decode(p)
		if got := AppendEvent(nil, &ev); string(got) != string(p) {
			t.Errorf("%s: AppendEvent(Decode(b)) != b\n got %x\nwant %x", name, got, p)
		}
	}
	if b := AppendEvent([]byte{1}, &Event{Kind: KindLost}); len(b) != 1 {
		t.Errorf("KindLost encoded to %x; it never travels on the wire", b)
	}
}

// TestMaskAllows checks the kernel's cn_filter rule, case by case.
func TestMaskAllows(t *testing.T) {
	tests := []struct {
		m    Mask
		what uint32
		code uint32
		want bool
	}{
		{0, whatFork, 0, true},                   // zero means all
		{MaskAll, whatNone, 0, true},             // ALL passes everything, acks too
		{MaskAll, 0x400, 0, true},                // and future types
		{MaskExit, whatNone, 0, false},           // a filtered socket never sees acks
		{MaskExit, whatExit, 0, true},            //
		{MaskExit, whatFork, 0, false},           //
		{MaskNonzeroExit, whatExit, 0, false},    // zero status filtered out
		{MaskNonzeroExit, whatExit, 0x100, true}, //
		{MaskNonzeroExit | MaskExit, whatExit, 0, true},
		{MaskFork | MaskExec, whatExec, 0, true},
		{MaskFork | MaskExec, whatComm, 0, false},
		{MaskFork | 0x400, 0x400, 0, false}, // unknown bits are cleared, as valid_event does
	}
	for _, tt := range tests {
		if got := tt.m.Allows(tt.what, tt.code); got != tt.want {
			t.Errorf("Mask(%#x).Allows(%#x, %#x) = %v, want %v", uint32(tt.m), tt.what, tt.code, got, tt.want)
		}
	}
}

func TestKindWhatRoundTrip(t *testing.T) {
	for k := KindUnknown; k <= KindLost; k++ {
		what, ok := k.What()
		if !ok {
			if k != KindUnknown && k != KindLost {
				t.Errorf("%v has no What", k)
			}
			continue
		}
		if got, _ := kindOf(what); got != k {
			t.Errorf("kindOf(%v.What()) = %v", k, got)
		}
		if strings.HasPrefix(k.String(), "Kind(") {
			t.Errorf("%d has no name", k)
		}
	}
}
