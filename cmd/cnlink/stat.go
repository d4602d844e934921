package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

var statCommand = &command{
	name:  "stat",
	short: "print a socket's kernel counters and a listen's endpoint counters",
	args:  "-to PORT|NAME [-W TIMEOUT]",
	summary: "Print a live endpoint's counters. First what the kernel shows for the socket on the\n" +
		"port (owners, groups, receive queue, drops, from /proc/net/netlink); then, if the\n" +
		"process is a 'cnlink listen', its endpoint and session counters, which it sends when\n" +
		"asked over a session on the channel CNLK:STAT (1129204811:1398030676). Other\n" +
		"endpoints do not answer there: only the kernel's view is printed for them.",
	flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		to := fs.String("to", "", "the endpoint: a port number or a service `name`")
		timeout := fs.Duration("W", 2*time.Second, "wait this long for the counters")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			t, err := parseTarget(*to)
			if err != nil {
				return err
			}
			sock, err := discover.ByPort(t.Port)
			if errors.Is(err, discover.ErrNotFound) {
				return fmt.Errorf("%v: no socket holds the port (is the server running?)", t)
			}
			if err != nil {
				return fmt.Errorf("%v: %w", t, err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "socket %v\n", t)
			writeSockets(&b, []discover.Socket{sock})
			_ = e.out([]byte(b.String()))

			text, err := askStats(ctx, t.Port, *timeout)
			if err != nil {
				e.printf("no endpoint counters: %s\n", strings.TrimPrefix(err.Error(), "cnlink: "))
				return nil
			}
			return e.out([]byte(text))
		}
	},
}

// askStats dials the stat channel of port and requests the counters.
func askStats(ctx context.Context, port uint32, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr, err := transport.Open(transport.Config{})
	if err != nil {
		return "", err
	}
	ep, err := reliable.NewEndpoint(tr, &reliable.Config{AcceptBacklog: -1})
	if err != nil {
		_ = tr.Close()
		return "", err
	}
	defer ep.Close()
	s, err := ep.Dial(ctx, port, statChannel)
	if err != nil {
		if errors.Is(err, reliable.ErrPeerReset) {
			return "", errors.New("the endpoint refused a session on the stat channel (not a 'cnlink listen')")
		}
		return "", err
	}
	reply, err := s.Request(ctx, []byte("stats"))
	if err != nil {
		s.Abort()
		if errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("no answer within %v (not a 'cnlink listen'?)", timeout)
		}
		return "", err
	}
	_ = s.Close()
	return string(reply), nil
}
