//go:build linux

package proc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/transport"
)

// These tests subscribe to the real proc connector. It needs no privilege
// on Linux 6.x, but spawning processes under other credentials, tracing
// them and sending from one user port to another need root, which CI has.
// The machine is shared: other processes fork and exit all the time, and
// other test binaries may listen to cn_proc at the same moment, so every
// assertion is about the processes a test spawned itself, and none
// assumes that the event stream holds nothing else.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (credentials, ptrace, user-to-user netlink sends)")
	}
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of Event.Timestamp.
func monotonicNow(t testing.TB) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// collector reads a Monitor's events on its own goroutine, as an
// application would, and keeps what the tests look at.
type collector struct {
	m    *Monitor
	done chan struct{}

	mu      sync.Mutex
	events  []Event // every event except those of foreign pids, when keep is set
	keep    func(Event) bool
	losses  []Loss   // every loss report
	lastTS  []uint64 // per CPU: timestamp of the last event received
	nEvents int
}

func collect(m *Monitor, keep func(Event) bool) *collector {
	c := &collector{m: m, done: make(chan struct{}), keep: keep}
	go func() {
		defer close(c.done)
		for {
			select {
			case ev := <-m.Events():
				c.add(ev)
			case <-m.Done():
				for {
					select {
					case ev := <-m.Events():
						c.add(ev)
					default:
						return
					}
				}
			}
		}
	}()
	return c
}

func (c *collector) add(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Kind == KindLost {
		c.losses = append(c.losses, ev.Loss)
		return
	}
	c.nEvents++
	if int(ev.CPU) < 4096 {
		for len(c.lastTS) <= int(ev.CPU) {
			c.lastTS = append(c.lastTS, 0)
		}
		c.lastTS[ev.CPU] = max(c.lastTS[ev.CPU], ev.Timestamp)
	}
	if c.keep == nil || c.keep(ev) {
		c.events = append(c.events, ev)
	}
}

// find returns the first kept event that f accepts.
func (c *collector) find(f func(Event) bool) (Event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.events {
		if f(ev) {
			return ev, true
		}
	}
	return Event{}, false
}

// index returns the position of ev among the kept events, or -1.
func (c *collector) index(ev Event) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.events {
		if e.Kind == ev.Kind && e.CPU == ev.CPU && e.Seq == ev.Seq && e.Timestamp == ev.Timestamp {
			return i
		}
	}
	return -1
}

// waitFor polls until f holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIntegrationChildLifecycle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := Listen(ctx, Config{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	c := collect(m, nil)

	cmd := exec.Command("/bin/sh", "-c", "exit 3")
	if err := cmd.Run(); err == nil {
		t.Fatal("sh -c 'exit 3' succeeded")
	}
	pid := cmd.Process.Pid
	self := os.Getpid()

	var fork, execEv, exit Event
	waitFor(t, 10*time.Second, fmt.Sprintf("fork, exec and exit of pid %d", pid), func() bool {
		var ok1, ok2, ok3 bool
		fork, ok1 = c.find(func(e Event) bool { return e.Kind == KindFork && e.PID == pid })
		execEv, ok2 = c.find(func(e Event) bool { return e.Kind == KindExec && e.PID == pid })
		exit, ok3 = c.find(func(e Event) bool { return e.Kind == KindExit && e.PID == pid })
		return ok1 && ok2 && ok3
	})
	if fork.TID != pid || fork.ParentPID != self {
		t.Errorf("fork: %v; want child %d/%d of %d", fork, pid, pid, self)
	}
	if execEv.TID != pid {
		t.Errorf("exec: %v", execEv)
	}
	if exit.TID != pid || exit.ParentPID != self || exit.WaitStatus().ExitStatus() != 3 ||
		exit.ExitSignal != uint32(syscall.SIGCHLD) {
		t.Errorf("exit: %v; want status 3, SIGCHLD, parent %d", exit, self)
	}
	// One process's events are generated in this order and queued on
	// the socket synchronously, so they arrive in it too, whichever CPUs
	// they come from.
	if !(fork.Timestamp <= execEv.Timestamp && execEv.Timestamp <= exit.Timestamp) {
		t.Errorf("timestamps out of order: fork %d exec %d exit %d", fork.Timestamp, execEv.Timestamp, exit.Timestamp)
	}
	if i, j, k := c.index(fork), c.index(execEv), c.index(exit); !(i < j && j < k) {
		t.Errorf("arrival order: fork #%d exec #%d exit #%d", i, j, k)
	}
	now := monotonicNow(t)
	if exit.Timestamp > now || now-exit.Timestamp > uint64(time.Minute) {
		t.Errorf("exit timestamp %d is not CLOCK_MONOTONIC (now %d)", exit.Timestamp, now)
	}
	st := m.Stats()
	t.Logf("stats %+v, %d loss reports", st, len(c.losses))
	if st.Received == 0 || st.Rejected != 0 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}

	// Cancelling the context ends the Monitor.
	cancel()
	<-m.Done()
	<-c.done
	if !errors.Is(m.Err(), context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", m.Err())
	}
}

