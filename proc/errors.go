package proc

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors; errors returned by this package match one of them with
// errors.Is.
var (
	// ErrClosed: the Monitor was closed by Close.
	ErrClosed = errors.New("cnlink/proc: monitor closed")

	// ErrNoAnswer: the kernel never answered the subscription request,
	// however often it was sent. cn_proc silently ignores requests from
	// outside the initial user and pid namespaces (containers), and a
	// kernel without CONFIG_PROC_EVENTS has nobody listening on 1:1.
	// Listen detects the namespace case up front and fails at once with
	// a *NamespaceError, which matches this error too.
	ErrNoAnswer = errors.New("cnlink/proc: no answer from the proc connector to PROC_CN_MCAST_LISTEN " +
		"(kernel without CONFIG_PROC_EVENTS, or process outside the initial user and pid namespaces?)")

	// ErrNotInitialNamespace: the process is outside the initial user or
	// pid namespace, where the kernel ignores subscriptions (see
	// NamespaceError). Errors matching it also match ErrNoAnswer.
	ErrNotInitialNamespace = errors.New("cnlink/proc: not in the initial user and pid namespaces")

	// ErrFilterUnsupported: Config.KernelFilter was set but the kernel
	// ignores the filtered subscription (struct proc_input), which
	// appeared in Linux 6.6. Subscribe without KernelFilter: the Monitor
	// then filters by Config.Events itself.
	ErrFilterUnsupported = errors.New("cnlink/proc: the kernel does not support filtered proc connector " +
		"subscriptions (struct proc_input, Linux 6.6+); subscribe without KernelFilter")

	// ErrRefused: the kernel answered the subscription with an error.
	// The *ListenError that wraps it carries the errno.
	ErrRefused = errors.New("cnlink/proc: subscription refused by the kernel")
)

// ListenError is the kernel's refusal of a subscription request: the errno
// it put in its answer (proc_event.event_data.ack.err). It matches
// ErrRefused and the errno with errors.Is.
type ListenError struct {
	Op    string // "listen" or "listen (filtered)"
	Errno syscall.Errno
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("cnlink/proc: %s: kernel answered errno %d (%v)", e.Op, uint32(e.Errno), e.Errno)
}

// Unwrap returns ErrRefused and the errno.
func (e *ListenError) Unwrap() []error { return []error{ErrRefused, e.Errno} }

// errno converts the kernel's unsigned errno field.
func errno(v uint32) syscall.Errno { return syscall.Errno(v) }
