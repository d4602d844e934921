package proc

import (
	"fmt"

	"github.com/cnlink/cnlink/transport"
)

// receiveBufLen is the buffer the reader receives into. cn_proc datagrams
// are 76 bytes; anything that does not fit is not from cn_proc.
const receiveBufLen = 16 << 10

// read is the reader goroutine.
func (m *Monitor) read() {
	defer m.exit()
	buf := make([]byte, receiveBufLen)
	var sc transport.Scanner
	for {
		p, err := m.tr.Receive(buf)
		if err != nil {
			// After our own shutdown this is ErrClosed, and shutdown has
			// already recorded the cause; otherwise it ends the Monitor.
			m.shutdown(fmt.Errorf("cnlink/proc: %w", err))
			return
		}
		if p.Overrun {
			m.st.overruns.Add(1)
			m.push(Event{Kind: KindLost, Loss: Loss{Overruns: 1, CPU: AnyCPU}})
			m.grow()
			continue
		}
		// Trust (docs/PLATFORM.md §5): the sender's port is stamped by the
		// kernel; proc events come from port 0 on Group. Anything else
		// imitates the kernel.
		if p.From != 0 || (p.Group != Group && p.Group != 0) {
			m.st.rejected.Add(1)
			continue
		}
		if p.Truncated {
			m.st.malformed.Add(1)
			continue
		}
		sc.Reset(p.Data)
		for sc.Next() {
			m.handle(sc.Frame())
		}
		if sc.Err() != nil {
			m.st.malformed.Add(1)
		}
	}
}

// handle processes one message from the kernel.
func (m *Monitor) handle(f *transport.Frame) {
	if f.ID != procID {
		m.st.rejected.Add(1)
		return
	}
	if f.NlType != transport.NlmsgDone {
		m.st.malformed.Add(1)
		return
	}
	ev, err := Decode(f.Payload)
	if err != nil {
		m.st.malformed.Add(1)
		return
	}
	ev.Seq, ev.Ack = f.Seq, f.Ack
	m.st.received.Add(1)
	if m.gaps {
		if missed, first, after := m.seq.observe(ev.CPU, ev.Seq, ev.Timestamp); missed > 0 {
			m.st.missed.Add(missed)
			m.push(Event{Kind: KindLost, Loss: Loss{
				Missed: missed, CPU: ev.CPU, FirstSeq: first, After: after, Before: ev.Timestamp,
			}})
		}
	}
	if ev.Kind == KindNone {
		// Answers to subscription requests, ours or another process's.
		select {
		case m.acks <- ackMsg{ack: ev.Ack, err: ev.Err}:
		default: // nobody is subscribing
		}
		return
	}
	if !m.cfg.Events.Allows(ev.What, ev.ExitCode) {
		m.st.filtered.Add(1)
		return
	}
	if ev.Kind == KindUnknown {
		m.st.unknown.Add(1)
	}
	if ev.Kind == KindExec && m.procRoot != "" {
		// At once, before anything else can wait: a short-lived process
		// is gone (reaped) within microseconds of its exec.
		readComm(m.procRoot, ev.PID, &ev.Comm)
	}
	m.push(ev)
}

// push puts ev into the event channel without blocking. When the channel
// is full, or a loss report is already waiting for room, ev joins the
// pending loss report (a loss report merges into it, any other event is
// dropped and counted) and the flusher is told.
func (m *Monitor) push(ev Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending.IsZero() {
		select {
		case m.events <- ev:
			m.st.delivered.Add(1)
			return
		default:
		}
	}
	if ev.Kind == KindLost {
		m.pending.add(ev.Loss)
	} else {
		m.pending.add(Loss{Dropped: 1, CPU: AnyCPU})
		m.st.dropped.Add(1)
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// grow doubles the receive buffer after an overrun, up to the cap.
func (m *Monitor) grow() {
	rb, ok := m.tr.(readBufferer)
	if !ok || m.maxRead <= 0 {
		return
	}
	cur := int(m.rcvbuf.Load())
	if cur >= m.maxRead {
		return
	}
	next := min(max(2*cur, 64<<10), m.maxRead)
	if err := rb.SetReadBuffer(next); err != nil {
		return // keep the buffer we have; the loss is reported anyway
	}
	m.rcvbuf.Store(int64(next))
}
