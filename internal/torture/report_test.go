package torture

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cnlink/cnlink/reliable"
)

// Reporting: violations of one run, the result of a run, and the totals
// of a test with its table of distinct failures.

// violation is one broken invariant. tag names the kind of failure, so
// that the same bug seen in a hundred runs is one line of the summary.
type violation struct {
	inv int
	tag string
	msg string
}

func (v violation) String() string { return fmt.Sprintf("[invariant %d %s] %s", v.inv, v.tag, v.msg) }

func (r *runState) violate(inv int, tag, format string, args ...any) {
	v := violation{inv: inv, tag: tag, msg: fmt.Sprintf(format, args...)}
	r.mu.Lock()
	r.violations = append(r.violations, v)
	r.mu.Unlock()
}

// result is what one run did.
type result struct {
	seed       uint64
	plan       *runPlan
	setupErr   error
	violations []violation
	stuck      bool
	dur        time.Duration
	phases     []time.Duration // when opening and playing ended
	timeline   string          // per session: first action and ends, since it opened

	sessions, opened, dialFailures int
	messages, taken                int64 // sent (calls returned nil) and taken by applications
	closeTimeouts, spontaneous     int
	cancelled                      int64
	faults                         []string
}

func (res *result) fill(r *runState) {
	res.dur = time.Since(r.start)
	res.stuck = r.stuck
	r.mu.Lock()
	res.violations = append([]violation(nil), r.violations...)
	r.mu.Unlock()
	res.sessions = len(r.sessions)
	res.dialFailures = int(r.dialFailures.Load())
	res.cancelled = r.cancelled.Load()
	var tl strings.Builder
	for _, sr := range r.sessions {
		if sr.side[0] == nil {
			continue
		}
		since := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.Sub(sr.opened).Round(time.Millisecond).String()
		}
		fmt.Fprintf(&tl, "s%d: %s at %s, ends %s/%s; ", sr.plan.id, sr.firstWhat, since(sr.firstAct), since(sr.side[0].doneAt), since(sr.side[1].doneAt))
		res.opened++
		for _, sd := range sr.side {
			// It ended before anyone ended it: a dead-peer timeout, say.
			if !sd.doneAt.IsZero() && (sr.firstAct.IsZero() || sd.doneAt.Before(sr.firstAct)) {
				res.spontaneous++
				break
			}
		}
		for _, sd := range sr.side {
			res.messages += sd.confirmed.Load()
			res.taken += int64(sd.rx.data + sd.rx.reqs)
			sd.mu.Lock()
			for _, err := range sd.closeResults {
				if errors.Is(err, reliable.ErrTimeout) {
					res.closeTimeouts++
				}
			}
			sd.mu.Unlock()
		}
	}
	res.timeline = tl.String()
	for _, e := range r.eps {
		if e.fault != nil {
			res.faults = append(res.faults, fmt.Sprintf("ep%d %v", e.idx, e.fault.Stats()))
		}
	}
}

// replay is the command that runs this seed again.
func replay(t *testing.T, seed uint64) string {
	return fmt.Sprintf("go test ./internal/torture -run '%s$' -torture.seed=%d -v", t.Name(), seed)
}

// totals accumulate a test's runs.
type totals struct {
	start                time.Time
	runs, failed         int
	sessions, opened     int
	dialFailures         int
	messages, taken      int64
	closeTimeouts, spont int
	cancelled            int64
	firstSeed, lastSeed  uint64
	tags                 map[string]*tagCount
	detailed             int // failing runs printed in full
}

type tagCount struct {
	inv, runs int
	firstSeed uint64
	example   string
}

// detailedFailures is how many failing runs are printed in full; the
// others get their violations' first lines and the replay command.
const detailedFailures = 5

