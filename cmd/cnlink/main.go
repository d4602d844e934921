// Command cnlink talks to cnlink endpoints and watches netlink connector
// sockets from the shell.
//
//	go install github.com/cnlink/cnlink/cmd/cnlink@latest
//
// Usage:
//
//	cnlink ls [-pid N] [-comm NAME]           connector sockets of this host
//	cnlink listen [-port N | -name NAME] ...  accept sessions, print their messages
//	cnlink send -to PORT|NAME                 send stdin's lines over one session
//	cnlink cat -to PORT|NAME                  connect; print what the peer sends, send stdin
//	cnlink ping -to PORT|NAME [-c N]          request/reply round trips to a listen -echo
//	cnlink stat -to PORT|NAME                 a socket's kernel counters, a listen's counters
//	cnlink proc [-duration D]                 fork / exec / exit events, like forkstat
//	cnlink help [command]
//
// A NAME stands for the port discover.PortForName(NAME); a target made of
// digits only is a port number. Sessions between processes need root or
// CAP_NET_ADMIN (the kernel's rule for NETLINK_CONNECTOR); ls and proc
// need no privilege.
//
// Exit status: 0 on success, 1 on a runtime failure, 2 on a usage error.
// Errors go to the standard error, prefixed "cnlink: ".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is a command's standard streams. stdout is shared by the goroutines
// of a command: write whole lines through out.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	mu             sync.Mutex // serialises writes to stdout and stderr
}

// out writes to stdout under the lock.
func (e *env) out(b []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.stdout.Write(b)
	return err
}

func (e *env) printf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.stdout, format, args...)
}

// note writes an informational line to stderr, prefixed like errors.
func (e *env) note(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.stderr, "cnlink: "+format+"\n", args...)
}

