package torture

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
)

// tap sits between an endpoint and its transport (above the fault
// injector, so it sees what the engine sends, not what the path does to
// it) and watches for sessions that go on sending after they failed
// (invariant 4): it records when each channel last carried a DATA or
// REPLY frame from this endpoint, and every such frame sent to a port
// after a send to that port came back ErrPeerGone (no socket holds it:
// every session to it is over).
type tap struct {
	transport.Transport

	mu        sync.Mutex
	lastData  map[transport.CbID]time.Time
	goneAt    map[uint32]time.Time
	afterGone map[transport.CbID][]string // what was sent, and how long after
	refused   map[uint32]refusal          // per port: the last datagram refused with EAGAIN
}

// refusal is a datagram the peer's full queue refused: the engine keeps
// it and offers it again later, maybe with more frames appended. Its
// frames date from the first offer, not from the retry that succeeds.
type refusal struct {
	b  []byte
	at time.Time
}

func newTap(tr transport.Transport) *tap {
	return &tap{Transport: tr, lastData: make(map[transport.CbID]time.Time),
		goneAt: make(map[uint32]time.Time), afterGone: make(map[transport.CbID][]string),
		refused: make(map[uint32]refusal)}
}

func (t *tap) Send(dst transport.Addr, b []byte) error {
	err := t.Transport.Send(dst, b)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	gone, wasGone := t.goneAt[dst.Port]
	// Frames in the part of b that an earlier offer already held were
	// made then.
	old := t.refused[dst.Port]
	if len(old.b) > len(b) || string(b[:len(old.b)]) != string(old.b) {
		old = refusal{}
	}
	busy := errors.Is(err, transport.ErrPeerBusy)
	if busy && old.b == nil {
		t.refused[dst.Port] = refusal{b: append([]byte(nil), b...), at: now}
	} else if !busy {
		delete(t.refused, dst.Port)
	}
	// Only the frame headers are read: no CRC check, b is the caller's.
	sc := transport.NewScanner(b)
	for start := 0; sc.Next(); start = sc.Offset() {
		f := sc.Frame()
		h, herr := wire.ParseHeader(f.Payload)
		if herr != nil || h.Type != wire.TypeData && h.Type != wire.TypeReply {
			continue
		}
		if err == nil {
			at := now
			if start < len(old.b) {
				at = old.at
			}
			if at.After(t.lastData[f.ID]) {
				t.lastData[f.ID] = at
			}
		}
		if wasGone {
			t.afterGone[f.ID] = append(t.afterGone[f.ID], fmt.Sprintf("type %d flags %#x %v after port %d was gone", h.Type, h.Flags, now.Sub(gone).Round(time.Microsecond), dst.Port))
		}
	}
	if errors.Is(err, transport.ErrPeerGone) && !wasGone {
		t.goneAt[dst.Port] = now
	}
	return err
}

// checkTap: a side's endpoint sends no DATA or REPLY frame on its
// channel once the side has ended (beyond the owner turn that ended it,
// whose datagrams go out at the turn's end), and none to a gone port.
func (r *runState) checkTap(sd *sideRun) {
	t := sd.ep.tap
	ch := sd.sess.plan.ch
	t.mu.Lock()
	last := t.lastData[ch]
	after := t.afterGone[ch]
	t.mu.Unlock()
	// A turn of the owner is microseconds, but on a loaded 2-core machine
	// running 16 lanes at GOMAXPROCS=1 the owner can wait tens of ms for
	// the CPU between ending a session and flushing the datagrams built
	// before (one run in 15,597 showed 52ms). An engine that goes on
	// sending is caught anyway: by the counters after Done (new messages,
	// retransmissions) and by the gone-port check below.
	turn := 200 * time.Millisecond
	if raceEnabled {
		turn = 500 * time.Millisecond
	}
	if d := last.Sub(sd.doneAt); !last.IsZero() && d > turn {
		r.violate(4, "end/still-sending", "%v: sent a DATA or REPLY frame %v after its session ended (%v)", sd, d.Round(time.Millisecond), sd.endErr)
	}
	if len(after) > 0 {
		r.violate(4, "end/sent-to-gone-port", "%v: %d DATA or REPLY frames sent after a send to the peer's port failed with ErrPeerGone: %v",
			sd, len(after), after[:min(len(after), 3)])
	}
}

// checkSilentAfterEnd: a session that has ended sends no more data
// (invariant 4: no session goes on sending after it failed).
func (r *runState) checkSilentAfterEnd(sd *sideRun) {
	then, now := sd.statsAfterDone, sd.s.Stats()
	if now.Sent != then.Sent || now.Retransmits != then.Retransmits {
		r.violate(4, "end/still-sending", "%v: after it ended (%v) it sent %d new messages and %d retransmissions",
			sd, sd.endErr, now.Sent-then.Sent, now.Retransmits-then.Retransmits)
	}
}

// lingerCheck: once every session has ended and time-wait is over, the
// endpoints must fall silent.
func (r *runState) lingerCheck() {
	if !r.plan.linger {
		return
	}
	var ka time.Duration
	for _, e := range r.plan.eps {
		ka = max(ka, e.cfg.KeepAlive)
	}
	time.Sleep(2*ka + 50*time.Millisecond) // time-wait lasts 2 x KeepAlive
	before := make([]uint64, len(r.eps))
	for i, e := range r.eps {
		before[i] = e.ep.Stats().DatagramsSent
	}
	time.Sleep(ka + 50*time.Millisecond) // anything alive would probe in this time
	for i, e := range r.eps {
		if i == r.plan.epClose {
			continue
		}
		if after := e.ep.Stats().DatagramsSent; after != before[i] {
			r.violate(4, "end/endpoint-still-sending", "ep%d: sent %d datagrams in %v after every session had ended and time-wait was over",
				i, after-before[i], ka+50*time.Millisecond)
		}
	}
}
