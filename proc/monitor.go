package proc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
)

// Defaults for the zero fields of Config.
const (
	DefaultBuffer        = 4096
	DefaultMaxReadBuffer = 4 << 20
)

// receiveBufLen is the buffer the reader receives into. cn_proc datagrams
// are 76 bytes; anything that does not fit is not from cn_proc.
const receiveBufLen = 16 << 10

// filterProbeRounds is how many answered LISTEN rounds without an answer
// to the proc_input probe make Listen conclude that the kernel ignores the
// filtered form. One answered round would almost always do: the kernel
// handles both requests synchronously, in order, inside sendto, so the
// probe's answer is queued first. Three rule out the rare overrun that
// drops just that answer.
const filterProbeRounds = 3

// Config configures Listen. The zero value subscribes to every event on a
// new NETLINK_CONNECTOR socket with default limits.
type Config struct {
	// Transport, if set, is used instead of a new NETLINK_CONNECTOR
	// socket (transport.Open): tests pass a transport/memnet Conn, and a
	// caller may pass a socket it configured itself. Listen joins it to
	// Group. The Monitor owns it from then on and closes it.
	Transport transport.Transport

	// Events selects the event types delivered; zero means MaskAll.
	// Without KernelFilter every event still reaches the socket (which
	// keeps loss detection exact) and the Monitor drops the others.
	Events Mask

	// KernelFilter asks the kernel to filter by Events (the struct
	// proc_input subscription of Linux 6.6+), so that unwanted events
	// never cost a wakeup. Listen fails with ErrFilterUnsupported on an
	// older kernel. Two costs: the kernel's per-CPU sequence numbers
	// count the events it filters out too, so gaps stop meaning loss and
	// Loss.Missed stays zero (overruns are still reported); and the
	// kernel applies the filter to its own answers, so the filtered
	// request is confirmed by the answer to an unfiltered one sent just
	// before it on the same socket (the kernel handles requests
	// synchronously inside sendto, so a request that was sent was
	// applied).
	KernelFilter bool

	// Buffer is how many events wait for the application before newer
	// ones are dropped and reported (Loss.Dropped). Zero means
	// DefaultBuffer. The buffer is a channel allocated up front, about
	// 200 bytes per slot.
	Buffer int

	// ReadBuffer is the socket's initial receive buffer (SO_RCVBUF) in
	// bytes; zero keeps the system default (net.core.rmem_default). The
	// kernel charges about 768 bytes per queued event.
	ReadBuffer int

	// MaxReadBuffer caps the automatic growth of the receive buffer:
	// after each overrun the Monitor doubles it, up to this many bytes.
	// Zero means DefaultMaxReadBuffer; a negative value turns growth off.
	// Growth needs a transport with SetReadBuffer and ReadBuffer methods,
	// as transport.Conn and memnet.Conn have.
	MaxReadBuffer int

	// NoExecComm turns off reading the command name of exec events (see
	// Event.Comm): one open and read of /proc/PID/comm per exec event, on
	// the reader's path. Set it when exec storms must cost nothing more
	// than the kernel's events.
	NoExecComm bool

	// Probe paces the retransmission of the subscription request until
	// the kernel answers; Listen fails with ErrNoAnswer when it gives up.
	// Nil means retry.ProbeConfig() (10 ms doubling to 1 s, giving up
	// after 10 s).
	Probe *retry.ScheduleConfig
}

func (c *Config) validate() error {
	var errs []error
	if c.Events&^MaskAll != 0 {
		errs = append(errs, fmt.Errorf("bits %#x of Events are outside MaskAll", uint32(c.Events&^MaskAll)))
	}
	if c.Buffer < 0 {
		errs = append(errs, fmt.Errorf("negative Buffer %d", c.Buffer))
	}
	if c.ReadBuffer < 0 {
		errs = append(errs, fmt.Errorf("negative ReadBuffer %d", c.ReadBuffer))
	}
	if c.Probe != nil {
		if err := c.Probe.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("in Probe: %w", err))
		}
		if c.Probe.GiveUpAfter == 0 {
			errs = append(errs, errors.New("zero Probe.GiveUpAfter: a kernel that never answers would hang Listen (set a budget; the context can end it sooner)"))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("cnlink/proc: invalid Config: %w", errors.Join(errs...))
}

