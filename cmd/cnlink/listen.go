package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

// statChannel is the connector channel on which a listen answers
// cnlink stat: "CNLK":"STAT".
var statChannel = transport.CbID{Idx: 0x434e4c4b, Val: 0x53544154}

var listenCommand = &command{
	name:  "listen",
	short: "accept sessions and print their messages (or echo them)",
	args:  "[-port N | -name NAME] [-channel IDX:VAL] [-echo] [-raw] [-once] [-stats]",
	summary: "Accept sessions and copy each session's messages to the standard output, one message\n" +
		"per line (-raw: bytes as they are). Requests are printed too and answered with an empty\n" +
		"reply. With -echo nothing is printed: requests are answered with their own bytes (for\n" +
		"cnlink ping) and messages are sent back (for cnlink cat). The port is printed on the\n" +
		"standard error. SIGUSR1 prints the endpoint's counters to the standard error, and\n" +
		"cnlink stat asks for them over the session channel CNLK:STAT.",
	flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var o listenOpts
		fs.UintVar(&o.port, "port", 0, "bind port `N` (0: the kernel picks one, usually the PID)")
		fs.StringVar(&o.name, "name", "", "bind the port of service `NAME` (discover.PortForName)")
		fs.StringVar(&o.channel, "channel", "", "accept only sessions on connector channel `IDX:VAL` (default any)")
		fs.BoolVar(&o.echo, "echo", false, "answer requests with their own bytes and send messages back; print nothing")
		fs.BoolVar(&o.raw, "raw", false, "write messages as they are, without a newline after each")
		fs.BoolVar(&o.once, "once", false, "exit after the first session ends (status 0 if the peer closed it gracefully)")
		fs.BoolVar(&o.stats, "stats", false, "print the endpoint's counters to the standard error at exit")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			return listen(ctx, e, o)
		}
	},
}

type listenOpts struct {
	port                   uint
	name, channel          string
	echo, raw, once, stats bool
}

func listen(ctx context.Context, e *env, o listenOpts) error {
	if o.port != 0 && o.name != "" {
		return usagef("-port and -name exclude each other")
	}
	if o.port > 1<<32-1 {
		return usagef("-port %d: over 32 bits", o.port)
	}
	var only *transport.CbID
	if o.channel != "" {
		ch, err := parseChannel(o.channel)
		if err != nil {
			return err
		}
		only = &ch
	}
	var tr *transport.Conn
	var err error
	if o.name != "" {
		tr, err = discover.OpenName(o.name, transport.Config{})
	} else {
		tr, err = discover.Open(transport.Config{Port: uint32(o.port)})
	}
	if err != nil {
		return err
	}
	cfg := &reliable.Config{
		AllowPeer: func(_ uint32, ch transport.CbID, _ transport.Creds) bool {
			return only == nil || ch == *only || ch == statChannel
		},
	}
	ep, err := reliable.NewEndpoint(tr, cfg)
	if err != nil {
		_ = tr.Close()
		return err
	}
	l := &listener{e: e, o: o, ep: ep, sessions: map[*reliable.Session]struct{}{}}
	if o.name != "" {
		e.note("listening on port %d (name %q)", ep.LocalPort(), o.name)
	} else {
		e.note("listening on port %d", ep.LocalPort())
	}

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	stopUSR1 := make(chan struct{})
	defer close(stopUSR1)
	go func() {
		for {
			select {
			case <-usr1:
				e.mu.Lock()
				fmt.Fprint(e.stderr, l.statsText())
				e.mu.Unlock()
			case <-stopUSR1:
				return
			}
		}
	}()

	err = l.serve(ctx) // returns once every session has ended
	if o.stats {
		e.mu.Lock()
		fmt.Fprint(e.stderr, l.statsText())
		e.mu.Unlock()
	}
	_ = ep.Close()
	return err
}

type listener struct {
	e  *env
	o  listenOpts
	ep *reliable.Endpoint
	wg sync.WaitGroup

	mu       sync.Mutex
	sessions map[*reliable.Session]struct{}
	total    int
}

