package proc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/cnlink/cnlink/transport"
)

// Monitor receives proc connector events. Create it with Listen.
//
// Two goroutines belong to it. The reader receives datagrams, checks
// where they come from, decodes them, accounts for loss and puts events
// into the event channel without ever blocking on the application. The
// flusher delivers the pending loss report when the channel was full,
// as soon as the application makes room, so that a loss report waits for
// the application and never for the next event. Subscription runs on the
// goroutine that called Listen.
type Monitor struct {
	cfg     Config
	tr      transport.Transport
	port    uint32
	gaps    bool // per-CPU sequence gaps mean loss (no kernel filter)
	maxRead int  // growth cap, <= 0 for none
	// procRoot is where exec events' command names are read
	// (procRoot/PID/comm): "/proc" on a kernel socket, "" for none (a
	// memnet kernel's PIDs are not this machine's).
	procRoot string

	events chan Event
	acks   chan ackMsg   // reader to subscriber: every PROC_EVENT_NONE
	kick   chan struct{} // reader to flusher, capacity 1
	stop   chan struct{} // closed by shutdown
	done   chan struct{} // closed when both goroutines have returned
	live   atomic.Int32  // goroutines not yet returned

	mu      sync.Mutex // guards pending
	pending Loss       // loss not yet in the channel; events wait behind it

	seq      seqTracker   // reader only
	rcvbuf   atomic.Int64 // written by the reader
	reqSeq   atomic.Uint32
	listened atomic.Bool // a LISTEN was sent: send IGNORE at the end

	stopOnce  sync.Once
	stopAfter atomic.Pointer[func() bool] // stops the context.AfterFunc
	cause     error                       // why it ended; written once before stop closes
	closeErr  error

	st struct {
		received, delivered, filtered atomic.Uint64
		missed, overruns, dropped     atomic.Uint64
		rejected, malformed, unknown  atomic.Uint64
	}
}

type ackMsg struct{ ack, err uint32 }

// readBufferer is the optional part of a transport that lets the Monitor
// grow its receive buffer after overruns.
type readBufferer interface {
	SetReadBuffer(bytes int) error
	ReadBuffer() (int, error)
}

// Listen subscribes to the proc connector and returns a running Monitor.
//
// It joins the socket to Group, then sends PROC_CN_MCAST_LISTEN to the
// kernel (port 0, cb_id 1:1) and retransmits it, each time with a fresh
// random ack, on the Config.Probe schedule until the kernel's answer
// arrives: a PROC_EVENT_NONE whose cn_msg.ack is one of those acks plus
// one. The kernel replaces the seq of its answer with its per-CPU event
// counter and multicasts the answer to every listener, so the ack and the
// event type are all there is to match, and answers to other processes'
// requests are ignored. A non-zero errno in the answer fails Listen with a
// *ListenError. On a kernel socket (no Config.Transport, or a
// *transport.Conn) Listen first reads /proc/self/ns: a process outside the
// initial user or pid namespace, whom the kernel would never answer, fails
// at once with a *NamespaceError.
//
// ctx bounds both the subscription and the Monitor's life: when it is
// done, the Monitor ends as if Close had been called, and Err reports
// ctx's error. Use context.Background() and Close for a Monitor that
// outlives a request.
func Listen(ctx context.Context, cfg Config) (*Monitor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tr := cfg.Transport
	if _, real := tr.(*transport.Conn); tr == nil || real {
		// The real kernel: it ignores requests from other namespaces
		// without a word, so find out before asking.
		if err := checkNamespaces("/proc"); err != nil {
			if tr != nil {
				_ = tr.Close()
			}
			return nil, err
		}
	}
	if tr == nil {
		c, err := transport.Open(transport.Config{
			Groups:        []uint32{Group},
			ReadBuffer:    cfg.ReadBuffer,
			NoCredentials: true, // trust rests on the kernel-stamped port
		})
		if err != nil {
			return nil, fmt.Errorf("cnlink/proc: %w", err)
		}
		tr = c
	} else {
		if err := tr.JoinGroup(Group); err != nil {
			_ = tr.Close()
			return nil, fmt.Errorf("cnlink/proc: %w", err)
		}
		if rb, ok := tr.(readBufferer); ok && cfg.ReadBuffer > 0 {
			if err := rb.SetReadBuffer(cfg.ReadBuffer); err != nil {
				_ = tr.Close()
				return nil, fmt.Errorf("cnlink/proc: %w", err)
			}
		}
	}
	m := newMonitor(cfg, tr)
	// The callback may run before AfterFunc returns (a context cancelled
	// meanwhile), hence the atomic: shutdown then finds nothing to stop,
	// and nothing needs stopping.
	stop := context.AfterFunc(ctx, func() {
		m.shutdown(fmt.Errorf("cnlink/proc: %w", context.Cause(ctx)))
	})
	m.stopAfter.Store(&stop)
	go m.read()
	go m.flush()
	if err := m.subscribe(ctx); err != nil {
		m.shutdown(err)
		<-m.done
		// The shutdown's cause is the first of this error, a context
		// error, and a receive failure: report that one.
		return nil, m.cause
	}
	return m, nil
}

