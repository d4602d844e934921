//go:build linux

package transport

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cnProcCapture is one live exchange with the kernel's cn_proc: the
// answer to our PROC_CN_MCAST_LISTEN and the fork, exec and exit events
// of one child, each a whole datagram as received.
type cnProcCapture struct {
	reqAck                uint32 // the ack we sent; the answer carries reqAck+1
	childPid              uint32
	ack, fork, exec, exit []byte
	all                   [][]byte // every kernel datagram seen, others' events included
}

// captureCnProc listens to cn_proc through a raw NETLINK_CONNECTOR socket
// and runs /bin/true until it has seen that child's fork, exec and exit.
// The group is shared with every other listener on the machine, so
// events are matched by our random ack and by the child's pid, and
// foreign events are expected.
func captureCnProc(t *testing.T) cnProcCapture {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		t.Fatalf("socket(NETLINK_CONNECTOR): %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// Every process on this busy machine produces events; a queue overrun
	// would cost us ours, so ask for a large queue (FORCE needs root).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	// nl_groups is a bitmask: bit 0 is group 1, CN_IDX_PROC.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (cnProcID.Idx - 1)}); err != nil {
		t.Fatalf("bind group %d: %v", cnProcID.Idx, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrNetlink).Pid
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		t.Fatal(err)
	}

	c := cnProcCapture{reqAck: rand.Uint32() &^ 1} // even, so ack+1 cannot wrap to 0
	send := func(op uint32) error {
		seq := rand.Uint32()
		// The request goes through the codec under test: the kernel is the
		// other implementation it must agree with.
		b, err := AppendFrame(nil, &Frame{
			NlType: NlmsgDone, NlSeq: seq, NlPID: port,
			ID: cnProcID, Seq: seq, Ack: c.reqAck,
			Payload: ne.AppendUint32(nil, op), // enum proc_cn_mcast_op
		})
		if err != nil {
			return err
		}
		return unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}) // port 0: the kernel
	}
	if err := send(procCnMcastListen); err != nil {
		t.Fatalf("send PROC_CN_MCAST_LISTEN: %v", err)
	}
	// LISTEN bumps a global listener count that only IGNORE drops again
	// (closing the socket does not), so always undo it. Cleanups run last
	// in first out: this runs before the Close above.
	t.Cleanup(func() {
		if err := send(procCnMcastIgnore); err != nil {
			t.Errorf("send PROC_CN_MCAST_IGNORE: %v", err)
		}
	})

	buf := make([]byte, 1<<16)
	var s Scanner
	overruns := 0
	// A child's events can be lost to an overrun; then try a new child.
	for attempt := 0; attempt < 4 && c.exit == nil; attempt++ {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatalf("run /bin/true: %v", err)
		}
		pid := uint32(cmd.Process.Pid)
		var fork, exe, exit []byte
		deadline := time.Now().Add(5 * time.Second)
		for exit == nil && time.Now().Before(deadline) {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			switch {
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
				continue // receive timeout or a runtime signal
			case errors.Is(err, unix.ENOBUFS):
				overruns++ // the kernel dropped events for us
				continue
			case err != nil:
				t.Fatalf("recvfrom: %v", err)
			}
			if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
				continue // not from the kernel: not a cn_proc event
			}
			d := append([]byte(nil), buf[:n]...)
			c.all = append(c.all, d)
			s.Reset(d)
			if !s.Next() {
				t.Fatalf("kernel datagram % x: %v", d, s.Err())
			}
			f := s.Frame()
			ev, ok := parseProcEvent(f.Payload)
			if f.ID != cnProcID || !ok {
				continue
			}
			switch {
			case ev.What == procEventNone && f.Ack == c.reqAck+1:
				c.ack = d
			case ev.What == procEventFork && ev.Data[2] == pid && ev.Data[3] == pid:
				fork = d
			case ev.What == procEventExec && ev.Data[0] == pid && ev.Data[1] == pid:
				exe = d
			case ev.What == procEventExit && ev.Data[0] == pid && ev.Data[1] == pid:
				exit = d
			}
		}
		if fork != nil && exe != nil && exit != nil {
			c.childPid, c.fork, c.exec, c.exit = pid, fork, exe, exit
		}
	}
	if c.ack == nil || c.exit == nil {
		t.Fatalf("cn_proc capture incomplete after 4 children: ack=%t events=%t (%d datagrams, %d overruns); "+
			"cn_proc answers only callers in the initial user and pid namespaces",
			c.ack != nil, c.exit != nil, len(c.all), overruns)
	}
	return c
}

// TestIntegrationCodecKernelShapes decodes datagrams the running kernel
// sends, so that the codec is checked against the kernel's own encoder
// and not only against itself. With CNLINK_CAPTURE=1 it also rewrites
// testdata/kernel/*.bin, which TestCodecKernelCaptures and the fuzz seed
// corpus use (then run CNLINK_UPDATE_CORPUS=1 go test -run TestFuzzScannerSeedCorpus).
func TestIntegrationCodecKernelShapes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: cn_proc is a kernel peer and CI runs this as root")
	}
	c := captureCnProc(t)

	ack, ackEv := checkKernelFrame(t, "ack", c.ack)
	if ack.Ack != c.reqAck+1 || ackEv.What != procEventNone || ackEv.Data[0] != 0 {
		t.Errorf("ack: cn ack %d what %#x err %d; want %d, PROC_EVENT_NONE, 0", ack.Ack, ackEv.What, ackEv.Data[0], c.reqAck+1)
	}
	for _, e := range []struct {
		name string
		d    []byte
		what uint32
	}{{"fork", c.fork, procEventFork}, {"exec", c.exec, procEventExec}, {"exit", c.exit, procEventExit}} {
		if _, ev := checkKernelFrame(t, e.name, e.d); ev.What != e.what {
			t.Errorf("%s: what %#x, want %#x", e.name, ev.What, e.what)
		}
	}

	// Every kernel datagram, whoever caused it, is one valid frame.
	var s Scanner
	for i, d := range c.all {
		s.Reset(d)
		n := 0
		for s.Next() {
			n++
			if f := s.Frame(); f.ID != cnProcID || f.NlType != NlmsgDone {
				t.Errorf("datagram %d: %s", i, fmtFrame(f))
			}
		}
		if s.Err() != nil || n != 1 || s.Offset() != len(d) {
			t.Errorf("datagram %d (% x): %d frames, offset %d, err %v", i, d, n, s.Offset(), s.Err())
		}
	}
	t.Logf("child %d; %d kernel datagrams decoded", c.childPid, len(c.all))

	if os.Getenv("CNLINK_CAPTURE") == "1" {
		dir := filepath.Join("testdata", "kernel")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, d := range map[string][]byte{"ack": c.ack, "fork": c.fork, "exec": c.exec, "exit": c.exit} {
			if err := os.WriteFile(filepath.Join(dir, name+".bin"), d, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %s/{ack,fork,exec,exit}.bin", dir)
	}
}
