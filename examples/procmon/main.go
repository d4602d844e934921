// Command procmon prints process events live, like forkstat: every fork,
// exec and exit with its PID, parent PID and command, and at the end a
// summary that says how many events were lost, if any.
//
//	go run ./examples/procmon -duration 10s
//
// It uses the kernel's proc connector through github.com/cnlink/cnlink/proc,
// which needs no privilege on Linux 6.x but only works in the initial user
// and pid namespaces (not in most containers). Lost events are printed where
// they happened; after a loss procmon rebuilds its table of command names
// from /proc.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/proc"
)

func main() {
	duration := flag.Duration("duration", 0, "exit after this long (0: run until interrupted)")
	threads := flag.Bool("threads", false, "show threads as well as processes")
	rcvbuf := flag.Int("rcvbuf", 0, "initial socket receive buffer in bytes (0: system default)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, *threads, *rcvbuf); err != nil {
		fmt.Fprintln(os.Stderr, "procmon:", err)
		os.Exit(1)
	}
}

// process is what procmon remembers about a live process.
type process struct {
	comm string
	born uint64 // fork timestamp, 0 if the fork was not seen
}

func run(ctx context.Context, threads bool, rcvbuf int) error {
	m, err := proc.Listen(ctx, proc.Config{
		Events:     proc.MaskFork | proc.MaskExec | proc.MaskExit,
		ReadBuffer: rcvbuf,
	})
	if err != nil {
		return err
	}
	defer m.Close()

	start := time.Now()
	wall := wallClock()
	table := map[int]*process{}
	resync(table)
	var forks, execs, exits, lostReports int

	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	line := func(when, event string, pid, ppid int, info string) {
		p, pp := "", ""
		if pid != 0 {
			p = strconv.Itoa(pid)
		}
		if ppid != 0 {
			pp = strconv.Itoa(ppid)
		}
		fmt.Fprintf(w, "%-12s  %-5s  %7s  %7s  %s\n", when, event, p, pp, info)
	}
	fmt.Fprintf(w, "%-12s  %-5s  %7s  %7s  %s\n", "TIME", "EVENT", "PID", "PPID", "INFO")
	for {
		var ev proc.Event
		select {
		case ev = <-m.Events():
		case <-m.Done():
			_ = w.Flush()
			st := m.Stats()
			fmt.Printf("\n%d fork, %d exec, %d exit in %v; lost: %d events missed (sequence gaps), %d overruns, %d dropped by procmon, in %d reports; %d forged datagrams rejected\n",
				forks, execs, exits, time.Since(start).Round(time.Millisecond), st.Missed, st.Overruns, st.Dropped, lostReports, st.Rejected)
			if err := m.Err(); ctx.Err() == nil {
				return err // ended by something other than -duration or a signal
			}
			return nil
		}
		if ev.Kind != proc.KindLost && ev.PID != ev.TID && !threads {
			continue
		}
		when := wall(ev.Timestamp)
		switch ev.Kind {
		case proc.KindFork:
			forks++
			parent := commOf(table, ev.ParentPID)
			table[ev.PID] = &process{comm: parent, born: ev.Timestamp}
			line(when, "fork", ev.PID, ev.ParentPID, "child of "+parent)
		case proc.KindExec:
			execs++
			p := table[ev.PID]
			if p == nil {
				p = &process{}
				table[ev.PID] = p
			}
			p.comm = readComm(ev.PID, p.comm)
			line(when, "exec", ev.PID, 0, cmdline(ev.PID, p.comm))
		case proc.KindExit:
			exits++
			info := status(ev.WaitStatus())
			comm := "?"
			if p := table[ev.PID]; p != nil {
				comm = p.comm
				if p.born != 0 && ev.Timestamp >= p.born {
					info += fmt.Sprintf(" after %v", time.Duration(ev.Timestamp-p.born).Round(time.Microsecond))
				}
			}
			delete(table, ev.PID)
			line(when, "exit", ev.PID, ev.ParentPID, comm+": "+info)
		case proc.KindLost:
			lostReports++
			line(time.Now().Format("15:04:05.000"), "LOST", 0, 0, ev.Loss.String()+"; table rebuilt from /proc")
			resync(table)
		}
		if len(m.Events()) == 0 {
			_ = w.Flush() // keep the view live when idle
		}
	}
}

// wallClock converts kernel timestamps (CLOCK_MONOTONIC) to wall-clock
// time of day.
func wallClock() func(uint64) string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	offset := time.Now().UnixNano() - ts.Nano()
	return func(mono uint64) string {
		return time.Unix(0, int64(mono)+offset).Format("15:04:05.000")
	}
}

// resync replaces the table with what /proc shows now.
func resync(table map[int]*process) {
	ps, err := proc.Snapshot()
	if err != nil {
		return
	}
	clear(table)
	for _, p := range ps {
		table[p.PID] = &process{comm: p.Comm}
	}
}

func commOf(table map[int]*process, pid int) string {
	if p := table[pid]; p != nil && p.comm != "" {
		return p.comm
	}
	return readComm(pid, "?")
}

// readComm reads a process's name; it may be gone already.
func readComm(pid int, fallback string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fallback
	}
	return strings.TrimSuffix(string(b), "\n")
}

// cmdline reads a process's command line, shortened.
func cmdline(pid int, fallback string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return fallback
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func status(ws syscall.WaitStatus) string {
	switch {
	case ws.Signaled():
		s := "killed by " + ws.Signal().String()
		if ws.CoreDump() {
			s += ", core dumped"
		}
		return s
	case ws.Exited():
		return fmt.Sprintf("status %d", ws.ExitStatus())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}