// TestIntegrationAllKinds makes the kernel generate every event type and
// checks the decoded fields against what the test did.
func TestIntegrationAllKinds(t *testing.T) {
	requireRoot(t)
	m, err := Listen(context.Background(), Config{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	c := collect(m, nil)
	self := os.Getpid()

	run := func(attr *syscall.SysProcAttr, name string, args ...string) int {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = attr
		_ = cmd.Run()
		return cmd.Process.Pid
	}
	credPID := run(&syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65533}}, "/bin/true")
	sidPID := run(&syscall.SysProcAttr{Setsid: true}, "/bin/true")
	commPID := run(nil, "/bin/sh", "-c", "printf cnlink-test > /proc/self/comm")
	corePID := run(nil, "/bin/sh", "-c", "ulimit -c 0; kill -SEGV $$")

	sleeper := exec.Command("/bin/sleep", "5")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	tracedPID := sleeper.Process.Pid
	tracerTID := make(chan int, 1)
	traced := make(chan struct{})
	go func() {
		defer close(traced)
		// ptrace requests must come from the tracing thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tracerTID <- unix.Gettid()
		if err := unix.PtraceAttach(tracedPID); err != nil {
			t.Errorf("PTRACE_ATTACH: %v", err)
			return
		}
		var ws unix.WaitStatus
		_, _ = unix.Wait4(tracedPID, &ws, unix.WALL, nil)
		if err := unix.PtraceDetach(tracedPID); err != nil {
			t.Errorf("PTRACE_DETACH: %v", err)
		}
	}()
	tid := <-tracerTID
	<-traced

	checks := []struct {
		what string
		ok   func(Event) bool
	}{
		{"uid", func(e Event) bool {
			return e.Kind == KindUID && e.PID == credPID && e.RealID == 65534 && e.EffectiveID == 65534
		}},
		{"gid", func(e Event) bool {
			return e.Kind == KindGID && e.PID == credPID && e.RealID == 65533 && e.EffectiveID == 65533
		}},
		{"sid", func(e Event) bool { return e.Kind == KindSID && e.PID == sidPID }},
		{"comm", func(e Event) bool { return e.Kind == KindComm && e.PID == commPID && e.CommString() == "cnlink-test" }},
		{"coredump", func(e Event) bool { return e.Kind == KindCoredump && e.PID == corePID && e.ParentPID == self }},
		{"exit by signal", func(e Event) bool {
			return e.Kind == KindExit && e.PID == corePID && e.WaitStatus().Signaled() && e.WaitStatus().Signal() == syscall.SIGSEGV
		}},
		{"ptrace attach", func(e Event) bool {
			return e.Kind == KindPtrace && e.PID == tracedPID && e.TracerPID == self && e.TracerTID == tid
		}},
		{"ptrace detach", func(e Event) bool { return e.Kind == KindPtrace && e.PID == tracedPID && e.TracerPID == 0 }},
	}
	for _, ch := range checks {
		waitFor(t, 10*time.Second, ch.what+" event", func() bool { _, ok := c.find(ch.ok); return ok })
	}
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	if st := m.Stats(); st.Unknown != 0 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestIntegrationForgedEventRejected sends, from another netlink socket,
// a datagram identical to a kernel fork event (nlmsg_pid 0, cb_id 1:1,
// sequence numbers in the kernel's style) straight to the Monitor's port.
// The kernel stamps the sender's real port on it, and the Monitor drops
// and counts it. The forgery is unicast on purpose: a multicast to group
// 1 would reach every proc connector listener on the machine.
func TestIntegrationForgedEventRejected(t *testing.T) {
	requireRoot(t)
	m, err := Listen(context.Background(), Config{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	marker := 0x7f000000 + rand.IntN(1<<20) // beyond pid_max
	c := collect(m, nil)

	forger, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	fake := Event{Kind: KindFork, CPU: 0, Timestamp: monotonicNow(t), PID: marker, TID: marker, ParentPID: 1, ParentTID: 1}
	b := frameOf(&fake)
	if err := forger.Send(transport.Addr{Port: m.LocalPort()}, b); err != nil {
		t.Fatalf("forger: %v", err)
	}
	// The unicast was queued before this child exists, so once the
	// child's exit has arrived, the forgery has been handled.
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	waitFor(t, 10*time.Second, "the child's exit", func() bool {
		_, ok := c.find(func(e Event) bool { return e.Kind == KindExit && e.PID == pid })
		return ok
	})
	if ev, ok := c.find(func(e Event) bool { return e.PID == marker || e.TID == marker }); ok {
		t.Fatalf("forged event delivered: %v", ev)
	}
	if st := m.Stats(); st.Rejected < 1 {
		t.Fatalf("Rejected = %d, want the forgery counted: %+v", st.Rejected, st)
	}
}

// TestIntegrationKernelFilter subscribes with a kernel-side filter for
// non-zero exits only (Linux 6.6+; this project's kernels are 6.x).
func TestIntegrationKernelFilter(t *testing.T) {
	m, err := Listen(context.Background(), Config{KernelFilter: true, Events: MaskNonzeroExit})
	if errors.Is(err, ErrFilterUnsupported) {
		var u unix.Utsname
		_ = unix.Uname(&u)
		t.Fatalf("kernel %s: %v", unix.ByteSliceToString(u.Release[:]), err)
	}
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	c := collect(m, nil)
	ok := exec.Command("/bin/true")
	_ = ok.Run()
	bad := exec.Command("/bin/sh", "-c", "exit 5")
	_ = bad.Run()
	waitFor(t, 10*time.Second, "the non-zero exit", func() bool {
		_, ok := c.find(func(e Event) bool { return e.Kind == KindExit && e.PID == bad.Process.Pid })
		return ok
	})
	if _, found := c.find(func(e Event) bool { return e.PID == ok.Process.Pid }); found {
		t.Error("the kernel delivered an event of the process that exited 0")
	}
	if _, found := c.find(func(e Event) bool { return e.Kind != KindExit || e.ExitCode == 0 }); found {
		t.Error("the kernel delivered an event the filter excludes")
	}
	c.mu.Lock()
	for _, l := range c.losses {
		if l.Missed != 0 {
			t.Errorf("loss report with Missed under a kernel filter: %v", l)
		}
	}
	c.mu.Unlock()
}

// TestIntegrationReceiveBufferGrows starts with a tiny receive buffer; the
// first overruns double it.
func TestIntegrationReceiveBufferGrows(t *testing.T) {
	m, err := Listen(context.Background(), Config{ReadBuffer: 4096, MaxReadBuffer: 1 << 20})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	c := collect(m, nil)
	// A reader that keeps up sees no overrun; bursts from several
	// goroutines outrun it within a batch or two.
	for i := 0; m.Stats().Overruns == 0 && i < 20; i++ {
		spawnMany(t, 8, 50)
	}
	waitFor(t, 10*time.Second, "an overrun", func() bool { return m.Stats().Overruns > 0 })
	st := m.Stats()
	if st.ReadBuffer <= 4096 {
		t.Errorf("ReadBuffer %d after %d overruns", st.ReadBuffer, st.Overruns)
	}
	t.Logf("stats %+v, %d events", st, c.nEventsLocked())
}

func (c *collector) nEventsLocked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nEvents
}

// spawned is one process a test started: its PID and the
// CLOCK_MONOTONIC interval in which its exit event was generated (from
// before fork to after wait returned).
type spawned struct {
	pid        int
	start, end uint64
}

// spawnMany runs /bin/true n times from each of g goroutines.
func spawnMany(t *testing.T, g, n int) []spawned {
	t.Helper()
	var mu sync.Mutex
	var all []spawned
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]spawned, 0, n)
			for range n {
				s := spawned{start: monotonicNow(t)}
				cmd := exec.Command("/bin/true")
				if err := cmd.Run(); err != nil {
					t.Errorf("spawn: %v", err)
					return
				}
				s.pid, s.end = cmd.Process.Pid, monotonicNow(t)
				local = append(local, s)
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

// onEveryCPU makes the kernel generate events on each CPU this process
// may run on, by forking from a thread pinned to it: a fork event is
// generated on the forking CPU, and the child inherits the pinning.
func onEveryCPU(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for cpu := range 1024 {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	var wg sync.WaitGroup
	for _, cpu := range cpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Never unlocked: the thread exits with the goroutine, so the
			// pinning dies with it.
			runtime.LockOSThread()
			var one unix.CPUSet
			one.Set(cpu)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				t.Errorf("pin to CPU %d: %v", cpu, err)
				return
			}
			_ = exec.Command("/bin/true").Run()
		}()
	}
	wg.Wait()
	return cpus
}

