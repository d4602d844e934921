package multicast

import (
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/repair"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

// handle processes one datagram a subscriber sent the publisher: NAKs and
// STATUS reports, by unicast. Everything else is dropped and counted.
func (p *Publisher) handle(rb *rxBuf, now time.Duration) {
	defer p.rd.put(rb)
	pk := &rb.p
	if pk.Overrun {
		// NAKs or reports were lost; their senders repeat them.
		return
	}
	if pk.Group != 0 || pk.From == 0 || pk.Truncated {
		p.stats.rejected.Add(1)
		return
	}
	var r wire.Reader
	r.Reset(pk.Data)
	for r.Next() {
		f, err := r.Frame()
		if err != nil || f.ID != p.cfg.Channel || f.Ack != p.epoch+1 {
			p.stats.rejected.Add(1)
			continue
		}
		switch f.Header.Type {
		case wire.TypeNak:
			p.onNak(pk.From, f, now)
		case wire.TypeStatus:
			p.onStatus(pk.From, pk.Creds, f, now)
		default:
			p.stats.rejected.Add(1)
		}
	}
}

func (p *Publisher) onNak(port uint32, f *wire.Parsed, now time.Duration) {
	if !p.limiter.AllowN(p.start.Add(now), 1) {
		p.stats.nakLimited.Add(1)
		return
	}
	rs, err := wire.ParseNak(f.Body, p.nakBuf)
	p.nakBuf = rs
	if err != nil {
		p.stats.rejected.Add(1)
		return
	}
	p.stats.naks.Add(1)
	p.ranges = p.ranges[:0]
	for _, x := range rs {
		p.ranges = append(p.ranges, window.Range{Start: window.Seq(x.Start), End: window.Seq(x.End)})
	}
	tail := f.Header.Flags&wire.FlagTail != 0
	switch p.st.OnNak(port, p.ranges, tail, window.Seq(f.Header.Arg), now) {
	case repair.NakUnsent:
		p.stats.nakUnsent.Add(1)
	case repair.NakTooOld:
		// Tell it what is gone: the heartbeat carries the oldest MSN.
		p.stats.nakTooOld.Add(1)
		_ = p.sendHeartbeat(port, 0)
	case repair.NakNoRoom:
		p.stats.nakNoRoom.Add(1)
	}
}

func (p *Publisher) onStatus(port uint32, creds transport.Creds, f *wire.Parsed, now time.Duration) {
	p.stats.statuses.Add(1)
	leave := f.Header.Flags&wire.FlagLeave != 0
	m := p.st.Member(port)
	if m != nil && m.Registered {
		if c, ok := p.creds[port]; ok && c != creds {
			// Another process holds the port now: the old subscriber is
			// gone, this is a new one.
			p.st.Remove(port)
			delete(p.creds, port)
			m = nil
		}
	}
	if !leave && (m == nil || !m.Registered) && p.cfg.Allow != nil && !p.cfg.Allow(port, creds) {
		p.stats.evicted.Add(1)
		p.sendEvict(port, window.Seq(f.Seq), uint32(EvictRefused))
		return
	}
	switch p.st.OnStatus(port, window.Seq(f.Seq), int(f.Header.Arg), leave, now) {
	case repair.StatusRegistered:
		p.creds[port] = creds
		p.stats.registered.Add(1)
		_ = p.sendHeartbeat(port, 0)
	case repair.StatusLeft:
		delete(p.creds, port)
	case repair.StatusRefused:
		p.stats.evicted.Add(1)
		p.sendEvict(port, window.Seq(f.Seq), uint32(EvictRefused))
	case repair.StatusStale:
		p.stats.rejected.Add(1)
	}
}