func newMonitor(cfg Config, tr transport.Transport) *Monitor {
	if cfg.Buffer == 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Events == 0 {
		cfg.Events = MaskAll
	}
	m := &Monitor{
		cfg:     cfg,
		tr:      tr,
		port:    tr.LocalPort(),
		gaps:    !cfg.KernelFilter || cfg.Events.normal() == MaskAll,
		maxRead: cfg.MaxReadBuffer,
		events:  make(chan Event, cfg.Buffer),
		acks:    make(chan ackMsg, 16),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		pending: Loss{CPU: AnyCPU},
	}
	if m.maxRead == 0 {
		m.maxRead = DefaultMaxReadBuffer
	}
	if _, real := tr.(*transport.Conn); real && !cfg.NoExecComm {
		m.procRoot = "/proc"
	}
	m.live.Store(2)
	if rb, ok := tr.(readBufferer); ok {
		if cfg.ReadBuffer > 0 {
			m.rcvbuf.Store(int64(cfg.ReadBuffer))
		} else if n, err := rb.ReadBuffer(); err == nil {
			m.rcvbuf.Store(int64(n / 2)) // the kernel reports twice the value set
		}
	}
	return m
}

// Events returns the channel of events. It is never closed: watch Done.
// Events already in the channel when the Monitor ends stay readable.
//
// Loss is part of the stream: an Event of KindLost appears where events
// went missing (see Loss), and the stream goes on after it. Memory is
// bounded: when the application falls Config.Buffer events behind, newer
// events are dropped and counted, and one loss report holding the count
// takes the next free slot, ahead of any later event. Loss detected
// while the report waits (more drops, gaps, overruns) joins it; loss
// detected at the instant the application takes it may instead come as a
// second report right behind it, with no event in between. The reader never
// waits for the application, because a reader that stops draining the
// socket makes the kernel drop events wholesale (and such drops would be
// reported as overruns too).
func (m *Monitor) Events() <-chan Event { return m.events }

// Done is closed when the Monitor has ended; Err then says why.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err returns nil while the Monitor runs, then why it ended: ErrClosed
// after Close, an error wrapping the context's error after cancellation,
// or the transport error that stopped the reader.
func (m *Monitor) Err() error {
	select {
	case <-m.done:
		return m.cause
	default:
		return nil
	}
}

// LocalPort is the netlink port of the Monitor's socket.
func (m *Monitor) LocalPort() uint32 { return m.port }

// Stats returns the Monitor's counters.
func (m *Monitor) Stats() Stats {
	return Stats{
		Received:   m.st.received.Load(),
		Delivered:  m.st.delivered.Load(),
		Filtered:   m.st.filtered.Load(),
		Missed:     m.st.missed.Load(),
		Overruns:   m.st.overruns.Load(),
		Dropped:    m.st.dropped.Load(),
		Rejected:   m.st.rejected.Load(),
		Malformed:  m.st.malformed.Load(),
		Unknown:    m.st.unknown.Load(),
		ReadBuffer: int(m.rcvbuf.Load()),
	}
}

// Close unsubscribes (PROC_CN_MCAST_IGNORE, so that the kernel's count of
// listeners stays right), closes the socket and waits for the Monitor's
// goroutines. It returns the error of closing the transport, if any. It is
// safe to call more than once and concurrently with everything else.
//
// The kernel's answer to IGNORE is never seen: the kernel filters its
// answer by the socket's new state, which drops everything. Closing the
// socket stops delivery in any case.
func (m *Monitor) Close() error {
	m.shutdown(ErrClosed)
	<-m.done
	return m.closeErr
}

// shutdown ends the Monitor once, with cause; later calls do nothing. It
// does not wait, so the reader may call it.
func (m *Monitor) shutdown(cause error) {
	m.stopOnce.Do(func() {
		m.cause = cause
		if stop := m.stopAfter.Load(); stop != nil {
			(*stop)()
		}
		if m.listened.Load() {
			// Best effort: the socket is about to go anyway.
			_ = m.sendRequest(opIgnore, false, 0, rand.Uint32())
		}
		m.closeErr = m.tr.Close()
		close(m.stop)
	})
}

// exit marks one goroutine as returned; the last one closes done.
func (m *Monitor) exit() {
	if m.live.Add(-1) == 0 {
		close(m.done)
	}
}
