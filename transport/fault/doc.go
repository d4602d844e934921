// Package fault wraps any transport.Transport and injects, from a seed,
// the faults the reliable engine must survive (docs/ARCHITECTURE.md §4,
// invariant 1): loss, duplication, reordering, delay and jitter, bit
// corruption anywhere in the datagram (headers included, so the decoder
// and the protocol checksum are exercised), bursts of EAGAIN on send
// (ErrPeerBusy, nothing sent) and bursts of overrun on receive (an
// Overrun report, then datagrams dropped, as the kernel does to a
// congested socket).
//
// Faults are drawn per datagram from two PCG streams seeded with
// Config.Seed, one per direction: the same seed and the same sequence of
// calls inject the same faults. Delayed and reordered datagrams wait in
// one heap behind one timer, so under testing/synctest, where time only
// moves when every goroutine is blocked, whole runs repeat exactly. Put
// the seed in the test name and log Stats (its String includes the seed)
// on failure.
//
// The receive side reads the wrapped transport only while a Receive is
// waiting with nothing ready, so a receiver that stops reading still
// fills and overflows the queue underneath, and the wrapper adds no
// buffering of its own to hide backpressure. Send never blocks.
//
// Close stops the timer, discards what is still delayed, closes the
// wrapped transport and waits for the receive goroutine and any timer
// callback in progress: nothing outlives it. Wrap and use a Conn inside
// the synctest bubble that runs the test.
package fault
