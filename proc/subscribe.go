package proc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
)

// filterProbeRounds is how many answered LISTEN rounds without an answer
// to the proc_input probe make Listen conclude that the kernel ignores the
// filtered form. One answered round would almost always do: the kernel
// handles both requests synchronously, in order, inside sendto, so the
// probe's answer is queued first. Three rule out the rare overrun that
// drops just that answer.
const filterProbeRounds = 3

func (m *Monitor) sendRequest(op uint32, filtered bool, mask Mask, ack uint32) error {
	var buf [64]byte
	b := appendRequest(buf[:0], m.port, m.reqSeq.Add(1), ack, op, filtered, mask)
	return m.tr.Send(transport.Addr{Port: 0}, b)
}

// subscribe runs the LISTEN exchange described at Listen, and the probe
// and filter requests of Config.KernelFilter.
func (m *Monitor) subscribe(ctx context.Context) error {
	pc := retry.ProbeConfig()
	if m.cfg.Probe != nil {
		pc = *m.cfg.Probe
	}
	sched := retry.NewSchedule(pc)
	filter := m.cfg.KernelFilter && m.cfg.Events.normal() != MaskAll
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	var listenAcks, probeAcks []uint32
	sawProbe := false
	answered := 0 // LISTEN rounds answered without a probe answer
	for {
		if filter {
			// {LISTEN, ALL} in the proc_input form: answered only by a
			// kernel that understands the form. ALL, because the kernel
			// filters its own answer by the socket's mask, and the
			// answer's type (NONE) is in no mask but ALL.
			a := rand.Uint32()
			probeAcks = append(probeAcks, a)
			if err := m.sendListen(true, MaskAll, a); err != nil {
				return err
			}
		}
		a := rand.Uint32()
		listenAcks = append(listenAcks, a)
		if err := m.sendListen(false, 0, a); err != nil {
			return err
		}
		wait, ok := sched.Next(time.Since(start))
		if !ok {
			if answered > 0 {
				return ErrFilterUnsupported
			}
			return ErrNoAnswer
		}
		timer.Reset(wait)
	await:
		for {
			select {
			case r := <-m.acks:
				switch {
				case slices.Contains(probeAcks, r.ack-1):
					if r.err != 0 {
						return &ListenError{Op: "listen (filtered)", Errno: errno(r.err)}
					}
					sawProbe = true
				case slices.Contains(listenAcks, r.ack-1):
					if r.err != 0 {
						return &ListenError{Op: "listen", Errno: errno(r.err)}
					}
					if !filter {
						return nil
					}
					if sawProbe {
						// The socket listens to everything; now narrow it.
						// No answer will come (see Config.KernelFilter).
						return m.sendListen(true, m.cfg.Events.normal(), rand.Uint32())
					}
					if answered++; answered >= filterProbeRounds {
						return ErrFilterUnsupported
					}
					break await // send another round at once
				}
			case <-timer.C:
				break await
			case <-ctx.Done():
				return fmt.Errorf("cnlink/proc: subscribing: %w", context.Cause(ctx))
			case <-m.stop:
				return m.cause
			}
		}
	}
}

// sendListen sends one LISTEN request. A full kernel queue is not an
// error: the retransmission schedule covers it like a lost answer.
func (m *Monitor) sendListen(filtered bool, mask Mask, ack uint32) error {
	err := m.sendRequest(opListen, filtered, mask, ack)
	switch {
	case err == nil:
		m.listened.Store(true)
		return nil
	case errors.Is(err, transport.ErrPeerBusy):
		return nil
	}
	// ErrPeerGone here means a network namespace without the connector's
	// kernel socket (docs/PLATFORM.md §8).
	return fmt.Errorf("cnlink/proc: sending PROC_CN_MCAST_LISTEN: %w", err)
}
