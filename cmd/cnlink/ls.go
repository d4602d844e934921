package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cnlink/cnlink/discover"
)

var lsCommand = &command{
	name:  "ls",
	short: "list the connector sockets of this host, with their processes",
	args:  "[-pid N] [-comm NAME] [-port N|NAME]",
	summary: "List the NETLINK_CONNECTOR sockets of this network namespace (from /proc/net/netlink):\n" +
		"port, owning processes, groups, receive queue (bytes) and drops. Without root, only the\n" +
		"owners of this user's sockets are shown; port 0 is the kernel.",
	flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		pid := fs.Int("pid", 0, "only sockets held by process `N`")
		comm := fs.String("comm", "", "only sockets held by processes with this command `name`")
		port := fs.String("port", "", "only the socket on this port (a number or a service name)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			var ss []discover.Socket
			var err error
			switch {
			case *pid != 0:
				ss, err = discover.ByPID(*pid)
			case *comm != "":
				ss, err = discover.ByComm(*comm)
			default:
				ss, err = discover.Sockets()
			}
			if err != nil {
				return err
			}
			if *port != "" {
				t, err := parseTarget(*port)
				if err != nil {
					return err
				}
				var keep []discover.Socket
				for _, s := range ss {
					if s.Port == t.Port {
						keep = append(keep, s)
					}
				}
				ss = keep
			}
			var b strings.Builder
			writeSockets(&b, ss)
			return e.out([]byte(b.String()))
		}
	},
}

// writeSockets prints the ls table: one line per socket and owner (a
// socket shared after a fork has a line per process).
func writeSockets(w io.Writer, ss []discover.Socket) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tPID\tCOMMAND\tUID\tGROUPS\tRECVQ\tDROPS\tINODE")
	for _, s := range ss {
		groups := "-"
		if gl := s.GroupList(); len(gl) > 0 {
			parts := make([]string, len(gl))
			for i, g := range gl {
				parts[i] = strconv.Itoa(int(g))
			}
			groups = strings.Join(parts, ",")
		}
		pid, comm, uid := "-", "?", "-"
		if s.Kernel() {
			comm = "[kernel]"
		}
		if len(s.Owners) == 0 {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", s.Port, pid, comm, uid, groups, s.Rmem, s.Drops, s.Inode)
		}
		for _, o := range s.Owners { // one line per owner: several after a fork
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\n", s.Port, o.PID, o.Comm, uidString(o.UID), groups, s.Rmem, s.Drops, s.Inode)
		}
	}
	tw.Flush()
}

func uidString(uid int) string {
	if uid < 0 {
		return "?"
	}
	return strconv.Itoa(uid)
}
