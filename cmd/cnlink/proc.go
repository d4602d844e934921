package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/proc"
)

var procCommand = &command{
	name:  "proc",
	short: "watch fork, exec and exit events, like forkstat",
	args:  "[-duration D] [-threads] [-all] [-rcvbuf BYTES]",
	summary: "Print process events from the kernel's proc connector live, like forkstat: fork, exec\n" +
		"(with the command name, read from /proc when the event arrives) and exit, then a\n" +
		"summary that says how many events were lost, if any. Needs no privilege on Linux 6.x,\n" +
		"but only works in the initial user and pid namespaces (not in most containers).",
	flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var o procOpts
		fs.DurationVar(&o.duration, "duration", 0, "exit after this long (0: run until interrupted)")
		fs.BoolVar(&o.threads, "threads", false, "show threads as well as processes")
		fs.BoolVar(&o.all, "all", false, "show every event type (uid, gid, sid, ptrace, comm, coredump too)")
		fs.IntVar(&o.rcvbuf, "rcvbuf", 0, "initial socket receive buffer in `bytes` (0: system default)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if o.duration < 0 || o.rcvbuf < 0 {
				return usagef("-duration and -rcvbuf must not be negative")
			}
			if o.duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.duration)
				defer cancel()
			}
			return procMon(ctx, e.stdout, o)
		}
	},
}

type procOpts struct {
	duration     time.Duration
	threads, all bool
	rcvbuf       int
}

// process is what proc remembers about a live process.
type process struct {
	comm string
	born uint64 // fork timestamp, 0 if the fork was not seen
}

func procMon(ctx context.Context, stdout io.Writer, o procOpts) error {
	mask := proc.MaskFork | proc.MaskExec | proc.MaskExit
	if o.all {
		mask = proc.MaskAll
	}
	m, err := proc.Listen(ctx, proc.Config{Events: mask, ReadBuffer: o.rcvbuf})
	if err != nil {
		return err
	}
	defer m.Close()

	start := time.Now()
	wall := wallClock()
	table := map[int]*process{}
	resync(table)
	var forks, execs, exits, others, lostReports int

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	line := func(when, event string, pid, ppid int, info string) {
		p, pp := "", ""
		if pid != 0 {
			p = strconv.Itoa(pid)
		}
		if ppid != 0 {
			pp = strconv.Itoa(ppid)
		}
		fmt.Fprintf(w, "%-12s  %-8s  %7s  %7s  %s\n", when, event, p, pp, info)
	}
	fmt.Fprintf(w, "%-12s  %-8s  %7s  %7s  %s\n", "TIME", "EVENT", "PID", "PPID", "INFO")
	_ = w.Flush() // subscribed: say so at once
	for {
		var ev proc.Event
		select {
		case ev = <-m.Events():
		case <-m.Done():
			_ = w.Flush()
			st := m.Stats()
			fmt.Fprintf(w, "\n%d fork, %d exec, %d exit, %d other in %v; lost: %d events missed (sequence gaps), %d overruns, %d dropped, in %d reports; %d forged datagrams rejected\n",
				forks, execs, exits, others, time.Since(start).Round(time.Millisecond), st.Missed, st.Overruns, st.Dropped, lostReports, st.Rejected)
			if ctx.Err() == nil {
				return m.Err() // ended by something other than -duration or a signal
			}
			return nil
		}
		if ev.Kind != proc.KindLost && ev.PID != ev.TID && !o.threads {
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
			if c := ev.CommString(); c != "" {
				p.comm = c // read by the Monitor when the event arrived
			}
			line(when, "exec", ev.PID, 0, execInfo(ev.PID, p.comm))
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
		case proc.KindComm:
			others++
			if p := table[ev.PID]; p != nil {
				p.comm = ev.CommString()
			}
			line(when, "comm", ev.PID, 0, "renamed "+ev.CommString())
		case proc.KindLost:
			lostReports++
			line(time.Now().Format("15:04:05.000"), "LOST", 0, 0, ev.Loss.String()+"; table rebuilt from /proc")
			resync(table)
		default:
			others++
			line(when, ev.Kind.String(), ev.PID, 0, commOf(table, ev.PID)+": "+ev.String())
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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSuffix(string(b), "\n")
}

// execInfo is the command name and, if the process is still there, its
// command line, shortened.
func execInfo(pid int, comm string) string {
	if comm == "" {
		comm = "?"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return comm
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return comm + ": " + s
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