// serve accepts sessions until ctx ends (nil) or, with -once, the first
// data session ends (its result).
func (l *listener) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var onceErr error
	var onceDone bool
	for {
		s, err := l.ep.Accept(ctx)
		if err != nil {
			// Let every session close gracefully before the endpoint
			// goes (Endpoint.Close would abort them).
			l.wg.Wait()
			if ctx.Err() != nil {
				l.mu.Lock()
				defer l.mu.Unlock()
				if onceDone {
					return onceErr
				}
				return nil // interrupted: a normal end
			}
			return err
		}
		if s.Channel() == statChannel {
			l.wg.Go(func() { l.answerStats(ctx, s) })
			continue
		}
		l.mu.Lock()
		l.sessions[s] = struct{}{}
		l.total++
		first := l.total == 1
		l.mu.Unlock()
		l.wg.Go(func() {
			err := l.session(ctx, s)
			if err != nil && ctx.Err() == nil {
				l.e.note("session with port %d: %s", s.Peer(), strings.TrimPrefix(err.Error(), "cnlink: "))
			}
			l.mu.Lock()
			delete(l.sessions, s)
			if l.o.once && first {
				onceErr, onceDone = err, true
				cancel()
			}
			l.mu.Unlock()
		})
	}
}

// session copies one session to stdout (or echoes it). It returns nil
// when the peer closed the session gracefully.
func (l *listener) session(ctx context.Context, s *reliable.Session) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // requests share the stream: always read them
		for r, err := range s.RequestsIter(ctx) {
			if err != nil {
				return
			}
			if l.o.echo {
				_ = r.Reply(ctx, r.Data)
				continue
			}
			l.print(r.Data)
			_ = r.Reply(ctx, nil)
		}
	})
	for msg, err := range s.RecvIter(ctx) {
		if err != nil {
			if ctx.Err() != nil {
				break // interrupted: close gracefully below
			}
			s.Abort()
			return err
		}
		if l.o.echo {
			if err := s.Send(ctx, msg); err != nil {
				s.Abort()
				return err
			}
			continue
		}
		l.print(msg)
		s.Recycle(msg)
	}
	// The peer closed (everything it sent was seen), or we were
	// interrupted: close our side gracefully, which also waits until the
	// peer has every echo (bounded by the endpoint's CloseTimeout).
	if err := s.Close(); err != nil && !errors.Is(err, reliable.ErrPeerClosed) {
		return err
	}
	return nil
}

func (l *listener) print(msg []byte) {
	if l.o.raw {
		_ = l.e.out(msg)
		return
	}
	line := make([]byte, 0, len(msg)+1)
	line = append(append(line, msg...), '\n')
	_ = l.e.out(line)
}

// answerStats answers every request on a stat session with statsText.
func (l *listener) answerStats(ctx context.Context, s *reliable.Session) {
	go func() { // nothing is expected on Recv; drain it so it cannot block
		for range s.RecvIter(ctx) {
		}
	}()
	for r, err := range s.RequestsIter(ctx) {
		if err != nil {
			return
		}
		_ = r.Reply(ctx, []byte(l.statsText()))
	}
	_ = s.Close()
}

// statsText formats the endpoint's counters and its open sessions'.
func (l *listener) statsText() string {
	st := l.ep.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "endpoint port %d (pid %d)\n", l.ep.LocalPort(), os.Getpid())
	fmt.Fprintf(&b, "  datagrams sent %d received %d, bytes sent %d\n", st.DatagramsSent, st.DatagramsReceived, st.BytesSent)
	fmt.Fprintf(&b, "  peer busy %d, send errors %d, overruns %d, spurious retransmits %d, undelivered %d\n",
		st.PeerBusy, st.SendErrors, st.Overruns, st.SpuriousRetransmits, st.Undelivered)
	fmt.Fprintf(&b, "  resets sent %d suppressed %d\n", st.ResetsSent, st.ResetsSuppressed)
	if len(st.Rejected) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(st.Rejected)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, st.Rejected[k]))
		}
		fmt.Fprintf(&b, "  rejected: %s\n", strings.Join(parts, ", "))
	}
	l.mu.Lock()
	ss := slices.Collect(maps.Keys(l.sessions))
	total := l.total
	l.mu.Unlock()
	slices.SortFunc(ss, func(a, b *reliable.Session) int { return int(int64(a.Peer()) - int64(b.Peer())) })
	fmt.Fprintf(&b, "sessions: %d open, %d accepted\n", len(ss), total)
	for _, s := range ss {
		x := s.Stats()
		fmt.Fprintf(&b, "  port %d channel %s: sent %d received %d delivered %d, retransmits %d (timeout %d), duplicates %d, srtt %v\n",
			s.Peer(), channelString(s.Channel()), x.Sent, x.Received, x.Delivered, x.Retransmits, x.TimeoutRetransmits, x.DuplicatesSuppressed, x.SRTT)
	}
	return b.String()
}
