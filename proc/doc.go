// Package proc receives Linux process events from the kernel's proc
// connector (cn_proc, connector id 1:1) and never loses one without
// saying so.
//
// Listen subscribes a NETLINK_CONNECTOR socket and returns a Monitor whose
// Events channel carries fork, exec, uid, gid, sid, ptrace, comm,
// coredump and exit events, decoded from the kernel's struct proc_event
// (include/uapi/linux/cn_proc.h). Exec events also carry the command
// name, which the kernel does not send: the Monitor reads /proc/PID/comm
// the moment the event arrives (Event.Comm, best effort). Other programs that use this connector
// miss events silently: when the socket's queue overflows, the kernel
// drops events and reports ENOBUFS once, and most readers either stop or
// carry on as if nothing happened. A Monitor turns every loss into an
// event of KindLost, in the stream, with counts.
//
// # Subscription
//
// The kernel sends events only to sockets that asked for them with
// PROC_CN_MCAST_LISTEN. Listen sends it and retransmits it with backoff
// (retry.ProbeConfig) until the kernel answers. The answer is a
// PROC_EVENT_NONE whose cn_msg.ack is the request's ack plus one and
// whose payload holds an errno; the kernel overwrites its seq with a
// per-CPU counter and multicasts it to every listener, so Listen matches
// answers by ack and type alone, with a fresh random ack per request, and
// ignores answers to other processes. The kernel ignores requests from
// outside the initial user and pid namespaces without answering; Listen
// detects that case from /proc/self/ns before it sends anything and fails
// at once with a *NamespaceError (matching ErrNotInitialNamespace and
// ErrNoAnswer), and otherwise, after its probe budget, with ErrNoAnswer. Close sends PROC_CN_MCAST_IGNORE, which keeps the kernel's
// count of listeners right.
//
// Config.Events selects event types. By default the Monitor filters
// itself, so that every event still reaches the socket and loss detection
// stays exact; Config.KernelFilter asks the kernel to filter instead
// (Linux 6.6+), at the cost of gap-based loss counts (see Config).
//
// # Loss
//
// The kernel numbers each CPU's events consecutively, its answers to
// subscriptions included, and every event carries its CPU and number. A
// Monitor tracks the last number of each CPU: a gap is exactly the number
// of events that never arrived (Loss.Missed), reported when the CPU's
// next event arrives, with the CPU, the first missing number and the
// timestamps around the gap. An ENOBUFS report is delivered at once
// (Loss.Overruns) so that the application can start a resync before the
// gaps are known, and the Monitor doubles the socket's receive buffer, up
// to Config.MaxReadBuffer. Events that arrived but found the application
// Config.Buffer events behind are dropped and counted (Loss.Dropped).
// Snapshot reads /proc so that an application can rebuild its process
// table after a loss.
//
// # Trust
//
// Events are accepted only from netlink port 0, the kernel, as stamped by
// the kernel on each datagram, on the proc connector's group or unicast,
// and for cb_id 1:1. Any user can send a datagram that looks exactly like
// a proc event (a root process can even multicast it to group 1); such
// datagrams are dropped and counted in Stats.Rejected. This is the check
// whose absence was udev's CVE-2009-1185.
//
// # Channels and lifetime
//
// Events is never closed; Done is closed when the Monitor ends, and Err
// then says why: Close, the context passed to Listen, or a transport
// failure. The Monitor's reader never waits for the application, because
// a socket that is not drained loses events wholesale; memory is bounded
// by Config.Buffer whatever the kernel sends.
package proc
