package proc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// Kind says what an Event reports. The kernel's event types map one to
// one onto the kinds from KindNone to KindExit; KindUnknown and KindLost
// are this package's own.
type Kind uint8

const (
	// KindUnknown is an event this package cannot decode: a type added
	// by a later kernel, or a known type whose body is shorter than its
	// struct. Event.What holds the type and Event.Raw the payload.
	KindUnknown Kind = iota
	// KindNone is PROC_EVENT_NONE: the kernel's answer to a LISTEN or
	// IGNORE request (Event.Ack, Event.Err). A Monitor consumes these and
	// never delivers them.
	KindNone
	// KindFork: a process or thread was created (PROC_EVENT_FORK).
	KindFork
	// KindExec: a process called execve (PROC_EVENT_EXEC).
	KindExec
	// KindUID: a process changed its real or effective user ID.
	KindUID
	// KindGID: a process changed its real or effective group ID.
	KindGID
	// KindSID: a process became a session leader (setsid).
	KindSID
	// KindPtrace: a tracer attached to (Tracer set) or detached from
	// (Tracer zero) a process.
	KindPtrace
	// KindComm: a thread's command name changed (prctl PR_SET_NAME or a
	// write to /proc/<pid>/comm).
	KindComm
	// KindCoredump: a process is about to dump core. The kernel reports
	// it on the fatal signal, whether or not a core file is written.
	KindCoredump
	// KindExit: a thread or process exited.
	KindExit
	// KindLost reports events that did not reach the application; see
	// Event.Loss.
	KindLost
)

