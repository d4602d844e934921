package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/cnlink/cnlink/reliable"
)

var sendCommand = &command{
	name:  "send",
	short: "send the standard input's lines over one session, then close it",
	args:  "-to PORT|NAME [-channel IDX:VAL] [-comm NAME] [-uid ID] [-raw]",
	summary: "Open one session and send each line of the standard input as a message (without its\n" +
		"newline; -raw: each read of the input, up to the session's maximum message size), then\n" +
		"close the session gracefully. Exit status 0 only if the close succeeded, that is when\n" +
		"the peer holds every message.",
	flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var c clientFlags
		c.register(fs)
		raw := fs.Bool("raw", false, "send the input as it is, a message per read, instead of line by line")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			ep, s, t, err := c.dial(ctx, nil)
			if err != nil {
				return err
			}
			defer ep.Close()
			n, err := sendInput(ctx, s, e.stdin, *raw)
			if err != nil {
				s.Abort()
				return fmt.Errorf("%v: after %d messages: %w", t, n, err)
			}
			if err := s.Close(); err != nil {
				return fmt.Errorf("%v: close after %d messages (not all may have arrived): %w", t, n, err)
			}
			return nil
		}
	},
}

// sendInput sends r line by line (or in chunks) and returns how many
// messages were queued.
func sendInput(ctx context.Context, s *reliable.Session, r io.Reader, raw bool) (int, error) {
	n := 0
	max := s.MaxMessage()
	if raw {
		// Each read is a message, as socat sends each read: a pipe or a
		// terminal hands over what it has at once.
		buf := make([]byte, max)
		for {
			k, err := r.Read(buf)
			if k > 0 {
				if serr := s.Send(ctx, buf[:k]); serr != nil {
					return n, serr
				}
				n++
			}
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, fmt.Errorf("reading the input: %w", err)
			}
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), max+1) // a line over max fails below
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if err := s.Send(ctx, line); err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return n, fmt.Errorf("line %d is longer than the session's maximum message, %d bytes (use -raw)", n+1, max)
		}
		return n, fmt.Errorf("reading the input: %w", err)
	}
	return n, nil
}

var catCommand = &command{
	name:  "cat",
	short: "connect, print what the peer sends and send the standard input",
	args:  "-to PORT|NAME [-channel IDX:VAL] [-comm NAME] [-uid ID] [-raw]",
	summary: "Connect, like socat: print what the peer sends, one message per line (-raw: as it is),\n" +
		"and send the standard input's lines. It ends when the peer closes the session (status 0),\n" +
		"or on an interrupt, which closes the session gracefully.",
	flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var c clientFlags
		c.register(fs)
		raw := fs.Bool("raw", false, "write and read messages as they are, without newlines")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			ep, s, t, err := c.dial(ctx, nil)
			if err != nil {
				return err
			}
			defer ep.Close()
			// The sender is not waited for: it may be blocked reading a
			// terminal when the peer closes, and the process exits then.
			sendCtx, stopSend := context.WithCancel(ctx)
			defer stopSend()
			go func() {
				if _, err := sendInput(sendCtx, s, e.stdin, *raw); err != nil && sendCtx.Err() == nil {
					e.note("cat: sending: %v", err)
				}
			}()
			for msg, err := range s.RecvIter(ctx) {
				if err != nil {
					if ctx.Err() != nil { // interrupted: close gracefully
						stopSend()
						if cerr := s.Close(); cerr != nil && !errors.Is(cerr, reliable.ErrPeerClosed) {
							return fmt.Errorf("%v: close: %w", t, cerr)
						}
						return nil
					}
					return fmt.Errorf("%v: %w", t, err)
				}
				if !*raw {
					msg = append(msg, '\n')
				}
				if err := e.out(msg); err != nil {
					s.Abort()
					return err
				}
			}
			stopSend() // the peer closed: every message it sent was printed
			return nil
		}
	},
}
