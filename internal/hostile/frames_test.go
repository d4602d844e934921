//go:build linux

package hostile

// The hostile side: hand-encoded frames, a raw attacker socket on a third
// port, and the tap that lets a test send from the legitimate peer's own
// socket with the session's real epochs.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

var ne = binary.NativeEndian

// frame appends one sealed cnlink frame to dst.
func frame(dst []byte, f wire.Frame, body, payload []byte) []byte {
	out, err := wire.Append(dst, &f, body, payload)
	if err != nil {
		panic(fmt.Sprintf("encoding %+v: %v", f, err))
	}
	return out
}

func synBody(s wire.Syn) []byte { return wire.AppendSyn(nil, s) }

func ackBody(limit uint32, ranges ...wire.Range) []byte {
	return wire.AppendAck(nil, &wire.Ack{Limit: limit, Ranges: ranges})
}

// forged is the payload of a forged message: whatever reaches an
// application with it shows up as not the expected message.
func forged(tag string, i int) []byte { return fmt.Appendf(nil, "FORGED %s %d", tag, i) }

// attacker is a raw NETLINK_CONNECTOR socket on a kernel-assigned port
// (a third party to the session). A goroutine drains what it receives
// and counts the frames by type.
type attacker struct {
	c      *transport.Conn
	frames [8]atomic.Uint64 // by wire.Type (0: other)
	dgrams atomic.Uint64
	busy   atomic.Uint64 // sends refused with EAGAIN (the victim's queue was full)
	sent   atomic.Uint64 // datagrams sent
	done   chan struct{}
}

func newAttacker(t *testing.T) *attacker {
	t.Helper()
	c, err := transport.Open(transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{c: c, done: make(chan struct{})}
	go a.drain()
	t.Cleanup(func() {
		a.c.Close()
		<-a.done
	})
	return a
}

func (a *attacker) port() uint32 { return a.c.LocalPort() }

func (a *attacker) drain() {
	defer close(a.done)
	buf := make([]byte, 1<<17)
	for {
		p, err := a.c.Receive(buf)
		if err != nil {
			return
		}
		a.dgrams.Add(1)
		sc := transport.NewScanner(p.Data)
		for sc.Next() {
			if h, err := wire.ParseHeader(sc.Frame().Payload); err == nil && h.Type <= wire.TypeRst {
				a.frames[h.Type].Add(1)
			} else {
				a.frames[0].Add(1)
			}
		}
	}
}

// send sends one datagram to port; a full victim queue (EAGAIN) is
// counted, not an error: a flooder does not care.
func (a *attacker) send(t *testing.T, port uint32, b []byte) {
	err := a.c.Send(transport.Addr{Port: port}, b)
	switch {
	case err == nil:
		a.sent.Add(1)
	case errors.Is(err, transport.ErrPeerBusy):
		a.busy.Add(1)
	default:
		t.Errorf("attacker send: %v", err)
	}
}

// tap wraps the legitimate peer's transport. It reads (never changes) the
// frames of the session on channel ch with the victim's port, learning
// the epochs and sequence numbers that a peer inside the session knows,
// and injects hand-made datagrams from the peer's own socket. "local" is
// the peer P, "remote" the victim V.
type tap struct {
	transport.Transport
	ch     transport.CbID
	remote uint32

	mu                        sync.Mutex
	localEpoch, remoteEpoch   uint32
	haveLocal, haveRemote     bool
	localNext, remoteNext     window.Seq // next DSN each side will use, as seen here
	haveLocalNext, haveRmNext bool
	lastCum                   uint32 // the cumulative ack of P's latest ACK
	haveCum                   bool
	lastAck                   []byte // P's latest ACK frame, as sent

	rxBytes, rxDgrams atomic.Uint64 // received from the victim
	rxFrames          [8]atomic.Uint64
	injected          atomic.Uint64 // datagrams injected
	injectBusy        atomic.Uint64 // injections refused (EAGAIN)
}

func newTap(inner transport.Transport, ch transport.CbID, remote uint32) *tap {
	return &tap{Transport: inner, ch: ch, remote: remote}
}

func (t *tap) Send(dst transport.Addr, b []byte) error {
	if dst.Port == t.remote && dst.Group == 0 {
		t.observe(b, true)
	}
	return t.Transport.Send(dst, b)
}

func (t *tap) Receive(buf []byte) (transport.Packet, error) {
	p, err := t.Transport.Receive(buf)
	if err == nil && p.From == t.remote && !p.Truncated && !p.Overrun && p.Group == 0 {
		t.rxBytes.Add(uint64(len(p.Data)))
		t.rxDgrams.Add(1)
		t.observe(p.Data, false)
	}
	return p, err
}

func (t *tap) observe(b []byte, out bool) {
	sc := transport.NewScanner(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		start := sc.Offset()
		if !sc.Next() {
			break
		}
		f := sc.Frame()
		if f.NlType != transport.NlmsgDone || f.ID != t.ch {
			continue
		}
		h, err := wire.ParseHeader(f.Payload)
		if err != nil {
			continue
		}
		body := f.Payload[wire.HeaderLen:]
		if !out && h.Type <= wire.TypeRst {
			t.rxFrames[h.Type].Add(1)
		}
		switch {
		case h.Type == wire.TypeSyn || h.Type == wire.TypeSynAck:
			syn, err := wire.ParseSyn(body)
			if err != nil {
				continue
			}
			if out {
				t.localEpoch, t.haveLocal = syn.Epoch, true
				t.localNext, t.haveLocalNext = window.Seq(syn.ISN), true
			} else {
				t.remoteEpoch, t.haveRemote = syn.Epoch, true
				t.remoteNext, t.haveRmNext = window.Seq(syn.ISN), true
			}
		case h.Type == wire.TypeData || h.Type == wire.TypeReply:
			dsn := window.Seq(f.Seq)
			if h.Type == wire.TypeReply {
				dsn = window.Seq(h.Arg)
			}
			if out {
				if !t.haveLocalNext || t.localNext.LessEq(dsn) {
					t.localNext, t.haveLocalNext = dsn.Add(1), true
				}
			} else if !t.haveRmNext || t.remoteNext.LessEq(dsn) {
				t.remoteNext, t.haveRmNext = dsn.Add(1), true
			}
		case h.Type == wire.TypeAck && out:
			t.lastCum, t.haveCum = h.Arg, true
			t.lastAck = append(t.lastAck[:0], b[start:sc.Offset()]...)
		}
	}
}

func (t *tap) ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.haveLocal && t.haveRemote && t.haveLocalNext && t.haveRmNext
}

