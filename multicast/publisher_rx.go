package multicast

import (
	"errors"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/repair"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

// handle processes one datagram a subscriber sent the publisher: NAKs and
// STATUS reports, by unicast, with the checks of PROTOCOL.md §16.8.1 in
// their order. Everything else is dropped and counted.
func (p *Publisher) handle(rb *rxBuf, now time.Duration) {
	defer p.rd.put(rb)
	pk := &rb.p
	switch {
	case pk.Overrun:
		// NAKs or reports were lost; their senders repeat them.
		return
	case pk.Truncated:
		p.rej.add(rejTruncated)
		return
	case pk.Group != 0 || pk.From == 0:
		p.rej.add(rejMulticast)
		return
	}
	var r wire.Reader
	r.Reset(pk.Data)
	for r.Next() {
		f, err := r.Frame()
		switch {
		case errors.Is(err, wire.ErrChecksum):
			p.rej.add(rejChecksum)
		case err != nil:
			p.rej.add(rejMalformed)
		case f.ID != p.cfg.Channel:
			p.rej.add(rejNoStream)
		case f.Header.Type != wire.TypeNak && f.Header.Type != wire.TypeStatus:
			p.rej.add(rejMalformed)
		case f.Ack != p.epoch+1:
			p.rej.add(rejEpoch)
		default:
			p.frame(pk.From, pk.Creds, f, now)
		}
	}
	if r.Err() != nil {
		p.rej.add(rejMalformed)
	}
}

// frame applies checks 9 to 19 of §16.8.1 to a NAK or STATUS.
func (p *Publisher) frame(port uint32, creds transport.Creds, f *wire.Parsed, now time.Duration) {
	if m := p.st.Member(port); m != nil && m.Registered {
		if c, ok := p.creds[port]; ok && c != creds {
			// Another process holds the port now: the old subscriber is
			// gone, this is a new one.
			p.rej.add(rejCredentialsChanged)
			p.st.Remove(port)
			delete(p.creds, port)
		}
	}
	if e, ok := p.evictedPorts[port]; ok {
		if now-e.at < 2*p.cfg.SubscriberTimeout {
			p.rej.add(rejEvicted)
			if p.limiter.AllowN(p.start.Add(now), 1) {
				p.sendEvict(port, window.Seq(f.Seq), e.reason)
			}
			return
		}
		delete(p.evictedPorts, port)
	}
	if !p.allowed(port, creds) {
		p.rej.add(rejRefused)
		if f.Header.Type == wire.TypeStatus && p.limiter.AllowN(p.start.Add(now), 1) {
			p.evict(port, window.Seq(f.Seq), uint32(EvictRefused), now)
		}
		return
	}
	if f.Header.Type == wire.TypeNak {
		p.onNak(port, f, now)
	} else {
		p.onStatus(port, creds, f, now)
	}
}

// allowed asks the application's filter, once per port and credentials.
func (p *Publisher) allowed(port uint32, creds transport.Creds) bool {
	if p.cfg.Allow == nil {
		return true
	}
	if v, ok := p.allowCache[port]; ok && v.creds == creds {
		return v.ok
	}
	if len(p.allowCache) >= 4096 {
		clear(p.allowCache) // bounded: a port scan only costs calls
	}
	ok := p.cfg.Allow(port, creds)
	p.allowCache[port] = allowVerdict{creds, ok}
	return ok
}

type allowVerdict struct {
	creds transport.Creds
	ok    bool
}

type evictedPort struct {
	at     time.Duration
	reason uint32
}

func (p *Publisher) onNak(port uint32, f *wire.Parsed, now time.Duration) {
	if !p.limiter.AllowN(p.start.Add(now), 1) {
		p.stats.nakLimited.Add(1)
		p.rej.add(rejNakRate)
		return
	}
	rs, err := wire.ParseNak(f.Body, p.nakBuf)
	p.nakBuf = rs
	if err != nil {
		p.rej.add(rejMalformed)
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
		p.rej.add(rejNakUnsent)
	case repair.NakTooOld:
		// Tell it what is gone: the heartbeat carries the oldest MSN.
		p.stats.nakTooOld.Add(1)
		_ = p.sendHeartbeat(port, 0)
	case repair.NakNoRoom:
		p.stats.nakNoRoom.Add(1)
		p.rej.add(rejNakNoRoom)
	}
}

func (p *Publisher) onStatus(port uint32, creds transport.Creds, f *wire.Parsed, now time.Duration) {
	leave := f.Header.Flags&wire.FlagLeave != 0
	if f.Header.Arg == 0 && !leave {
		p.rej.add(rejMalformed)
		return
	}
	p.stats.statuses.Add(1)
	switch p.st.OnStatus(port, window.Seq(f.Seq), int(min(f.Header.Arg, 1<<30)), leave, now) {
	case repair.StatusRegistered:
		p.creds[port] = creds
		p.stats.registered.Add(1)
		_ = p.sendHeartbeat(port, 0)
	case repair.StatusUpdated:
		if f.Header.Flags&wire.FlagJoin != 0 && p.limiter.AllowN(p.start.Add(now), 1) {
			// Our answer to its registration was lost: confirm again.
			_ = p.sendHeartbeat(port, 0)
		}
	case repair.StatusLeft:
		delete(p.creds, port)
	case repair.StatusRefused:
		p.rej.add(rejRefused)
		p.evict(port, window.Seq(f.Seq), uint32(EvictRefused), now)
	case repair.StatusStale:
		p.rej.add(rejStatusUnsent)
	}
}
