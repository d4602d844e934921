package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Process is one process as /proc shows it.
type Process struct {
	PID, ParentPID int
	// Comm is the command name (/proc/<pid>/comm, at most 15 bytes).
	Comm string
	// Exe is the executable's path (/proc/<pid>/exe); empty for kernel
	// threads, and for processes whose link this process may not read.
	Exe string
}

// Snapshot lists the processes in /proc, sorted by PID: the resync helper
// for after a loss. An application that keeps a process table from events
// rebuilds it from a Snapshot when a KindLost event arrives, then applies
// the events that follow; an event about a process the snapshot already
// reflects must be harmless to apply twice (a fork of a known PID, the
// exit of an unknown one).
//
// Take the snapshot after the loss report, not before: the events still
// in flight after the report describe changes the snapshot may or may not
// include, and applying them again is the harmless direction. Processes
// that exit while the directory is read are skipped.
func Snapshot() ([]Process, error) { return snapshot("/proc") }

func snapshot(root string) ([]Process, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("cnlink/proc: snapshot: %w", err)
	}
	ps := make([]Process, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 || !e.IsDir() {
			continue
		}
		p, err := readProcess(root, pid)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errGone) {
				continue // exited meanwhile
			}
			return nil, fmt.Errorf("cnlink/proc: snapshot: %w", err)
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b Process) int { return a.PID - b.PID })
	return ps, nil
}

// errGone: a stat file that reads as empty, which happens when the process
// is reaped between open and read.
var errGone = errors.New("process gone")

// readProcess reads one process. The parent and the name come from
// /proc/<pid>/stat, whose second field is the name in parentheses; the
// name may itself contain ')' and spaces, so the fields after it are
// found from the last ')'.
func readProcess(root string, pid int) (Process, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Process{}, err
	}
	if len(b) == 0 {
		return Process{}, errGone
	}
	lp, rp := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if lp < 0 || rp < lp {
		return Process{}, fmt.Errorf("%s/stat: no (comm) field", dir)
	}
	rest := bytes.Fields(b[rp+1:]) // state, ppid, ...
	if len(rest) < 2 {
		return Process{}, fmt.Errorf("%s/stat: too few fields", dir)
	}
	ppid, err := strconv.Atoi(string(rest[1]))
	if err != nil {
		return Process{}, fmt.Errorf("%s/stat: ppid: %w", dir, err)
	}
	p := Process{PID: pid, ParentPID: ppid, Comm: string(b[lp+1 : rp])}
	// Readlink fails for kernel threads (ENOENT) and without ptrace
	// access to the process (EACCES): Exe stays empty then.
	p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	return p, nil
}