// Stats are a Monitor's cumulative counters.
type Stats struct {
	// Received counts events decoded from the kernel, answers to
	// subscription requests included.
	Received uint64
	// Delivered counts events and loss reports put into the event
	// buffer for the application.
	Delivered uint64
	// Filtered counts events received but not selected by Config.Events.
	Filtered uint64
	// Missed, Overruns and Dropped are the totals of the Loss reports
	// (whether or not the application has read them yet).
	Missed, Overruns, Dropped uint64
	// Rejected counts datagrams and messages that did not come from the
	// kernel's proc connector: sent from a user port, to another group,
	// or to another connector id. They are never delivered.
	Rejected uint64
	// Malformed counts messages from the kernel that could not be
	// decoded (too short, truncated, not NLMSG_DONE).
	Malformed uint64
	// Unknown counts delivered events of KindUnknown.
	Unknown uint64
	// ReadBuffer is the receive buffer size last requested, in bytes
	// (what SO_RCVBUF was set to; the kernel reports twice that). Zero
	// when the transport does not say.
	ReadBuffer int
}

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
// *ListenError.
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

func (m *Monitor) sendRequest(op uint32, filtered bool, mask Mask, ack uint32) error {
	var buf [64]byte
	b := appendRequest(buf[:0], m.port, m.reqSeq.Add(1), ack, op, filtered, mask)
	return m.tr.Send(transport.Addr{Port: 0}, b)
}

// subscribe runs the LISTEN exchange described at Listen, and the probe
// and filter requests of Config.KernelFilter.
func (m *Monitor) subscribe(ctx context.Context) error {
	pc := retry.ProbeConfig()
	if m.cfg.Probe != nil {
		pc = *m.cfg.Probe
	}
	sched := retry.NewSchedule(pc)
	filter := m.cfg.KernelFilter && m.cfg.Events.normal() != MaskAll
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	var listenAcks, probeAcks []uint32
	sawProbe := false
	answered := 0 // LISTEN rounds answered without a probe answer
	for {
		if filter {
			// {LISTEN, ALL} in the proc_input form: answered only by a
			// kernel that understands the form. ALL, because the kernel
			// filters its own answer by the socket's mask, and the
			// answer's type (NONE) is in no mask but ALL.
			a := rand.Uint32()
			probeAcks = append(probeAcks, a)
			if err := m.sendListen(true, MaskAll, a); err != nil {
				return err
			}
		}
		a := rand.Uint32()
		listenAcks = append(listenAcks, a)
		if err := m.sendListen(false, 0, a); err != nil {
			return err
		}
		wait, ok := sched.Next(time.Since(start))
		if !ok {
			if answered > 0 {
				return ErrFilterUnsupported
			}
			return ErrNoAnswer
		}
		timer.Reset(wait)
	await:
		for {
			select {
			case r := <-m.acks:
				switch {
				case slices.Contains(probeAcks, r.ack-1):
					if r.err != 0 {
						return &ListenError{Op: "listen (filtered)", Errno: errno(r.err)}
					}
					sawProbe = true
				case slices.Contains(listenAcks, r.ack-1):
					if r.err != 0 {
						return &ListenError{Op: "listen", Errno: errno(r.err)}
					}
					if !filter {
						return nil
					}
					if sawProbe {
						// The socket listens to everything; now narrow it.
						// No answer will come (see Config.KernelFilter).
						return m.sendListen(true, m.cfg.Events.normal(), rand.Uint32())
					}
					if answered++; answered >= filterProbeRounds {
						return ErrFilterUnsupported
					}
					break await // send another round at once
				}
			case <-timer.C:
				break await
			case <-ctx.Done():
				return fmt.Errorf("cnlink/proc: subscribing: %w", context.Cause(ctx))
			case <-m.stop:
				return m.cause
			}
		}
	}
}

// sendListen sends one LISTEN request. A full kernel queue is not an
// error: the retransmission schedule covers it like a lost answer.
func (m *Monitor) sendListen(filtered bool, mask Mask, ack uint32) error {
	err := m.sendRequest(opListen, filtered, mask, ack)
	switch {
	case err == nil:
		m.listened.Store(true)
		return nil
	case errors.Is(err, transport.ErrPeerBusy):
		return nil
	}
	// ErrPeerGone here is DESIGN §2.8: a network namespace without the
	// connector's kernel socket.
	return fmt.Errorf("cnlink/proc: sending PROC_CN_MCAST_LISTEN: %w", err)
}