// command is one subcommand.
type command struct {
	name, args string
	short      string // one line, for cnlink help
	summary    string // the description, for cnlink <command> -h
	// flags declares the command's flags on fs and returns the function
	// that runs it once they are parsed.
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

var commands []*command

func init() {
	commands = []*command{lsCommand, listenCommand, sendCommand, catCommand, pingCommand, statCommand, procCommand}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `cnlink: reliable messaging over netlink connector sockets

Usage:
	cnlink <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "\t%-7s %s\n", c.name, c.short)
	}
	fmt.Fprint(w, `	help    this text, or a command's: cnlink help <command>

A target PORT|NAME is a netlink port number, or a service name whose port
is discover.PortForName(NAME). Sessions between processes need root or
CAP_NET_ADMIN; ls and proc need no privilege.

Run 'cnlink <command> -h' for a command's flags.
Exit status: 0 success, 1 failure, 2 usage error.
`)
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: cnlink %s %s\n\n%s\n", c.name, c.args, c.summary)
	if hasFlags(fs) {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		mainUsage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			mainUsage(e.stdout)
			return exitOK
		}
		c := lookup(rest[0])
		if c == nil {
			fmt.Fprintf(e.stderr, "cnlink: help: unknown command %q\n", rest[0])
			return exitUsage
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.flags(fs)
		commandUsage(e.stdout, c, fs)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "cnlink: unknown command %q (run 'cnlink help')\n", name)
		return exitUsage
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runFn := c.flags(fs)
	fs.Usage = func() {}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(e.stderr, c, fs)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "cnlink: %s: %v\n", c.name, err)
		fmt.Fprintf(e.stderr, "usage: cnlink %s %s (run 'cnlink %s -h')\n", c.name, c.args, c.name)
		return exitUsage
	}
	err := runFn(ctx, e, fs.Args())
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "cnlink: %s: %s\n", c.name, ue.msg)
		fmt.Fprintf(e.stderr, "usage: cnlink %s %s (run 'cnlink %s -h')\n", c.name, c.args, c.name)
		return exitUsage
	}
	fmt.Fprintln(e.stderr, errorLine(c.name, err))
	return exitFailure
}

// errorLine formats a runtime failure: "cnlink: <command>: <error>", with
// the error's own "cnlink: " prefix, if any, not repeated.
func errorLine(cmd string, err error) string {
	return "cnlink: " + cmd + ": " + strings.TrimPrefix(err.Error(), "cnlink: ")
}

// noArgs rejects positional arguments.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// target is a -to flag: a port, or a name standing for its port.
type target struct {
	Port uint32
	Name string // "" when given as a number
}

func (t target) String() string {
	if t.Name != "" {
		return fmt.Sprintf("%s (port %d)", t.Name, t.Port)
	}
	return fmt.Sprintf("port %d", t.Port)
}

// parseTarget parses PORT|NAME. A string of digits is a port (1 to
// 2^32-1: 0 is the kernel); anything else is a name.
func parseTarget(s string) (target, error) {
	if s == "" {
		return target{}, usagef("-to is required (a port number or a service name)")
	}
	if strings.Trim(s, "0123456789") == "" {
		p, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return target{}, usagef("port %q: not a 32-bit number", s)
		}
		if p == 0 {
			return target{}, usagef("port 0 is the kernel, not a cnlink endpoint")
		}
		return target{Port: uint32(p)}, nil
	}
	return target{Port: discover.PortForName(s), Name: s}, nil
}

// parseChannel parses IDX:VAL (decimal or 0x hex) into a connector id.
// "" is the default channel.
func parseChannel(s string) (transport.CbID, error) {
	if s == "" {
		return reliable.DefaultChannel, nil
	}
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return transport.CbID{}, usagef("-channel %q: want IDX:VAL", s)
	}
	idx, err1 := strconv.ParseUint(a, 0, 32)
	val, err2 := strconv.ParseUint(b, 0, 32)
	if err1 != nil || err2 != nil {
		return transport.CbID{}, usagef("-channel %q: IDX and VAL are 32-bit numbers", s)
	}
	id := transport.CbID{Idx: uint32(idx), Val: uint32(val)}
	if id.Idx >= 1 && id.Idx <= 10 {
		return transport.CbID{}, usagef("-channel %q: idx 1..10 belong to kernel connectors", s)
	}
	return id, nil
}

func channelString(id transport.CbID) string { return fmt.Sprintf("%d:%d", id.Idx, id.Val) }

// clientFlags are the flags of the commands that dial a peer.
type clientFlags struct {
	to, channel, comm string
	uid               int
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.to, "to", "", "the peer: a port number or a service `name` (its port is discover.PortForName(name))")
	fs.StringVar(&c.channel, "channel", "", "connector channel `IDX:VAL` (default the cnlink channel, 1129204811:1)")
	fs.StringVar(&c.comm, "comm", "", "check first that the process holding the port has this command `name` (from /proc)")
	fs.IntVar(&c.uid, "uid", -1, "check first that the process holding the port runs as real user `ID`")
}

// dial resolves the flags and opens a session.
func (c *clientFlags) dial(ctx context.Context, cfg *reliable.Config) (*reliable.Endpoint, *reliable.Session, target, error) {
	t, err := parseTarget(c.to)
	if err != nil {
		return nil, nil, t, err
	}
	ch, err := parseChannel(c.channel)
	if err != nil {
		return nil, nil, t, err
	}
	if c.comm != "" || c.uid >= 0 {
		want := discover.Expect{Comm: c.comm}
		if c.uid >= 0 {
			want.UIDs = []int{c.uid}
		}
		if _, err := discover.Check(t.Port, want); err != nil {
			return nil, nil, t, fmt.Errorf("%v: %w", t, err)
		}
	}
	tr, err := transport.Open(transport.Config{})
	if err != nil {
		return nil, nil, t, err
	}
	if cfg == nil {
		cfg = &reliable.Config{}
	}
	cfg.AcceptBacklog = -1
	ep, err := reliable.NewEndpoint(tr, cfg)
	if err != nil {
		_ = tr.Close()
		return nil, nil, t, err
	}
	s, err := ep.Dial(ctx, t.Port, ch)
	if err != nil {
		_ = ep.Close()
		if errors.Is(err, reliable.ErrTimeout) || errors.Is(err, reliable.ErrPeerGone) || errors.Is(err, reliable.ErrPeerReset) {
			if _, lerr := discover.ByPort(t.Port); errors.Is(lerr, discover.ErrNotFound) {
				return nil, nil, t, fmt.Errorf("dial %v: no socket holds the port (is the server running?)", t)
			}
		}
		return nil, nil, t, fmt.Errorf("dial %v: %w", t, err)
	}
	return ep, s, t, nil
}