var kindNames = [...]string{
	KindUnknown:  "unknown",
	KindNone:     "none",
	KindFork:     "fork",
	KindExec:     "exec",
	KindUID:      "uid",
	KindGID:      "gid",
	KindSID:      "sid",
	KindPtrace:   "ptrace",
	KindComm:     "comm",
	KindCoredump: "coredump",
	KindExit:     "exit",
	KindLost:     "lost",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// The kernel's event type values (enum proc_cn_event in
// include/uapi/linux/cn_proc.h). They are bits so that a set of types
// fits a Mask.
const (
	whatNone        = 0x00000000
	whatFork        = 0x00000001
	whatExec        = 0x00000002
	whatUID         = 0x00000004
	whatGID         = 0x00000040
	whatSID         = 0x00000080
	whatPtrace      = 0x00000100
	whatComm        = 0x00000200
	whatNonzeroExit = 0x20000000
	whatCoredump    = 0x40000000
	whatExit        = 0x80000000
)

// What returns the kernel's PROC_EVENT_* value of kind k, and false for
// KindUnknown and KindLost, which have none.
func (k Kind) What() (uint32, bool) {
	switch k {
	case KindNone:
		return whatNone, true
	case KindFork:
		return whatFork, true
	case KindExec:
		return whatExec, true
	case KindUID:
		return whatUID, true
	case KindGID:
		return whatGID, true
	case KindSID:
		return whatSID, true
	case KindPtrace:
		return whatPtrace, true
	case KindComm:
		return whatComm, true
	case KindCoredump:
		return whatCoredump, true
	case KindExit:
		return whatExit, true
	}
	return 0, false
}

// kindOf maps a PROC_EVENT_* value to its Kind and the number of
// event_data bytes that kind's struct occupies.
func kindOf(what uint32) (Kind, int) {
	switch what {
	case whatNone:
		return KindNone, 4 // struct { __u32 err; } ack
	case whatFork:
		return KindFork, 16 // parent pid, tgid, child pid, tgid
	case whatExec:
		return KindExec, 8
	case whatUID:
		return KindUID, 16 // pid, tgid, real, effective
	case whatGID:
		return KindGID, 16
	case whatSID:
		return KindSID, 8
	case whatPtrace:
		return KindPtrace, 16 // pid, tgid, tracer pid, tgid
	case whatComm:
		return KindComm, 8 + CommLen
	case whatCoredump:
		return KindCoredump, 16 // pid, tgid, parent pid, tgid
	case whatExit:
		return KindExit, 24 // pid, tgid, code, signal, parent pid, tgid
	}
	return KindUnknown, 0
}

// Mask selects event types, with the kernel's PROC_EVENT_* bits. The zero
// Mask means MaskAll, as it does for the kernel.
type Mask uint32

// Mask bits. MaskNonzeroExit is a modifier, not an event: with it, exit
// events are selected only when the exit status is non-zero, unless
// MaskExit is set as well (the kernel's cn_filter rule).
const (
	MaskFork        Mask = whatFork
	MaskExec        Mask = whatExec
	MaskUID         Mask = whatUID
	MaskGID         Mask = whatGID
	MaskSID         Mask = whatSID
	MaskPtrace      Mask = whatPtrace
	MaskComm        Mask = whatComm
	MaskNonzeroExit Mask = whatNonzeroExit
	MaskCoredump    Mask = whatCoredump
	MaskExit        Mask = whatExit
	// MaskAll is PROC_EVENT_ALL.
	MaskAll = MaskFork | MaskExec | MaskUID | MaskGID | MaskSID | MaskPtrace |
		MaskComm | MaskNonzeroExit | MaskCoredump | MaskExit
)

// normal returns m as the kernel stores it: unknown bits cleared, and no
// bits at all meaning every type (valid_event and the NONE-means-ALL rule
// of cn_proc_mcast_ctl).
func (m Mask) normal() Mask {
	m &= MaskAll
	if m == 0 {
		return MaskAll
	}
	return m
}

// Allows reports whether an event with type what (and, for exits, wait
// status exitCode) passes m, by the rule the kernel's cn_filter applies
// to a filtered listener: everything passes MaskAll; a non-zero exit
// passes MaskNonzeroExit; otherwise the type's bit must be set.
func (m Mask) Allows(what, exitCode uint32) bool {
	m = m.normal()
	if m == MaskAll {
		return true
	}
	if m&MaskNonzeroExit != 0 && what == whatExit && exitCode != 0 {
		return true
	}
	return uint32(m)&what != 0
}

// CommLen is the size of a command name in a comm event (TASK_COMM_LEN).
const CommLen = 16

// Sizes of struct proc_event: the header (what, cpu, timestamp_ns) and the
// whole struct as 6.x kernels send it (the header and a 24-byte union).
const (
	eventHeaderLen = 16
	// EventLen is sizeof(struct proc_event) on Linux 6.x: 40 bytes.
	EventLen = eventHeaderLen + 24
)

// ErrShortEvent: a payload too short to hold proc_event's header (type,
// CPU and timestamp). Nothing about such an event can be trusted.
var ErrShortEvent = errors.New("cnlink/proc: payload shorter than the proc_event header")

// Event is one process event, or a report of lost events (KindLost).
//
// Which fields are set depends on Kind; the rest are zero:
//
//	Fork      PID/TID of the child, ParentPID/ParentTID
//	Exec      PID/TID, Comm (read from /proc by a Monitor; see Comm)
//	UID, GID  PID/TID, RealID, EffectiveID
//	SID       PID/TID
//	Ptrace    PID/TID, TracerPID/TracerTID (zero on detach)
//	Comm      PID/TID, Comm
//	Coredump  PID/TID, ParentPID/ParentTID
//	Exit      PID/TID, ExitCode, ExitSignal, ParentPID/ParentTID
//	None      Ack, Err
//	Unknown   What, Raw
//	Lost      Loss
//
// PID is the process ID (the kernel's tgid) and TID the thread ID (the
// kernel's pid); they are equal for a process's main thread. For a thread
// the parent is the parent of its process, not the thread that created
// it, because the kernel reports task->real_parent. Events of threads and
// of processes share one stream: an application that tracks processes
// keeps the events with PID == TID.
type Event struct {
	Kind Kind
	// What is the kernel's PROC_EVENT_* type, as received.
	What uint32
	// CPU is the CPU that generated the event and Seq that CPU's event
	// counter (cn_msg.seq): consecutive events of one CPU have
	// consecutive Seq, which is how a Monitor detects loss.
	CPU uint32
	Seq uint32
	// Timestamp is when the kernel built the event, in nanoseconds of
	// CLOCK_MONOTONIC (time since boot, not counting suspend).
	Timestamp uint64

	PID, TID             int
	ParentPID, ParentTID int
	TracerPID, TracerTID int
	// RealID and EffectiveID are the new user IDs (KindUID) or group IDs
	// (KindGID).
	RealID, EffectiveID uint32
	// ExitCode is the wait status (see WaitStatus) and ExitSignal the
	// signal sent to the parent (SIGCHLD for a process, -1 as uint32 for
	// a thread).
	ExitCode, ExitSignal uint32
	// Comm is a command name, NUL padded (see CommString). For KindComm
	// it is the new name, from the kernel's event. For KindExec the
	// kernel sends no name: a Monitor on a kernel socket reads
	// /proc/PID/comm as soon as its reader has decoded the event, before
	// it queues the event, so that short-lived processes are caught. This
	// is best effort: Comm is empty when the process was already reaped
	// (or /proc is not mounted, or Config.NoExecComm is set), and in the
	// rare case that the process exec'd again, or exited and its PID was
	// reused, before the read, it is the newer name. Decode never sets it
	// for KindExec.
	Comm [CommLen]byte

	// Ack is cn_msg.ack; Err is the errno in the kernel's answer to a
	// LISTEN or IGNORE request (KindNone).
	Ack, Err uint32

	// Raw is a copy of the payload of a KindUnknown event.
	Raw []byte

	// Loss is set for KindLost.
	Loss Loss
}

// CommString returns Comm up to its first NUL.
func (e *Event) CommString() string {
	c := e.Comm[:]
	if i := bytes.IndexByte(c, 0); i >= 0 {
		c = c[:i]
	}
	return string(c)
}

// WaitStatus interprets ExitCode (the kernel's task->exit_code) as the
// status wait(2) would report.
func (e *Event) WaitStatus() syscall.WaitStatus { return syscall.WaitStatus(e.ExitCode) }

func (e Event) String() string {
	switch e.Kind {
	case KindFork:
		return fmt.Sprintf("fork parent=%d/%d child=%d/%d", e.ParentPID, e.ParentTID, e.PID, e.TID)
	case KindExec:
		if e.Comm[0] != 0 {
			return fmt.Sprintf("exec pid=%d/%d comm=%q", e.PID, e.TID, e.CommString())
		}
		return fmt.Sprintf("exec pid=%d/%d", e.PID, e.TID)
	case KindUID, KindGID:
		return fmt.Sprintf("%v pid=%d/%d real=%d effective=%d", e.Kind, e.PID, e.TID, e.RealID, e.EffectiveID)
	case KindSID:
		return fmt.Sprintf("sid pid=%d/%d", e.PID, e.TID)
	case KindPtrace:
		return fmt.Sprintf("ptrace pid=%d/%d tracer=%d/%d", e.PID, e.TID, e.TracerPID, e.TracerTID)
	case KindComm:
		return fmt.Sprintf("comm pid=%d/%d comm=%q", e.PID, e.TID, e.CommString())
	case KindCoredump:
		return fmt.Sprintf("coredump pid=%d/%d parent=%d/%d", e.PID, e.TID, e.ParentPID, e.ParentTID)
	case KindExit:
		return fmt.Sprintf("exit pid=%d/%d code=%#x signal=%d parent=%d/%d", e.PID, e.TID, e.ExitCode, int32(e.ExitSignal), e.ParentPID, e.ParentTID)
	case KindNone:
		return fmt.Sprintf("none ack=%d err=%d", e.Ack, e.Err)
	case KindLost:
		return "lost " + e.Loss.String()
	}
	return fmt.Sprintf("unknown what=%#x len=%d", e.What, len(e.Raw))
}

var ne = binary.NativeEndian

// Decode decodes a struct proc_event from b, the payload of a cn_msg from
// the proc connector. It never panics and never reads out of bounds:
//
//   - fewer than 16 bytes (no complete header): ErrShortEvent;
//   - an unknown type, or a known type whose body is shorter than its
//     struct: KindUnknown with What, CPU, Timestamp and a copy of b in Raw,
//     rather than fields silently zero-filled;
//   - bytes beyond the struct (a later kernel's larger union): ignored.
//
// The timestamp is a u64 at offset 8 of the payload, which sits at an
// offset that is 4 modulo 8 in the datagram; it is read with
// encoding/binary, never through a pointer cast. Decode sets neither Seq
// nor Ack, which live in the cn_msg header (see DecodeFrame). It allocates
// only for KindUnknown.
func Decode(b []byte) (Event, error) {
	var e Event
	if len(b) < eventHeaderLen {
		return e, ErrShortEvent
	}
	e.What = ne.Uint32(b[0:])
	e.CPU = ne.Uint32(b[4:])
	e.Timestamp = ne.Uint64(b[8:])
	kind, need := kindOf(e.What)
	d := b[eventHeaderLen:]
	if kind == KindUnknown || len(d) < need {
		e.Kind = KindUnknown
		e.Raw = bytes.Clone(b)
		return e, nil
	}
	e.Kind = kind
	i32 := func(off int) int { return int(int32(ne.Uint32(d[off:]))) }
	switch kind {
	case KindNone:
		e.Err = ne.Uint32(d[0:])
	case KindFork:
		e.ParentTID, e.ParentPID = i32(0), i32(4)
		e.TID, e.PID = i32(8), i32(12)
	case KindExec, KindSID:
		e.TID, e.PID = i32(0), i32(4)
	case KindUID, KindGID:
		e.TID, e.PID = i32(0), i32(4)
		e.RealID, e.EffectiveID = ne.Uint32(d[8:]), ne.Uint32(d[12:])
	case KindPtrace:
		e.TID, e.PID = i32(0), i32(4)
		e.TracerTID, e.TracerPID = i32(8), i32(12)
	case KindComm:
		e.TID, e.PID = i32(0), i32(4)
		copy(e.Comm[:], d[8:8+CommLen])
	case KindCoredump:
		e.TID, e.PID = i32(0), i32(4)
		e.ParentTID, e.ParentPID = i32(8), i32(12)
	case KindExit:
		e.TID, e.PID = i32(0), i32(4)
		e.ExitCode, e.ExitSignal = ne.Uint32(d[8:]), ne.Uint32(d[12:])
		e.ParentTID, e.ParentPID = i32(16), i32(20)
	}
	return e, nil
}

// AppendEvent appends e encoded as a 40-byte struct proc_event, the
// payload the kernel sends, to dst. It is the inverse of Decode for the
// kernel's kinds; a KindUnknown event is appended as its Raw bytes, and
// KindLost, which never travels on the wire, as nothing. Tests and
// simulators use it to play the kernel.
func AppendEvent(dst []byte, e *Event) []byte {
	if e.Kind == KindUnknown {
		return append(dst, e.Raw...)
	}
	what, ok := e.Kind.What()
	if !ok {
		return dst
	}
	off := len(dst)
	dst = append(dst, make([]byte, EventLen)...)
	b := dst[off:]
	ne.PutUint32(b[0:], what)
	ne.PutUint32(b[4:], e.CPU)
	ne.PutUint64(b[8:], e.Timestamp)
	d := b[eventHeaderLen:]
	u32 := func(off int, v int) { ne.PutUint32(d[off:], uint32(int32(v))) }
	switch e.Kind {
	case KindNone:
		ne.PutUint32(d[0:], e.Err)
	case KindFork:
		u32(0, e.ParentTID)
		u32(4, e.ParentPID)
		u32(8, e.TID)
		u32(12, e.PID)
	case KindExec, KindSID:
		u32(0, e.TID)
		u32(4, e.PID)
	case KindUID, KindGID:
		u32(0, e.TID)
		u32(4, e.PID)
		ne.PutUint32(d[8:], e.RealID)
		ne.PutUint32(d[12:], e.EffectiveID)
	case KindPtrace:
		u32(0, e.TID)
		u32(4, e.PID)
		u32(8, e.TracerTID)
		u32(12, e.TracerPID)
	case KindComm:
		u32(0, e.TID)
		u32(4, e.PID)
		copy(d[8:], e.Comm[:])
	case KindCoredump:
		u32(0, e.TID)
		u32(4, e.PID)
		u32(8, e.ParentTID)
		u32(12, e.ParentPID)
	case KindExit:
		u32(0, e.TID)
		u32(4, e.PID)
		ne.PutUint32(d[8:], e.ExitCode)
		ne.PutUint32(d[12:], e.ExitSignal)
		u32(16, e.ParentTID)
		u32(20, e.ParentPID)
	}
	return dst
}
