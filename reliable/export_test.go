package reliable

// Test-only views of the owner's state, read on the owner goroutine.

import "time"

// rcvCumForTest exposes the receive cumulative ack to tests.
func (s *Session) rcvCumForTest() uint32 {
	var c uint32
	_ = s.ep.runOnOwner(func() { c = uint32(s.rcv.Cum()) })
	return c
}

// rttForTest exposes the current RTO to tests.
func (s *Session) rttForTest() time.Duration {
	var d time.Duration
	_ = s.ep.runOnOwner(func() { d = s.rec.RTT().RTO() })
	return d
}
