package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cnlink/cnlink/reliable"
)

var pingCommand = &command{
	name:  "ping",
	short: "measure round trips to a listen -echo",
	args:  "-to PORT|NAME [-c N] [-i INTERVAL] [-s SIZE] [-W TIMEOUT]",
	summary: "Measure round trips to a 'cnlink listen -echo' peer: each probe is a request that the\n" +
		"peer answers with the same bytes, over one reliable session. Prints one line per reply\n" +
		"and a summary with min/p50/p90/p99/max, like ping(8). Exit status 1 if any probe got\n" +
		"no reply.",
	flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var c clientFlags
		c.register(fs)
		var o pingOpts
		fs.IntVar(&o.count, "c", 0, "stop after `N` replies (0: until interrupted)")
		fs.DurationVar(&o.interval, "i", time.Second, "wait `INTERVAL` between probes")
		fs.IntVar(&o.size, "s", 56, "probe size in `bytes` (at least 8)")
		fs.DurationVar(&o.timeout, "W", 5*time.Second, "give a probe up after `TIMEOUT`")
		fs.BoolVar(&o.quiet, "q", false, "print the summary only")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if o.count < 0 {
				return usagef("-c %d: negative", o.count)
			}
			if o.size < 8 || o.size > reliable.MaxMessageLimit {
				return usagef("-s %d: outside 8..%d", o.size, reliable.MaxMessageLimit)
			}
			if o.interval < 0 || o.timeout <= 0 {
				return usagef("-i and -W must be positive")
			}
			ep, s, t, err := c.dial(ctx, nil)
			if err != nil {
				return err
			}
			defer ep.Close()
			return ping(ctx, e, s, t, o)
		}
	},
}

type pingOpts struct {
	count    int
	interval time.Duration
	size     int
	timeout  time.Duration
	quiet    bool
}

func ping(ctx context.Context, e *env, s *reliable.Session, t target, o pingOpts) error {
	if !o.quiet {
		e.printf("PING %v: %d bytes, channel %s\n", t, o.size, channelString(s.Channel()))
	}
	var rtts []time.Duration
	sent := 0
	start := time.Now()
	var sessErr error
	probe := make([]byte, o.size)
	for seq := 1; o.count == 0 || seq <= o.count; seq++ {
		if seq > 1 {
			select {
			case <-time.After(o.interval):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		binary.BigEndian.PutUint64(probe, uint64(seq))
		sent++
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		t0 := time.Now()
		reply, err := s.Request(rctx, probe)
		rtt := time.Since(t0)
		cancel()
		switch {
		case err == nil && len(reply) == len(probe) && binary.BigEndian.Uint64(reply) == uint64(seq):
			rtts = append(rtts, rtt)
			if !o.quiet {
				e.printf("%d bytes from %v: seq=%d time=%s\n", len(reply), t, seq, ms(rtt))
			}
		case err == nil:
			e.printf("seq=%d: reply of %d bytes does not echo the probe (is the peer 'cnlink listen -echo'?)\n", seq, len(reply))
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			e.printf("seq=%d: no reply within %v\n", seq, o.timeout)
		case ctx.Err() != nil:
			sent-- // interrupted, not lost
		default:
			sessErr = err
		}
		if sessErr != nil {
			break
		}
	}
	elapsed := time.Since(start)
	var b []byte
	b = fmt.Appendf(b, "--- %v ping statistics ---\n", t)
	b = appendSummary(b, sent, rtts, elapsed)
	_ = e.out(b)
	if ctx.Err() == nil {
		_ = s.Close()
	} else {
		s.Abort()
	}
	switch {
	case sessErr != nil:
		return fmt.Errorf("%v: %w", t, sessErr)
	case len(rtts) < sent:
		return fmt.Errorf("%d of %d probes got no reply", sent-len(rtts), sent)
	}
	return nil
}

// appendSummary appends ping(8)'s last two lines, with percentiles.
func appendSummary(b []byte, sent int, rtts []time.Duration, elapsed time.Duration) []byte {
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-len(rtts)) / float64(sent)
	}
	b = fmt.Appendf(b, "%d probes sent, %d replies, %.4g%% lost, time %s\n", sent, len(rtts), loss, ms(elapsed))
	if len(rtts) == 0 {
		return b
	}
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	return fmt.Appendf(b, "rtt min/p50/p90/p99/max = %s/%s/%s/%s/%s ms\n",
		msNum(sorted[0]), msNum(percentile(sorted, 50)), msNum(percentile(sorted, 90)), msNum(percentile(sorted, 99)), msNum(sorted[len(sorted)-1]))
}

// percentile returns the p-th percentile of sorted by the nearest-rank
// method: the smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// ms formats d in milliseconds with three decimals, like ping(8).
func ms(d time.Duration) string { return msNum(d) + " ms" }

func msNum(d time.Duration) string {
	return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))
}
