package torture

// Invariant 5: a session's counters agree with each other and with what
// the application saw. Received, Delivered and Undelivered are the
// SessionStats fields the issue 9 contract adds.

func (r *runState) checkCounters(sd *sideRun) {
	st := sd.s.Stats()
	sd.mu.Lock()
	abandoned := sd.abandoned
	sd.mu.Unlock()
	if st.Received != st.Delivered+st.Undelivered {
		r.violate(5, "counters/sum", "%v: after Done, Received %d != Delivered %d + Undelivered %d (ended with %v)",
			sd, st.Received, st.Delivered, st.Undelivered, sd.endErr)
	}
	if st.Undelivered != 0 && !abandoned {
		r.violate(5, "counters/undelivered", "%v: %d messages Undelivered, but the application never abandoned the session (reader %v, ended with %v)",
			sd, st.Undelivered, sd.plan.reader.kind, sd.endErr)
	}
	// Delivered counts what was handed over: the messages and requests the
	// application took (it drained the channels) and the replies its
	// Requests returned.
	if took := uint64(sd.rx.tookData + sd.rx.tookReqs + int(sd.okReplies.Load())); st.Delivered != took {
		r.violate(5, "counters/delivered", "%v: Delivered %d, but the application took %d messages, %d requests and %d replies",
			sd, st.Delivered, sd.rx.tookData, sd.rx.tookReqs, sd.okReplies.Load())
	}
	// A Close that returned nil means the peer's engine holds every
	// message sent: its Received covers them, abandoned or not.
	sd.mu.Lock()
	closeNil := len(sd.closeResults) > 0 && sd.closeResults[0] == nil
	sd.mu.Unlock()
	if peer := sd.peer.s.Stats(); closeNil && peer.Received < uint64(sd.confirmed.Load()) {
		r.violate(2, "delivery/close-nil-engine-missing", "%v: Close returned nil, but the peer's engine received %d messages of the %d sent",
			sd, peer.Received, sd.confirmed.Load())
	}
}
