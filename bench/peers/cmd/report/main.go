// Command report runs cnlink's benchmark suite (bench/ in the main module
// and the peers in bench/peers) and writes docs/BENCHMARKS.md, the raw
// results docs/bench-results.txt and the charts docs/bench-loss.png,
// docs/bench-size.png and docs/bench-sessions.png. `make bench` runs it; `make bench-smoke` runs it
// with -benchtime 100x -count 1 into a scratch directory, which runs every
// benchmark once (each verifies delivery) and exercises the report.
//
// The suite runs in rounds: each round runs every benchmark once, the
// main module's then the peers', so that the -count samples of every
// benchmark are spread over the whole run and the ratios compare
// measurements made under the same conditions.
//
//	go run ./cmd/report [-count 6] [-benchtime 1s] [-bench regexp] [-out dir]
//	go run ./cmd/report -from docs/bench-results.txt   # only rebuild the report
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/cnlink/cnlink/bench/peers/internal/report"
)

const rootModule = "github.com/cnlink/cnlink"

func main() {
	count := flag.Int("count", 6, "rounds of the whole suite (samples per benchmark)")
	benchtime := flag.String("benchtime", "1s", "-benchtime of every benchmark")
	benchRE := flag.String("bench", ".", "run only the benchmarks matching this regexp")
	out := flag.String("out", "", "directory for BENCHMARKS.md, the results and the charts (default: the repository's docs/)")
	from := flag.String("from", "", "run nothing: rebuild the report from this results file (a bench-results.txt)")
	goCmd := flag.String("go", "go", "the go command")
	targets := flag.Bool("targets", true, "print the targets' pass or miss when done (smoke runs turn it off: 100 messages measure nothing)")
	flag.Parse()
	err := func() error {
		root, err := findRoot()
		if err != nil {
			return err
		}
		if *out == "" {
			*out = filepath.Join(root, "docs")
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp("", "cnlink-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		benchstat := filepath.Join(tmp, "benchstat")
		peersDir := filepath.Join(root, "bench", "peers")
		// -mod=mod lets the nested module pick up requirements the
		// main module gained since its go.sum was last written.
		if err := command(peersDir, os.Stderr, *goCmd, "build", "-mod=mod", "-o", benchstat, "golang.org/x/perf/cmd/benchstat"); err != nil {
			return err
		}
		var results []byte
		if *from != "" {
			if results, err = os.ReadFile(*from); err != nil {
				return err
			}
		} else {
			if results, err = runSuite(root, tmp, *count, *benchtime, *benchRE, *goCmd); err != nil {
				if len(results) > 0 {
					// Keep what was measured for the post-mortem.
					path := filepath.Join(*out, report.ResultsFile)
					if werr := os.WriteFile(path, results, 0o644); werr == nil {
						err = fmt.Errorf("%w (the output so far is in %s)", err, path)
					}
				}
				return err
			}
		}
		return writeReport(*out, results, benchstat, *targets)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

type suite struct {
	name string // for progress lines
	dir  string // package directory: the test binary runs there
	bin  string
}

// runSuite builds the two test binaries and runs count rounds of the
// suite. The output starts with the machine's details as benchfmt
// configuration lines (which benchstat shows and report.ParseMachine
// reads back), and ends with the load and duration.
func runSuite(root, tmp string, count int, benchtime, benchRE, goCmd string) ([]byte, error) {
	if count < 1 {
		return nil, errors.New("-count must be at least 1")
	}
	peersDir := filepath.Join(root, "bench", "peers")
	suites := []suite{
		{name: "bench", dir: filepath.Join(root, "bench"), bin: filepath.Join(tmp, "bench.test")},
		{name: "bench/peers", dir: peersDir, bin: filepath.Join(tmp, "peers.test")},
	}
	logf("building the test binaries")
	if err := command(root, os.Stderr, goCmd, "test", "-c", "-o", suites[0].bin, "./bench"); err != nil {
		return nil, err
	}
	if err := command(peersDir, os.Stderr, goCmd, "test", "-mod=mod", "-c", "-o", suites[1].bin, "."); err != nil {
		return nil, err
	}
	var results bytes.Buffer
	m := report.Machine{
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		Kernel:     readTrim("/proc/sys/kernel/osrelease"),
		GoVersion:  output(root, goCmd, "env", "GOVERSION"),
		Date:       time.Now().UTC().Truncate(time.Second),
		Commit:     commit(root),
		LoadBefore: loadavg(),
		Count:      count,
		Benchtime:  benchtime,
	}
	m.WriteHeader(&results)
	start := time.Now()
	for i := 1; i <= count; i++ {
		for _, s := range suites {
			logf("round %d/%d: %s", i, count, s.name)
			// Progress goes to stderr as it happens; the results keep
			// stdout only.
			w := io.MultiWriter(&results, os.Stderr)
			err := command(s.dir, w, s.bin, "-test.run", "^$", "-test.bench", benchRE, "-test.benchmem",
				"-test.count", "1", "-test.benchtime", benchtime, "-test.timeout", "60m")
			if err != nil {
				return results.Bytes(), fmt.Errorf("round %d, %s: %w", i, s.name, err)
			}
		}
	}
	m.LoadAfter = loadavg()
	m.Duration = time.Since(start).Round(time.Second)
	m.WriteTrailer(&results)
	return results.Bytes(), nil
}

// writeReport writes the results file, BENCHMARKS.md and the charts.
func writeReport(out string, results []byte, benchstat string, targets bool) error {
	if err := os.WriteFile(filepath.Join(out, report.ResultsFile), results, 0o644); err != nil {
		return err
	}
	res, err := report.Parse(bytes.NewReader(results), report.ResultsFile)
	if err != nil {
		return err
	}
	m := report.ParseMachine(results)
	var stats []report.Benchstat
	for _, t := range report.BenchstatTables {
		args := append(append([]string(nil), t.Args...), report.ResultsFile)
		var buf bytes.Buffer
		if err := command(out, &buf, benchstat, args...); err != nil {
			return fmt.Errorf("benchstat %s: %w", strings.Join(args, " "), err)
		}
		stats = append(stats, report.Benchstat{Title: t.Title, Command: "benchstat " + shellJoin(args), Text: buf.String(), Collapsed: t.Collapsed})
	}
	var md bytes.Buffer
	if err := report.WriteMarkdown(&md, m, res, stats); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "BENCHMARKS.md"), md.Bytes(), 0o644); err != nil {
		return err
	}
	if err := res.SizeChart(filepath.Join(out, report.SizeChartFile)); err != nil {
		return fmt.Errorf("size chart: %w", err)
	}
	if err := res.LossChart(filepath.Join(out, report.LossChartFile)); err != nil {
		return fmt.Errorf("loss chart: %w", err)
	}
	if err := res.SessionsChart(filepath.Join(out, report.SessionsChartFile)); err != nil {
		return fmt.Errorf("sessions chart: %w", err)
	}
	logf("wrote BENCHMARKS.md, %s, %s, %s and %s in %s (suite: %s)", report.ResultsFile,
		report.SizeChartFile, report.LossChartFile, report.SessionsChartFile, out, m.Duration)
	if !targets {
		return nil
	}
	for _, t := range res.Targets() {
		verdict := "pass"
		if !t.Pass() {
			verdict = "MISS"
		}
		logf("target %-4s %-9s (want %s): %s", verdict, t.GotString(), t.WantString(), t.What)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "report: "+format+"\n", args...)
}

// command runs name in dir with stdout to w and stderr to ours.
func command(dir string, w io.Writer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

// output runs a command and returns its trimmed stdout, or "unknown".
func output(dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// findRoot walks up from the working directory to the main module.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.TrimSpace(line) == "module "+rootModule {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", rootModule)
		}
		dir = parent
	}
}

func commit(root string) string {
	c := output(root, "git", "rev-parse", "--short=12", "HEAD")
	if c == "unknown" {
		return c
	}
	if s := output(root, "git", "status", "--porcelain", "--untracked-files=no"); s != "" && s != "unknown" {
		c += " (with uncommitted changes)"
	}
	return c
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func loadavg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"()|*$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