// everyCPUSince reports whether the collector has an event later than ts
// from each of cpus.
func (c *collector) everyCPUSince(cpus []int, ts uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cpu := range cpus {
		if cpu >= len(c.lastTS) || c.lastTS[cpu] <= ts {
			return false
		}
	}
	return true
}

// TestIntegrationForkStorm spawns 2000 short processes from 8 goroutines
// while the Monitor has a receive buffer of a few events that may not
// grow, so that the kernel drops events wholesale. Every process the test
// spawned must then be accounted for: its exit event was received, or
// it was lost inside a gap that a loss report covers.
//
// What the accounting can and cannot claim. A gap's count is exact, but it
// counts every event lost on that CPU, the whole machine's forks and
// exits included, so it does not say which processes were lost; its time
// bounds (Loss.After, Loss.Before) say when. So the test checks, for
// each spawned process whose exit did not arrive:
//
//  1. a gap covers the time in which its exit was generated. That time
//     lies between just before the fork and just after wait returned
//     (the kernel sends the exit event before it notifies the parent).
//     A gap's After is the timestamp of a received event with a lower
//     sequence number on that CPU, generated before the lost exit was
//     sent, so After <= end holds exactly; Before is the timestamp of an
//     event with a higher sequence number, which can be older than the
//     exit's own only by the time a task spends preempted between
//     stamping and sending an event, so Before >= start - slack.
//  2. the gaps covering missing exits missed at least as many events as
//     there are missing exits, since each lost event is one of them.
//  3. every event the storm generated was either received or counted
//     missing: each process costs at least three events (fork, exec,
//     exit), all between an event of every CPU before the storm and one
//     after it, so events received plus events missed is at least three
//     times the processes spawned (the rest is the machine's own).
//
// Gaps are found from each CPU's next received event, so the test makes
// every CPU generate an event before the storm (so a gap has a lower
// bound) and after it (so the last gaps are revealed). The Monitor's own
// buffer is large and read continuously: Dropped must stay zero, so that
// every loss is the kernel's.
func TestIntegrationForkStorm(t *testing.T) {
	const (
		goroutines = 8
		perG       = 250
		slack      = uint64(100 * time.Millisecond)
	)
	m, err := Listen(context.Background(), Config{ReadBuffer: 4096, MaxReadBuffer: -1, Buffer: 1 << 16})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	c := collect(m, func(e Event) bool { return e.Kind == KindExit && e.PID == e.TID })

	before := monotonicNow(t)
	cpus := onEveryCPU(t)
	waitFor(t, 30*time.Second, "an event from every CPU before the storm", func() bool {
		if c.everyCPUSince(cpus, before) {
			return true
		}
		onEveryCPU(t)
		return false
	})

	stormStart := monotonicNow(t)
	procs := spawnMany(t, goroutines, perG)
	stormEnd := monotonicNow(t)
	waitFor(t, 30*time.Second, "an event from every CPU after the storm", func() bool {
		if c.everyCPUSince(cpus, stormEnd+slack) {
			return true
		}
		onEveryCPU(t)
		return false
	})
	_ = m.Close()
	<-c.done

	c.mu.Lock()
	defer c.mu.Unlock()
	received := make(map[int]bool, len(c.events))
	for _, ev := range c.events {
		received[ev.PID] = true
	}
	var gaps []Loss
	var missedTotal, overruns, dropped uint64
	for _, l := range c.losses {
		missedTotal += l.Missed
		overruns += l.Overruns
		dropped += l.Dropped
		if l.Missed > 0 {
			gaps = append(gaps, l)
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].After < gaps[j].After })

	var got, missing int
	covering := make(map[int]bool) // indexes of gaps covering a missing exit
	for _, p := range procs {
		if received[p.pid] {
			got++
			continue
		}
		missing++
		found := false
		for i, g := range gaps {
			if g.After <= p.end && g.Before+slack >= p.start {
				covering[i] = true
				found = true
			}
		}
		if !found {
			t.Errorf("pid %d (alive %d..%d ns) lost without a loss report covering it", p.pid, p.start, p.end)
		}
	}
	var coveredMissed uint64
	for i := range covering {
		coveredMissed += gaps[i].Missed
	}
	st := m.Stats()
	t.Logf("spawned %d processes in %v on %d CPUs: exits received %d, missing %d; "+
		"loss reports: %d gaps missing %d events (%d in gaps covering missing exits), %d overruns, %d dropped; "+
		"%d events received in all; stats %+v",
		len(procs), time.Duration(stormEnd-stormStart), len(cpus), got, missing,
		len(gaps), missedTotal, coveredMissed, overruns, dropped, c.nEvents, st)

	if len(procs) != goroutines*perG {
		t.Fatalf("spawned %d of %d", len(procs), goroutines*perG)
	}
	if uint64(missing) > coveredMissed {
		t.Errorf("%d exits missing, but the gaps covering them missed only %d events", missing, coveredMissed)
	}
	if uint64(c.nEvents)+missedTotal < 3*uint64(len(procs)) {
		t.Errorf("received %d + missed %d events < 3 per spawned process (%d): events vanished without a report",
			c.nEvents, missedTotal, 3*len(procs))
	}
	if dropped != 0 || st.Dropped != 0 {
		t.Errorf("the Monitor dropped %d events: the collector should keep up", dropped)
	}
	if st.Missed != missedTotal || st.Overruns != overruns {
		t.Errorf("stats %+v disagree with the reports (missed %d, overruns %d)", st, missedTotal, overruns)
	}
	// The test is only meaningful if the storm overflowed the buffer.
	if overruns == 0 || missing == 0 {
		t.Errorf("no loss: %d overruns, %d missing exits; the storm did not overflow a %d-byte buffer", overruns, missing, 4096)
	}
	if got == 0 {
		t.Error("no exit received at all")
	}
}
