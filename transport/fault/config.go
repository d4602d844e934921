package fault

import (
	"fmt"
	"time"
)

// Burst is a run of consecutive faults: each datagram outside a burst
// starts one with probability P, and the burst then covers Len datagrams.
type Burst struct {
	P   float64
	Len int
}

// Direction is the set of faults applied to one direction. Every
// probability is per datagram, in [0, 1]; the zero value injects nothing.
type Direction struct {
	// Loss drops the datagram. A send-side loss returns nil, as a packet
	// lost on the wire does.
	Loss float64
	// Duplicate delivers a second, separately delayed copy.
	Duplicate float64
	// Reorder holds the datagram back until a later one has gone past it
	// (or at most 2*(Delay+Jitter)+5ms, if traffic stops).
	Reorder float64
	// Corrupt flips bits anywhere in the datagram, headers included: one
	// bit flipped, sometimes a byte or two more garbled too.
	Corrupt float64
	// Delay is added to every datagram, plus a uniform random part in
	// [0, Jitter); jitter alone reorders datagrams closer than Jitter.
	Delay, Jitter time.Duration
	// EAGAINBurst, on the send side only, makes Len consecutive sends
	// fail with transport.ErrPeerBusy without sending, as a peer with a
	// full queue does.
	EAGAINBurst Burst
	// OverrunBurst, on the receive side only, reports Packet{Overrun:
	// true} and drops Len datagrams, starting with the one that triggered
	// it, as the kernel does to a congested socket. Len 0 reports an
	// overrun that lost nothing (the kernel's report can be for traffic
	// the receiver did not care about).
	OverrunBurst Burst
}

// Config configures a Conn.
type Config struct {
	// Seed seeds two independent PCG streams, one per direction, so that
	// a run is reproducible from the seed and the sequence of calls.
	Seed uint64
	// Send faults apply to Send, Recv faults to what Receive returns.
	Send, Recv Direction
}

func (d *Direction) validate(name string, send bool) error {
	for _, p := range []struct {
		field string
		v     float64
	}{
		{"Loss", d.Loss}, {"Duplicate", d.Duplicate}, {"Reorder", d.Reorder}, {"Corrupt", d.Corrupt},
		{"EAGAINBurst.P", d.EAGAINBurst.P}, {"OverrunBurst.P", d.OverrunBurst.P},
	} {
		if !(p.v >= 0 && p.v <= 1) { // also rejects NaN
			return fmt.Errorf("fault: Config.%s.%s = %v, want a probability in [0, 1]", name, p.field, p.v)
		}
	}
	switch {
	case d.Delay < 0 || d.Jitter < 0:
		return fmt.Errorf("fault: Config.%s: negative Delay %v or Jitter %v", name, d.Delay, d.Jitter)
	case d.EAGAINBurst.Len < 0 || d.OverrunBurst.Len < 0:
		return fmt.Errorf("fault: Config.%s: negative burst length", name)
	case send && d.OverrunBurst.P != 0:
		return fmt.Errorf("fault: Config.Send.OverrunBurst: overruns happen on the receive side")
	case !send && d.EAGAINBurst.P != 0:
		return fmt.Errorf("fault: Config.Recv.EAGAINBurst: EAGAIN happens on the send side")
	}
	return nil
}

func (c *Config) validate() error {
	if err := c.Send.validate("Send", true); err != nil {
		return err
	}
	return c.Recv.validate("Recv", false)
}

// holdFor is how long a reordered datagram waits for a later one to pass
// it before it is let go anyway.
func (d *Direction) holdFor() time.Duration {
	return 2*(d.Delay+d.Jitter) + 5*time.Millisecond
}