// read is the reader goroutine.
func (m *Monitor) read() {
	defer m.exit()
	buf := make([]byte, receiveBufLen)
	var sc transport.Scanner
	for {
		p, err := m.tr.Receive(buf)
		if err != nil {
			// After our own shutdown this is ErrClosed, and shutdown has
			// already recorded the cause; otherwise it ends the Monitor.
			m.shutdown(fmt.Errorf("cnlink/proc: %w", err))
			return
		}
		if p.Overrun {
			m.st.overruns.Add(1)
			m.push(Event{Kind: KindLost, Loss: Loss{Overruns: 1, CPU: AnyCPU}})
			m.grow()
			continue
		}
		// Trust (DESIGN §2.5): the sender's port is stamped by the
		// kernel; proc events come from port 0 on Group. Anything else
		// imitates the kernel.
		if p.From != 0 || (p.Group != Group && p.Group != 0) {
			m.st.rejected.Add(1)
			continue
		}
		if p.Truncated {
			m.st.malformed.Add(1)
			continue
		}
		sc.Reset(p.Data)
		for sc.Next() {
			m.handle(sc.Frame())
		}
		if sc.Err() != nil {
			m.st.malformed.Add(1)
		}
	}
}

// handle processes one message from the kernel.
func (m *Monitor) handle(f *transport.Frame) {
	if f.ID != procID {
		m.st.rejected.Add(1)
		return
	}
	if f.NlType != transport.NlmsgDone {
		m.st.malformed.Add(1)
		return
	}
	ev, err := Decode(f.Payload)
	if err != nil {
		m.st.malformed.Add(1)
		return
	}
	ev.Seq, ev.Ack = f.Seq, f.Ack
	m.st.received.Add(1)
	if m.gaps {
		if missed, first, after := m.seq.observe(ev.CPU, ev.Seq, ev.Timestamp); missed > 0 {
			m.st.missed.Add(missed)
			m.push(Event{Kind: KindLost, Loss: Loss{
				Missed: missed, CPU: ev.CPU, FirstSeq: first, After: after, Before: ev.Timestamp,
			}})
		}
	}
	if ev.Kind == KindNone {
		// Answers to subscription requests, ours or another process's.
		select {
		case m.acks <- ackMsg{ack: ev.Ack, err: ev.Err}:
		default: // nobody is subscribing
		}
		return
	}
	if !m.cfg.Events.Allows(ev.What, ev.ExitCode) {
		m.st.filtered.Add(1)
		return
	}
	if ev.Kind == KindUnknown {
		m.st.unknown.Add(1)
	}
	if ev.Kind == KindExec && m.procRoot != "" {
		// At once, before anything else can wait: a short-lived process
		// is gone (reaped) within microseconds of its exec.
		readComm(m.procRoot, ev.PID, &ev.Comm)
	}
	m.push(ev)
}

// push puts ev into the event channel without blocking. When the channel
// is full, or a loss report is already waiting for room, ev joins the
// pending loss report (a loss report merges into it, any other event is
// dropped and counted) and the flusher is told.
func (m *Monitor) push(ev Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending.IsZero() {
		select {
		case m.events <- ev:
			m.st.delivered.Add(1)
			return
		default:
		}
	}
	if ev.Kind == KindLost {
		m.pending.add(ev.Loss)
	} else {
		m.pending.add(Loss{Dropped: 1, CPU: AnyCPU})
		m.st.dropped.Add(1)
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// flush is the flusher goroutine: it waits, outside the lock, for room for
// the pending loss report.
//
// What it offers the channel is a copy of pending, and a channel send
// cannot recompute its value when room appears, so the copy must never
// go stale while it waits: push kicks on every change to pending, and a
// kick makes the flusher take a fresh copy before it waits again. A
// report therefore holds all the loss detected before the application
// made room for it. Only loss detected at the very moment the report is
// handed over may miss it (the select finds the room and the kick ready
// together and picks one); that loss stays pending and is the next
// report, still ahead of every later event.
func (m *Monitor) flush() {
	defer m.exit()
	for {
		select {
		case <-m.kick:
		case <-m.stop:
			return
		}
	offer:
		for {
			m.mu.Lock()
			rep := m.pending
			m.mu.Unlock()
			if rep.IsZero() {
				break
			}
			select {
			case m.events <- Event{Kind: KindLost, Loss: rep}:
				m.st.delivered.Add(1)
				m.mu.Lock()
				m.pending.sub(rep)
				m.mu.Unlock()
			case <-m.kick:
				continue offer // pending grew: offer the merged report
			case <-m.stop:
				return
			}
		}
	}
}

// grow doubles the receive buffer after an overrun, up to the cap.
func (m *Monitor) grow() {
	rb, ok := m.tr.(readBufferer)
	if !ok || m.maxRead <= 0 {
		return
	}
	cur := int(m.rcvbuf.Load())
	if cur >= m.maxRead {
		return
	}
	next := min(max(2*cur, 64<<10), m.maxRead)
	if err := rb.SetReadBuffer(next); err != nil {
		return // keep the buffer we have; the loss is reported anyway
	}
	m.rcvbuf.Store(int64(next))
}