func (tot *totals) add(t *testing.T, res *result) {
	if tot.runs == 0 {
		tot.firstSeed = res.seed
		tot.tags = make(map[string]*tagCount)
	}
	tot.runs++
	tot.lastSeed = res.seed
	tot.sessions += res.sessions
	tot.opened += res.opened
	tot.dialFailures += res.dialFailures
	tot.messages += res.messages
	tot.taken += res.taken
	tot.closeTimeouts += res.closeTimeouts
	tot.spont += res.spontaneous
	tot.cancelled += res.cancelled
	if len(res.violations) == 0 {
		return
	}
	tot.failed++
	// A run is printed in full when it shows a failure not seen before,
	// or is among the first few failing runs.
	full := tot.detailed < detailedFailures
	seen := make(map[string]bool)
	for _, v := range res.violations {
		if seen[v.tag] {
			continue
		}
		seen[v.tag] = true
		tc := tot.tags[v.tag]
		if tc == nil {
			tc = &tagCount{inv: v.inv, firstSeed: res.seed, example: firstLine(v.msg)}
			tot.tags[v.tag] = tc
			full = true
		}
		tc.runs++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d FAILED: %d violations (run of %v)\n", res.seed, len(res.violations), res.dur.Round(time.Millisecond))
	for i, v := range res.violations {
		if i == 12 || (!full && i == 3) {
			fmt.Fprintf(&b, "  ... and %d more\n", len(res.violations)-i)
			break
		}
		msg := v.String()
		if !full {
			msg = firstLine(msg)
		}
		fmt.Fprintf(&b, "  %s\n", msg)
	}
	if full {
		tot.detailed++
		b.WriteString(res.plan.describe())
		for _, f := range res.faults {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	fmt.Fprintf(&b, "  replay: %s", replay(t, res.seed))
	t.Error(b.String())
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// report logs the totals: shown with -v, or when the test fails.
func (tot *totals) report(t *testing.T) {
	el := time.Since(tot.start)
	perMin := func(n float64) float64 { return n / el.Minutes() }
	t.Logf("%d runs (%d failed), %d sessions (%d opened, %d dials failed), %d messages sent, %d taken, seeds %d..%d, in %v: %.0f runs/min, %.0f sessions/min; %d Close timeouts, %d sessions ended on their own, %d calls cancelled by their deadline and retried",
		tot.runs, tot.failed, tot.sessions, tot.opened, tot.dialFailures, tot.messages, tot.taken, tot.firstSeed, tot.lastSeed,
		el.Round(time.Millisecond), perMin(float64(tot.runs)), perMin(float64(tot.opened)), tot.closeTimeouts, tot.spont, tot.cancelled)
	if len(tot.tags) == 0 {
		return
	}
	tags := make([]string, 0, len(tot.tags))
	for tag := range tot.tags {
		tags = append(tags, tag)
	}
	sort.Slice(tags, func(i, j int) bool {
		a, b := tot.tags[tags[i]], tot.tags[tags[j]]
		if a.inv != b.inv {
			return a.inv < b.inv
		}
		return tags[i] < tags[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "distinct failures (%d of %d runs failed):\n", tot.failed, tot.runs)
	for _, tag := range tags {
		tc := tot.tags[tag]
		fmt.Fprintf(&b, "  invariant %d %-36s in %4d runs, first seed %d: %s\n    replay: %s\n",
			tc.inv, tag, tc.runs, tc.firstSeed, truncate(tc.example, 300), replay(t, tc.firstSeed))
	}
	t.Log(b.String())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// addLeak reports goroutines or sockets left by one of a window's runs.
func (tot *totals) addLeak(t *testing.T, w *window) {
	first, last := w.results[0].seed, w.results[len(w.results)-1].seed
	tc := tot.tags["leak"]
	if tc == nil {
		tc = &tagCount{inv: 7, firstSeed: first, example: firstLine(w.leak)}
		tot.tags["leak"] = tc
	}
	tc.runs++
	how := "replay: " + replay(t, first)
	if first != last {
		how = fmt.Sprintf("one of seeds %d..%d; replay each with %s to find it", first, last, replay(t, first))
	}
	t.Errorf("[invariant 7 leak] %s\n  %s", w.leak, how)
}
