package fault

import "fmt"

// DirStats counts what a Conn did to one direction.
type DirStats struct {
	// Passed counts datagrams handed on: sends the wrapped transport
	// accepted, datagrams Receive returned (overrun reports excluded).
	Passed uint64
	// Lost counts datagrams dropped by Loss.
	Lost uint64
	// Duplicated counts extra copies made.
	Duplicated uint64
	// Reordered counts datagrams handed on after a later one.
	Reordered uint64
	// Corrupted counts datagrams with flipped bits.
	Corrupted uint64
	// Delayed counts datagrams (copies included) given a non-zero delay.
	Delayed uint64
	// EAGAIN counts sends refused by an EAGAIN burst.
	EAGAIN uint64
	// Overruns counts overrun reports injected by an overrun burst.
	Overruns uint64
	// DroppedInOverrun counts datagrams dropped by overrun bursts.
	DroppedInOverrun uint64
	// Failed counts sends the wrapped transport refused. A refused direct
	// send is returned to the caller; a refused delayed, duplicated or
	// reordered one is a loss nobody is told about.
	Failed uint64
}

// Stats are a Conn's counters, with its seed.
type Stats struct {
	Seed       uint64
	Send, Recv DirStats
}

// String formats s on one line for t.Log and failure messages.
func (s Stats) String() string {
	return fmt.Sprintf("fault seed=%d send{passed=%d lost=%d dup=%d reordered=%d corrupt=%d delayed=%d eagain=%d failed=%d} recv{passed=%d lost=%d dup=%d reordered=%d corrupt=%d delayed=%d overruns=%d overrun-drops=%d}",
		s.Seed,
		s.Send.Passed, s.Send.Lost, s.Send.Duplicated, s.Send.Reordered, s.Send.Corrupted, s.Send.Delayed, s.Send.EAGAIN, s.Send.Failed,
		s.Recv.Passed, s.Recv.Lost, s.Recv.Duplicated, s.Recv.Reordered, s.Recv.Corrupted, s.Recv.Delayed, s.Recv.Overruns, s.Recv.DroppedInOverrun)
}
