package torture

import (
	"errors"

	"github.com/cnlink/cnlink/reliable"
)

// The invariants checked once a run is over (everything has ended and the
// channels are drained). Invariant 5, the counters, is in counters_test.go;
// 7, leaks, in lanes_test.go; the in-order byte checks of 1 and 6 run live in
// reader_test.go and sender_test.go.

func (r *runState) check() {
	for _, sr := range r.sessions {
		if sr.side[0] == nil {
			continue // never opened
		}
		for _, sd := range sr.side {
			if !ended(sd) {
				continue // the watchdogs reported it
			}
			r.checkEnd(sd)
			if !sr.tainted.Load() {
				r.checkCounters(sd)
				r.checkSilentAfterEnd(sd)
				r.checkTap(sd)
			}
		}
		if !ended(sr.side[0]) || !ended(sr.side[1]) || sr.tainted.Load() {
			continue
		}
		for _, sd := range sr.side {
			r.checkDirection(sd.peer, sd)
			r.checkRequestsSeen(sd.peer, sd)
		}
	}
}

// checkDirection checks the stream snd sent as rcv's application saw it.
func (r *runState) checkDirection(snd, rcv *sideRun) {
	rx := &rcv.rx
	if rx.dataBad || rx.reqBad {
		return // the first wrong message was reported; counts mean nothing now
	}
	got := rx.data + rx.reqs
	// Invariant 1: what was taken is a prefix of the stream. Plain
	// messages and requests travel on two channels, each checked in
	// order; together they must cover positions 0..got-1 with no hole.
	prefix := len(snd.plan.isReq)
	if rx.data < len(rx.dataPos) {
		prefix = rx.dataPos[rx.data]
	}
	if rx.reqs < len(rx.reqPos) {
		prefix = min(prefix, rx.reqPos[rx.reqs])
	}
	if got != prefix {
		r.violate(1, "order/gap", "%v: took %d plain messages and %d requests of %v's stream, but position %d is missing: a hole between the channels; %s",
			rcv, rx.data, rx.reqs, snd, prefix, rcv.localState())
	}
	confirmed := int(snd.confirmed.Load())
	attempted := confirmed
	if snd.maybe.Load() {
		attempted++
	}
	if got > attempted {
		r.violate(1, "order/never-sent", "%v: took %d messages of %v's stream, whose calls returned nil for only %d (%d at most were queued)",
			rcv, got, snd, confirmed, attempted)
	}

	rcv.mu.Lock()
	abandoned := rcv.abandoned
	rcv.mu.Unlock()
	snd.mu.Lock()
	closeNil := len(snd.closeResults) > 0 && snd.closeResults[0] == nil
	closeAt := snd.closeAtConfirmed
	snd.mu.Unlock()
	if abandoned {
		return // the contract lets an abandoned side drop what it did not read
	}
	// Invariant 3 (any end): what the sender knew acknowledged reaches the
	// application.
	if floor := int(snd.floor.Load()); got < floor {
		r.violate(3, "delivery/acked-lost", "%v: got %d of %v's messages, but a Flush or Request had confirmed the first %d reached its engine; session ended with %v, peer with %v",
			rcv, got, snd, floor, rcv.endErr, snd.endErr)
	}
	// Invariant 2: a Close that returned nil means everything arrives,
	// and the receiver's session ends with ErrPeerClosed.
	if closeNil {
		if got < confirmed {
			r.violate(2, "delivery/close-nil-missing", "%v: %v's Close returned nil but only %d of its %d sent messages reached the application (reader %v); session ended with %v",
				rcv, snd, got, confirmed, rcv.plan.reader.kind, rcv.endErr)
		}
		if !errors.Is(rcv.endErr, reliable.ErrPeerClosed) {
			r.violate(2, "end/close-nil-kind", "%v: %v's Close returned nil but this side ended with %v, not ErrPeerClosed", rcv, snd, rcv.endErr)
		}
	}
	// Invariant 3: ErrPeerClosed means the peer closed, and everything it
	// queued before its Close reached the application.
	if errors.Is(rcv.endErr, reliable.ErrPeerClosed) {
		switch {
		case closeAt < 0:
			r.violate(3, "end/peer-closed-without-close", "%v: ended with ErrPeerClosed but %v never called Close", rcv, snd)
		case got < int(closeAt):
			r.violate(3, "delivery/fin-missing", "%v: ended with ErrPeerClosed after %d of the %d messages %v had sent before its Close (reader %v; peer's Close returned %v)",
				rcv, got, closeAt, snd, rcv.plan.reader.kind, closeResult(snd))
		}
	}
}

// Invariant 6: a Request that returned its reply was seen by the peer's
// handler, abandoned or not.
func (r *runState) checkRequestsSeen(snd, rcv *sideRun) {
	if last := snd.lastOKReq.Load(); last >= 0 && !rcv.rx.reqBad {
		if rcv.rx.reqs == 0 || rcv.rx.reqPos[rcv.rx.reqs-1] < int(last) {
			r.violate(6, "request/reply-without-handler", "%v: Request %d returned a reply, but %v's handler saw only %d requests",
				snd, last, rcv, rcv.rx.reqs)
		}
	}
}

func closeResult(sd *sideRun) any {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if len(sd.closeResults) == 0 {
		return "(pending)"
	}
	return sd.closeResults[0]
}

func ended(sd *sideRun) bool {
	select {
	case <-sd.done:
		return true
	default:
		return false
	}
}
