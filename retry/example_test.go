package retry_test

import (
	"fmt"
	"time"

	"github.com/cnlink/cnlink/retry"
)

// The engine keeps one RTT per session and one Schedule per kind of
// recovery, and passes in its own notion of now. Nothing here reads a clock
// or sleeps: the engine arms its single timer for the durations returned.
func Example() {
	// Retransmission timeout (RFC 6298). Samples come only from records that
	// were never retransmitted (Karn's algorithm).
	rtt := retry.NewRTT(retry.RTTConfig{}) // 2ms initial, [200µs, 1s], G = 10µs
	fmt.Println("RTO before any sample:", rtt.RTO())
	rtt.Update(100 * time.Microsecond)
	fmt.Println("RTO after 100µs:", rtt.RTO())
	rtt.Update(120 * time.Microsecond)
	fmt.Println("RTO after 120µs:", rtt.RTO(), "SRTT", rtt.SRTT())

	// Two timeouts in a row: the timer backs off.
	rtt.Backoff()
	rtt.Backoff()
	fmt.Println("RTO after 2 timeouts:", rtt.RTO(), "backoffs", rtt.Backoffs())

	// A fresh sample collapses the backoff.
	rtt.Update(110 * time.Microsecond)
	fmt.Println("RTO after a new sample:", rtt.RTO(), "backoffs", rtt.Backoffs())

	// A peer answers EAGAIN: retry on a timer. Jitter 0 keeps this output
	// deterministic; the preset spreads waits by +-20%.
	cfg := retry.PeerBusyConfig()
	cfg.Jitter = 0
	busy := retry.NewSchedule(cfg)
	now := 5 * time.Second // any origin will do
	for range 4 {
		wait, ok := busy.Next(now)
		fmt.Println("peer busy, retry in", wait, ok)
		now += wait
	}
	busy.Reset(now) // the send went through
	wait, _ := busy.Next(now + time.Hour)
	fmt.Println("next episode starts again at", wait)

	// Output:
	// RTO before any sample: 2ms
	// RTO after 100µs: 300µs
	// RTO after 120µs: 272.5µs SRTT 102.5µs
	// RTO after 2 timeouts: 1.09ms backoffs 2
	// RTO after a new sample: 238.437µs backoffs 0
	// peer busy, retry in 20µs true
	// peer busy, retry in 40µs true
	// peer busy, retry in 80µs true
	// peer busy, retry in 160µs true
	// next episode starts again at 20µs
}

// A schedule with a budget gives up on its own. The caller drives now; no
// real time passes here.
func ExampleSchedule_giveUp() {
	cfg := retry.ProbeConfig() // 10ms x2 up to 1s, give up after 10s
	cfg.Jitter = 0
	probe := retry.NewSchedule(cfg)

	now := time.Duration(0)
	for {
		wait, ok := probe.Next(now)
		if !ok {
			break
		}
		now += wait // the probe is sent at now+wait and gets no answer
	}
	fmt.Println("gave up after", probe.Attempts(), "retries, at", now)

	// Output:
	// gave up after 15 retries, at 9.27s
}
