package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want target
		ok   bool
	}{
		{"1234", target{Port: 1234}, true},
		{"4294967295", target{Port: 4294967295}, true},
		{"echo", target{Port: discover.PortForName("echo"), Name: "echo"}, true},
		{"my-svc.1", target{Port: discover.PortForName("my-svc.1"), Name: "my-svc.1"}, true},
		{"0", target{}, false},
		{"4294967296", target{}, false},
		{"", target{}, false},
	} {
		got, err := parseTarget(tt.in)
		if (err == nil) != tt.ok || tt.ok && got != tt.want {
			t.Errorf("parseTarget(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseChannel(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want transport.CbID
		ok   bool
	}{
		{"", reliable.DefaultChannel, true},
		{"1129204811:2", transport.CbID{Idx: 1129204811, Val: 2}, true},
		{"0x434e4c4b:0x10", transport.CbID{Idx: 0x434e4c4b, Val: 16}, true},
		{"0:0", transport.CbID{}, true},
		{"11:1", transport.CbID{Idx: 11, Val: 1}, true},
		{"1:1", transport.CbID{}, false}, // the proc connector's
		{"10:0", transport.CbID{}, false},
		{"12", transport.CbID{}, false},
		{"a:b", transport.CbID{}, false},
		{"1:99999999999", transport.CbID{}, false},
	} {
		got, err := parseChannel(tt.in)
		if (err == nil) != tt.ok || tt.ok && got != tt.want {
			t.Errorf("parseChannel(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 90: 90 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	five := []time.Duration{1, 2, 3, 4, 5}
	if percentile(five, 50) != 3 || percentile(five, 90) != 5 || percentile(five, 99) != 5 {
		t.Errorf("five: p50 %v p90 %v p99 %v", percentile(five, 50), percentile(five, 90), percentile(five, 99))
	}
	if percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}

func TestAppendSummary(t *testing.T) {
	rtts := []time.Duration{300 * time.Microsecond, 100 * time.Microsecond, 200 * time.Microsecond}
	got := string(appendSummary(nil, 4, rtts, 3*time.Second))
	want := "4 probes sent, 3 replies, 25% lost, time 3000.000 ms\n" +
		"rtt min/p50/p90/p99/max = 0.100/0.200/0.300/0.300/0.300 ms\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(appendSummary(nil, 2, nil, time.Second)); got != "2 probes sent, 0 replies, 100% lost, time 1000.000 ms\n" {
		t.Errorf("no replies: %q", got)
	}
}

func TestWriteSockets(t *testing.T) {
	var b strings.Builder
	writeSockets(&b, []discover.Socket{
		{Port: 0, Inode: 1027},
		{Port: 77, Groups: 0x40000004, Rmem: 832, Drops: 3, Inode: 9,
			Owners: []discover.Process{{PID: 10, Comm: "srv", UID: 0}, {PID: 11, Comm: "child", UID: 1000}}},
		{Port: 3199, Inode: 5},
	})
	want := "" +
		"PORT  PID  COMMAND   UID   GROUPS  RECVQ  DROPS  INODE\n" +
		"0     -    [kernel]  -     -       0      0      1027\n" +
		"77    10   srv       0     3,31    832    3      9\n" +
		"77    11   child     1000  3,31    832    3      9\n" +
		"3199  -    ?         -     -       0      0      5\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestErrorLine(t *testing.T) {
	if got := errorLine("send", reliable.ErrPeerGone); got != "cnlink: send: peer gone" {
		t.Errorf("%q", got)
	}
	if got := errorLine("ls", discover.ErrNotFound); got != "cnlink: ls: cnlink/discover: no connector socket on that port" {
		t.Errorf("%q", got)
	}
}

// TestRunUsage runs the command lines in-process: bad ones exit 2 with
// one "cnlink: " error line and a usage line on stderr.
func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"help", "bogus"},
		{"ls", "extra"},
		{"ls", "-nosuchflag"},
		{"listen", "-port", "x"},
		{"listen", "-port", "1", "-name", "a"},
		{"listen", "-channel", "5"},
		{"send"},
		{"send", "-to", "0"},
		{"cat", "-to", "x", "-channel", "1:1"},
		{"ping", "-to", "x", "-c", "-1"},
		{"ping", "-to", "x", "-s", "2"},
		{"stat"},
		{"proc", "-duration", "-1s"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb})
		if code != exitUsage {
			t.Errorf("%q: exit %d, want 2; stderr %q", args, code, errb.String())
			continue
		}
		if len(args) > 0 && (!strings.HasPrefix(errb.String(), "cnlink: ") || strings.Contains(errb.String(), "cnlink: cnlink:")) {
			t.Errorf("%q: stderr %q", args, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("%q: stdout %q", args, out.String())
		}
	}
	for _, args := range [][]string{{"help"}, {"help", "ping"}, {"ping", "-h"}, {"listen", "-help"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &env{stdout: &out, stderr: &errb}); code != exitOK {
			t.Errorf("%q: exit %d, want 0", args, code)
		}
		if !strings.Contains(out.String()+errb.String(), "usage") && !strings.Contains(out.String(), "Usage") {
			t.Errorf("%q: no usage text: %q %q", args, out.String(), errb.String())
		}
	}
}
