//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cnlink/cnlink/transport/fault"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestIntegrationObserve runs the program for a second over real netlink
// sockets and checks what it printed: the Prometheus samples of a lossy
// session, consistent with each other, and the stdout exporter's JSON.
func TestIntegrationObserve(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root or CAP_NET_ADMIN to unicast between netlink user ports")
	}
	var out bytes.Buffer
	o := options{
		duration: time.Second,
		listen:   "127.0.0.1:0",
		stdout:   true,
		size:     256,
		seed:     uint64(time.Now().UnixNano()),
		send:     fault.Direction{Loss: 0.05, Duplicate: 0.10},
	}
	t.Logf("seed %d", o.seed)
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	// sample sums the samples of name whose labels include every one of
	// labels (as `key="value"`).
	sample := func(name string, labels ...string) float64 {
		t.Helper()
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
		sum, found := 0.0, false
	matches:
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			for _, l := range labels {
				if !strings.Contains(m[1], l) {
					continue matches
				}
			}
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("%s: %v", m[0], err)
			}
			sum, found = sum+v, true
		}
		if !found {
			t.Fatalf("no %s%v sample in the output:\n%s", name, labels, text)
		}
		return sum
	}
	sent, received := sample("cnlink_message_count_total", `network_io_direction="transmit"`), sample("cnlink_message_count_total", `network_io_direction="receive"`)
	if sent < 1000 || sent != received {
		t.Errorf("messages sent %v, received %v: want the same, and some", sent, received)
	}
	if r := sample("cnlink_retransmission_count_total"); r == 0 {
		t.Error("5% loss injected, no retransmission reported")
	}
	if d := sample("cnlink_duplicate_count_total"); d == 0 {
		t.Error("10% duplication injected, no duplicate reported")
	}
	if c := sample("cnlink_round_trip_duration_seconds_count"); c == 0 {
		t.Error("no round-trip samples")
	}
	if c := sample(`cnlink_session_closed_total`); c != 2 {
		t.Errorf("%v sessions closed, want 2 (one each side)", c)
	}
	if !strings.Contains(text, "stdoutmetric export") || !strings.Contains(text, `"Name":"cnlink.message.count"`) {
		t.Errorf("no stdout export of cnlink.message.count in the output:\n%s", text)
	}
}
