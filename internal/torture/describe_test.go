package torture

import (
	"fmt"
	"strings"
)

// describe is the multi-line account of a plan printed with a failure.
func (p *runPlan) describe() string {
	var b strings.Builder
	kind := "memnet"
	if p.netlink {
		kind = "netlink"
	}
	fmt.Fprintf(&b, "  %s, GOMAXPROCS=%d, %d endpoints, %d sessions", kind, p.procs, len(p.eps), len(p.sessions))
	if p.epClose >= 0 {
		how := "closes"
		if p.epCrash {
			how = "crashes (socket closed under it)"
		}
		fmt.Fprintf(&b, ", endpoint %d %s at +%v", p.epClose, how, p.epCloseAt)
	}
	if p.linger {
		b.WriteString(", linger check")
	}
	b.WriteByte('\n')
	for i, e := range p.eps {
		c := e.cfg
		fmt.Fprintf(&b, "  ep%d: window=%d sendbuf=%d recvbuf=%d maxmsg=%d maxdgram=%d keepalive=%v dead=%v close=%v rcvbuf=%d",
			i, c.Window, c.SendBuffer, c.RecvBuffer, c.MaxMessage, c.MaxDatagram, c.KeepAlive, c.DeadPeerTimeout, c.CloseTimeout, e.readBuf)
		if f := e.faults; f != nil {
			fmt.Fprintf(&b, " faults{loss=%.1f%% dup=%.1f%% reorder=%.1f%% corrupt=%.1f%% delay=%v+%v eagain=%v overrun=%v rdup=%.1f%%}",
				f.Send.Loss*100, f.Send.Duplicate*100, f.Send.Reorder*100, f.Send.Corrupt*100, f.Send.Delay, f.Send.Jitter,
				f.Send.EAGAINBurst, f.Recv.OverrunBurst, f.Recv.Duplicate*100)
		}
		b.WriteByte('\n')
	}
	for _, s := range p.sessions {
		open := "dial"
		if s.simOpen {
			open = "simultaneous open"
		}
		fmt.Fprintf(&b, "  session %d (%s ep%d->ep%d, channel %v): %s\n", s.id, open, s.ep[0], s.ep[1], s.ch, s.ending)
		for i, sp := range s.side {
			fmt.Fprintf(&b, "    side %d: sends %d msgs in %d ops (max %d B, big %.0f%%", i, sp.msgs, len(sp.ops), sp.out.max, sp.out.bigP*100)
			if sp.shortCtx > 0 {
				fmt.Fprintf(&b, ", call deadlines %v", sp.shortCtx)
			}
			if sp.oversizeAt >= 0 {
				fmt.Fprintf(&b, ", oversize before %d", sp.oversizeAt)
			}
			fmt.Fprintf(&b, "), reader %v", sp.reader.kind)
			switch sp.reader.kind {
			case readSlow:
				fmt.Fprintf(&b, " %v-%v", sp.reader.slow[0], sp.reader.slow[1])
			case readStalled:
				fmt.Fprintf(&b, " %v", sp.reader.stalls)
			case readVanish:
				fmt.Fprintf(&b, " after %d", sp.reader.vanishAfter)
			}
			for _, a := range sp.actions {
				fmt.Fprintf(&b, "; %v", a)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}
