package report

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Machine describes where and how a run was made.
type Machine struct {
	CPU        string
	Cores      int
	Kernel     string
	GoVersion  string
	Date       time.Time
	Commit     string
	LoadBefore string // /proc/loadavg before the run
	LoadAfter  string
	Count      int    // -count: rounds of the whole suite
	Benchtime  string // -benchtime of each benchmark
	Duration   time.Duration
}

// Configuration keys a run records in its results file. They are benchfmt
// file configuration lines ("key: value"), so benchstat shows them and
// ignores the ones after the last result.
const (
	keyCPU        = "cpu" // written by the test binaries
	keyCores      = "cores"
	keyKernel     = "kernel"
	keyGo         = "go"
	keyDate       = "date"
	keyCommit     = "commit"
	keyLoadBefore = "load-before"
	keyLoadAfter  = "load-after"
	keyRounds     = "rounds"
	keyBenchtime  = "benchtime"
	keyDuration   = "duration"
)

// WriteHeader writes what is known before the run.
func (m *Machine) WriteHeader(w io.Writer) {
	for _, kv := range [][2]string{
		{keyCores, strconv.Itoa(m.Cores)},
		{keyKernel, m.Kernel},
		{keyGo, m.GoVersion},
		{keyDate, m.Date.UTC().Format(time.RFC3339)},
		{keyCommit, m.Commit},
		{keyRounds, strconv.Itoa(m.Count)},
		{keyBenchtime, m.Benchtime},
		{keyLoadBefore, m.LoadBefore},
	} {
		fmt.Fprintf(w, "%s: %s\n", kv[0], kv[1])
	}
}

// WriteTrailer writes what is known after the run.
func (m *Machine) WriteTrailer(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n%s: %s\n", keyLoadAfter, m.LoadAfter, keyDuration, m.Duration)
}

// ParseMachine reads the details back from a results file; what is
// missing stays zero (and prints as unknown).
func ParseMachine(results []byte) Machine {
	var m Machine
	sc := bufio.NewScanner(bytes.NewReader(results))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok || strings.HasPrefix(k, "Benchmark") {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case keyCPU:
			m.CPU = v
		case keyCores:
			m.Cores, _ = strconv.Atoi(v)
		case keyKernel:
			m.Kernel = v
		case keyGo:
			m.GoVersion = v
		case keyDate:
			m.Date, _ = time.Parse(time.RFC3339, v)
		case keyCommit:
			m.Commit = v
		case keyLoadBefore:
			m.LoadBefore = v
		case keyLoadAfter:
			m.LoadAfter = v
		case keyRounds:
			m.Count, _ = strconv.Atoi(v)
		case keyBenchtime:
			m.Benchtime = v
		case keyDuration:
			m.Duration, _ = time.ParseDuration(v)
		}
	}
	return m
}
