package torture

import "time"

// How long things may take. A session must end within its bound after its
// first local action; the bound is what the contract allows (a graceful
// close may take CloseTimeout and end in a dead-peer wait, a failed
// handshake HandshakeTimeout), plus the time the readers legitimately
// take to consume what is left, plus slack for a loaded machine and -race.

func (r *runState) bound(sr *sessRun) time.Duration {
	var b time.Duration
	for _, i := range sr.plan.ep {
		c := r.plan.eps[i].cfg
		b = max(b, c.CloseTimeout+c.DeadPeerTimeout+c.HandshakeTimeout+2*c.KeepAlive)
	}
	var pace time.Duration
	for i, sp := range sr.plan.side {
		n := time.Duration(sr.plan.side[1-i].msgs)
		p := n * 20 * time.Microsecond
		switch sp.reader.kind {
		case readSlow:
			p = n * (sp.reader.slow[1] + 200*time.Microsecond)
		case readStalled:
			for _, d := range sp.reader.stalls {
				p += d
			}
		}
		pace = max(pace, p)
	}
	return b + pace + r.slack()
}

// handshakeTimeout is every endpoint's Config.HandshakeTimeout.
const handshakeTimeout = 2 * time.Second

func (r *runState) slack() time.Duration {
	if raceEnabled {
		return 15 * time.Second
	}
	return 5 * time.Second
}

// runLimit is the whole run's watchdog: generous, since a long stream
// through a small window at 30% loss is slow without being stuck; the
// per-session bounds catch hangs at the end much sooner.
func (r *runState) runLimit() time.Duration {
	if raceEnabled {
		return 4 * time.Minute
	}
	return 2 * time.Minute
}
