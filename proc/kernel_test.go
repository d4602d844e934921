package proc

import (
	"sync"
	"syscall"
	"testing"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// fakeKernel plays cn_proc on a memnet Network, following
// drivers/connector/cn_proc.c: it answers LISTEN and IGNORE requests to
// cb_id 1:1 with a PROC_EVENT_NONE whose ack is the request's ack + 1 and
// whose seq is replaced by a per-CPU counter, and it numbers every event
// it emits, answers included, with that counter. Like the kernel, it
// handles a request synchronously inside the sender's Send (memnet's
// Kernel hook), applies a socket's filter to everything sent to it, its
// own answers included, and delivers nothing to a socket that sent
// IGNORE.
type fakeKernel struct {
	t   testing.TB
	net *memnet.Network

	mu       sync.Mutex
	seq      [2]uint32 // per-CPU event counters
	ts       uint64    // the clock: each event is stamped one more
	requests []fakeRequest
	state    map[uint32]fakeSocket // by port, as sk_user_data

	// Knobs, set before the exchange they affect.
	drop         int    // ignore this many requests, as if lost
	errno        uint32 // answer with this error
	silent       bool   // never answer (outside the initial namespaces)
	noFilterForm bool   // ignore 8-byte requests (kernels before 6.6)
	foreignOnly  int    // answer this many requests with someone else's answer only
}

type fakeRequest struct {
	from     uint32
	nlPID    uint32
	op       uint32
	filtered bool
	mask     Mask
	seq, ack uint32
	answered bool
}

type fakeSocket struct {
	op   uint32
	mask Mask
}

func newFakeKernel(t testing.TB) *fakeKernel {
	k := &fakeKernel{t: t, state: make(map[uint32]fakeSocket)}
	k.net = memnet.New(memnet.Config{Kernel: k.receive})
	return k
}

// receive is memnet's Kernel hook: a datagram sent to port 0.
func (k *fakeKernel) receive(from uint32, b []byte) {
	sc := transport.NewScanner(b)
	if !sc.Next() { // the kernel looks at the first message only
		return
	}
	f := sc.Frame()
	if f.ID != procID {
		return
	}
	r := fakeRequest{from: from, nlPID: f.NlPID, seq: f.Seq, ack: f.Ack}
	switch len(f.Payload) {
	case 4:
		r.op, r.mask = ne.Uint32(f.Payload), MaskAll
	case 8:
		r.op, r.filtered, r.mask = ne.Uint32(f.Payload), true, Mask(ne.Uint32(f.Payload[4:])).normal()
	default:
		return
	}
	k.mu.Lock()
	defer func() {
		k.requests = append(k.requests, r)
		k.mu.Unlock()
	}()
	if k.silent || (r.filtered && k.noFilterForm) {
		return
	}
	if k.drop > 0 {
		k.drop--
		return
	}
	k.state[from] = fakeSocket{op: r.op, mask: r.mask}
	if k.foreignOnly > 0 {
		// An answer to another process's request (its ack is not ours
		// plus one), carrying an error that is not ours either.
		k.foreignOnly--
		k.emitLocked(0, Event{Kind: KindNone, Err: uint32(syscall.EPERM)}, r.ack+2)
		return
	}
	k.emitLocked(0, Event{Kind: KindNone, Err: k.errno}, r.ack+1)
	r.answered = true
}

// emit sends ev from cpu to every socket whose filter passes it, with the
// next sequence number of cpu and the next timestamp, and returns it as
// sent.
func (k *fakeKernel) emit(cpu uint32, ev Event) Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.emitLocked(cpu, ev, 0)
}

func (k *fakeKernel) emitLocked(cpu uint32, ev Event, ack uint32) Event {
	ev.What, _ = ev.Kind.What()
	ev.CPU, ev.Seq, ev.Ack = cpu, k.seq[cpu], ack
	k.seq[cpu]++
	k.ts++
	ev.Timestamp = k.ts
	b := frameOf(&ev)
	filtered := false
	for _, s := range k.state {
		filtered = filtered || s.mask != MaskAll || s.op != opListen
	}
	if !filtered {
		// The common case, as the kernel does it: one multicast.
		_ = k.net.Inject(0, transport.Addr{Group: Group}, b)
		return ev
	}
	for port, s := range k.state {
		if s.op == opListen && s.mask.Allows(ev.What, ev.ExitCode) {
			_ = k.net.Inject(0, transport.Addr{Port: port}, b)
		}
	}
	return ev
}

// skip consumes n sequence numbers of cpu without delivering anything, as
// events dropped on the way would.
func (k *fakeKernel) skip(cpu uint32, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seq[cpu] += uint32(n)
	k.ts += uint64(n)
}

func (k *fakeKernel) requestsCopy() []fakeRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]fakeRequest(nil), k.requests...)
}

// frameOf encodes ev as the kernel's datagram: one NLMSG_DONE message to
// cb_id 1:1 with the proc_event payload and nlmsg_seq = cn_msg.seq.
func frameOf(ev *Event) []byte {
	b, err := transport.AppendFrame(nil, &transport.Frame{
		NlType:  transport.NlmsgDone,
		NlSeq:   ev.Seq,
		ID:      procID,
		Seq:     ev.Seq,
		Ack:     ev.Ack,
		Payload: AppendEvent(nil, ev),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// gated wraps a memnet Conn so that a test decides when the Monitor's
// reader may receive: with the gate shut, the socket's queue fills and
// overflows exactly as it does behind a reader that fell behind. A
// Receive already waiting inside memnet when the gate shuts still takes
// the next datagram. The buffer methods are memnet's, so the Monitor can
// grow the buffer.
type gated struct {
	*memnet.Conn
	mu   sync.Mutex
	open bool
	wake chan struct{} // capacity 1: the gate opened
	done chan struct{} // closed by Close
	once sync.Once
}

func newGated(c *memnet.Conn) *gated {
	return &gated{Conn: c, open: true, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (g *gated) set(open bool) {
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
	if open {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

func (g *gated) Receive(buf []byte) (transport.Packet, error) {
	for {
		g.mu.Lock()
		open := g.open
		g.mu.Unlock()
		if open {
			return g.Conn.Receive(buf)
		}
		select {
		case <-g.wake:
		case <-g.done:
			return transport.Packet{}, &transport.OpError{Op: "receive", Kind: transport.ErrClosed}
		}
	}
}

func (g *gated) Close() error {
	g.once.Do(func() { close(g.done) })
	return g.Conn.Close()
}