func (t *tap) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("peer epoch %#x next %#x, victim epoch %#x next %#x, last cum %#x",
		t.localEpoch, uint32(t.localNext), t.remoteEpoch, uint32(t.remoteNext), t.lastCum)
}

// sessionView is what the peer P knows of the session at one moment.
type sessionView struct {
	peerEpoch, victimEpoch uint32     // P's epoch, V's epoch
	peerNext, victimNext   window.Seq // next DSN of P's and of V's stream
	cum                    uint32     // P's latest cumulative ack of V's stream
}

func (t *tap) view() sessionView {
	t.mu.Lock()
	defer t.mu.Unlock()
	cum := t.lastCum
	if !t.haveCum {
		cum = uint32(t.remoteNext) // nothing of V's acknowledged yet
	}
	return sessionView{peerEpoch: t.localEpoch, victimEpoch: t.remoteEpoch, peerNext: t.localNext, victimNext: t.remoteNext, cum: cum}
}

// replayAck appends copies of the peer's latest ACK frame to dst.
func (t *tap) replayAck(dst []byte, copies int) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	for range copies {
		dst = append(dst, t.lastAck...)
		for len(dst)%transport.NlmsgAlignTo != 0 {
			dst = append(dst, 0)
		}
	}
	return dst
}

// inject sends datagram b to the victim from the peer's socket.
func (t *tap) inject(tb testing.TB, b []byte) {
	err := t.Transport.Send(transport.Addr{Port: t.remote}, b)
	switch {
	case err == nil:
		t.injected.Add(1)
	case errors.Is(err, transport.ErrPeerBusy):
		t.injectBusy.Add(1)
	default:
		tb.Errorf("inject: %v", err)
	}
}
