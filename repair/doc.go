// Package repair holds the state of reliable multicast on a connector
// group: the publisher's history of recent messages, its registry of
// subscribers (their positions, flow control, timeouts) and the plan of
// which repairs go by multicast and which by unicast; and the subscriber's
// gap tracking (reorder buffer, NAK schedule, unrepairable loss).
//
// Like window and retry it does no I/O, reads no clock and starts no
// goroutine: time is an argument (a time.Duration since an origin the
// caller picks), and package multicast drives it from one owner goroutine
// per publisher or subscriber. docs/PROTOCOL.md §16 is the protocol these
// rules implement.
//
// Message sequence numbers (MSNs) are window.Seq: u32 with serial
// arithmetic, so a stream may run across 2^32.
package repair
