package reliable

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// FuzzEndpoint attacks a live session at the endpoint level. Inside a
// testing/synctest bubble (synthetic time; only the engine's random epochs
// and ISNs differ between runs of one input), endpoint A streams verified
// messages (msg/checkMsg) to endpoint B over memnet, and B streams a
// shorter reverse stream back, while the input, decoded into a sequence
// of operations, injects hostile datagrams into B: from a third port
// (unheld, held by a socket that never reads, or the kernel's port 0) or
// from A's own port (memnet.Network.Inject with A's credentials), which
// models a malicious peer inside the session. An operation may patch in
// the session's real epochs and DSNs near the live cumulative acks, read
// from the engine (fuzzView), so that frames get past the epoch checks
// and into the window logic; it may coalesce copies, flood, corrupt or
// lie about lengths, pause B's reader and let synthetic time pass, while
// both sides keep sending.
//
// Every injected datagram is parsed as B's engine will parse it. A frame
// from A's port on the session's channel that carries the real epochs is
// authentic: the malicious peer's right is to put its own data at a DSN
// (DATA, REPLY: "fwd" taint, which may also desynchronise A, whose next
// DSNs B then acknowledges before A sent them), to acknowledge for A what
// A never received (ACK: "rev" taint), and to end the session (RST, FIN,
// a SYN with a new epoch, which needs no epoch at all, a SYNACK with
// another epoch, a message above B's max_message, which B answers with
// RST 6: "end" taint). The invariants:
//
//   - nothing panics, nothing hangs (every wait is bounded in synthetic
//     time; the bubble reports deadlocks) and nothing leaks (synctest and
//     the package TestMain);
//   - B's application receives, in stream order and at most once per DSN,
//     legitimate messages byte for byte at their own DSN, or authentic
//     forged payloads (distinguishable: they start with fuzzMarker) at
//     exactly the DSN they were injected with, data on Recv and requests
//     on Requests; never a REPLY or a FIN, never anything from a third
//     port or with a wrong epoch; a request is never handed over before
//     the messages ahead of it are in Recv's buffer;
//   - A's application receives an exact prefix of B's reverse stream;
//   - without "end" taint neither session ends until A closes; without
//     "fwd" (and "end") taint all of A's stream, and nothing else, reaches
//     B's application within 30s of the injections stopping, A's Close
//     returns nil and B ends with ErrPeerClosed; without "rev" (and "end")
//     taint all of B's stream reaches A's application;
//   - with taint, a session that ends does so with ErrPeerReset,
//     ErrPeerGone, ErrPeerClosed or ErrProtocol (A's Close may also return ErrTimeout),
//     within bounded synthetic time;
//   - once Done is closed, Received == Delivered + Undelivered, B's
//     Delivered is what its application read, and only forged REPLYs
//     (late replies) are Undelivered at B.
//
// The input: a 4-byte configuration (see runEndpointFuzz), then up to
// fuzzMaxOps operations of fuzzOpLen bytes, each followed by its body
// (see decodeFuzzOp). CNLINK_FUZZ_TRACE=1 with -v logs each execution.
func FuzzEndpoint(f *testing.F) {
	for _, seed := range fuzzEndpointSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) { runEndpointFuzz(t, data) })
	})
}

// fuzzView is what the hostile operations need to know about the
// legitimate session: its epochs and where its windows stand.
type fuzzView struct {
	myEpoch, peerEpoch uint32
	myISN              uint32
	rcvCum             uint32 // next DSN expected from the peer
	sndBase, sndNext   uint32 // oldest unacknowledged and next DSN we send
	ok                 bool
}

// fuzzView reads s's protocol state on its endpoint's owner goroutine.
// Test only.
func (s *Session) fuzzView() fuzzView {
	var v fuzzView
	_ = s.ep.runOnOwner(func() {
		v = fuzzView{myEpoch: s.myEpoch, peerEpoch: s.peerEpoch, myISN: uint32(s.myISN), ok: true}
		if s.rcv != nil {
			v.rcvCum = uint32(s.rcv.Cum())
		}
		if s.snd != nil {
			v.sndBase, v.sndNext = uint32(s.snd.Base()), uint32(s.snd.Next())
		}
	})
	return v
}

const (
	fuzzConfigLen = 4
	fuzzOpLen     = 20
	fuzzMaxOps    = 64
	fuzzMaxAdv    = 30 * time.Second // synthetic time the operations may let pass
	fuzzRevBase   = 1 << 20          // index of the reverse stream's first message
	fuzzMaxMsg    = 1024
	fuzzUnheld    = 0x7777 // a third port nobody holds
)

// fuzzMarker starts every forged payload: as msg's 8-byte index it is far
// beyond any legitimate one, so no forged payload equals a msg(i, size).
var fuzzMarker = []byte{0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed, 0xfa, 0xce}

// fuzzOtherCh is a channel other than the session's.
var fuzzOtherCh = transport.CbID{Idx: DefaultChannel.Idx, Val: 2}

// Sources of injected datagrams.
const (
	srcPeer   = iota // the legitimate peer's own port and credentials
	srcUnheld        // a port no socket holds
	srcHeld          // a port held by a socket that never reads
	srcKernel        // port 0
)

// fuzzOp is one decoded operation.
type fuzzOp struct {
	typ     wire.Type // 0: inject nothing
	src     int
	real    bool // patch in the real epochs
	near    bool // DSNs relative to the live window (type-specific, see frame)
	group   bool // address B's port with a multicast group
	hflags  uint16
	otherCh bool
	copies  int // frames coalesced in one datagram, 1..8
	corrupt int // 0..7, applied to the last frame (see corruptLast)
	param   int // 0..31
	seq     uint32
	ack     uint32
	arg     uint32
	body    []byte
	sendA   int // legitimate messages A tries to queue, 0..15
	sendB   int // reverse messages B tries to queue, 0..3
	pause   bool
	flood   bool // copies as separate datagrams, times mult
	big     bool // payload beyond MaxMessage
	mult    int
	adv     byte // synthetic time to let pass (fuzzAdvance)
	extra   byte // type-specific (ACK: Dup delta)
}

// decodeFuzzOp reads one operation:
//
//	0     type (bits 0-2, 0 = none) | source (3-4) | real epochs (5) | near DSNs (6) | group (7)
//	1     header flags (0-3) | other channel (4) | copies-1 (5-7)
//	2     corruption (0-2) | parameter (3-7)
//	3     body length
//	4-7   cn_msg.seq (near: int16 delta in the low half)
//	8-11  cn_msg.ack (unless real epochs)
//	12-15 header Arg (near: int16 delta in the low half; ACK: int16 limit delta in the high half)
//	16    A's sends (0-3) | B's sends (4-5) | toggle B's reader (6) | payload beyond MaxMessage (7)
//	17    time advance
//	18    flood (0) | flood multiplier (4-7)
//	19    type-specific extra
//	...   body
func decodeFuzzOp(b []byte) (fuzzOp, []byte) {
	var h [fuzzOpLen]byte
	n := copy(h[:], b)
	b = b[n:]
	le := binary.LittleEndian
	op := fuzzOp{
		typ:     wire.Type(h[0] & 7),
		src:     int(h[0]>>3) & 3,
		real:    h[0]&(1<<5) != 0,
		near:    h[0]&(1<<6) != 0,
		group:   h[0]&(1<<7) != 0,
		hflags:  uint16(h[1] & 0xf),
		otherCh: h[1]&(1<<4) != 0,
		copies:  1 + int(h[1]>>5),
		corrupt: int(h[2] & 7),
		param:   int(h[2] >> 3),
		seq:     le.Uint32(h[4:]),
		ack:     le.Uint32(h[8:]),
		arg:     le.Uint32(h[12:]),
		sendA:   int(h[16] & 0xf),
		sendB:   int(h[16]>>4) & 3,
		pause:   h[16]&(1<<6) != 0,
		big:     h[16]&(1<<7) != 0,
		adv:     h[17],
		flood:   h[18]&1 != 0,
		mult:    int(h[18] >> 4),
		extra:   h[19],
	}
	l := min(int(h[3]), len(b))
	op.body, b = b[:l], b[l:]
	return op, b
}

// encode is decodeFuzzOp's inverse, for the seeds.
func (op fuzzOp) encode() []byte {
	var h [fuzzOpLen]byte
	le := binary.LittleEndian
	h[0] = byte(op.typ&7) | byte(op.src&3)<<3 | b2u(op.real)<<5 | b2u(op.near)<<6 | b2u(op.group)<<7
	h[1] = byte(op.hflags&0xf) | b2u(op.otherCh)<<4 | byte(max(op.copies-1, 0)&7)<<5
	h[2] = byte(op.corrupt&7) | byte(op.param&31)<<3
	h[3] = byte(len(op.body))
	le.PutUint32(h[4:], op.seq)
	le.PutUint32(h[8:], op.ack)
	le.PutUint32(h[12:], op.arg)
	h[16] = byte(op.sendA&0xf) | byte(op.sendB&3)<<4 | b2u(op.pause)<<6 | b2u(op.big)<<7
	h[17] = op.adv
	h[18] = b2u(op.flood) | byte(op.mult&0xf)<<4
	h[19] = op.extra
	return append(h[:], op.body...)
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// fuzzAdvance maps a byte to synthetic time: 10µs steps around the RTO
// floor, then milliseconds, then up to seconds beyond the keepalive.
func fuzzAdvance(v byte) time.Duration {
	switch {
	case v == 0:
		return 0
	case v < 64:
		return time.Duration(v) * 10 * time.Microsecond
	case v < 128:
		return time.Duration(v-63) * time.Millisecond
	case v < 192:
		return time.Duration(v-127) * 50 * time.Millisecond
	}
	return time.Duration(v-191) * 200 * time.Millisecond
}

// fuzzForged is an authentic-looking DATA or REPLY frame injected from the
// peer's port: what B's application may receive in the legitimate
// stream's place.
type fuzzForged struct {
	off  int // DSN - A's ISN
	kind forgedKind
}

type forgedKind uint8

const (
	forgedData forgedKind = iota
	forgedRequest
	forgedReply
	forgedFin
)

// fuzzRun is one execution.
type fuzzRun struct {
	t        *testing.T
	p        *pair
	net      *memnet.Network
	held     *memnet.Conn
	sa, sb   *Session // sa: A's end (the legitimate sender), sb: B's (attacked)
	va, vb   fuzzView // as read after the handshake
	n, m     int      // legitimate messages A→B, B→A
	size     int
	window   int
	maxDgram int
	reply    bool
	done     context.Context // already cancelled: non-blocking Send

	sentA, sentB int
	paused       bool
	// What authentic frames from the peer's port may have done: put data
	// in the A→B stream (DATA, REPLY, FIN) or desynchronise A from B's
	// acknowledgements; acknowledge for A what it never received (ACK);
	// end the session (RST, FIN, a SYN with a new epoch, a SYNACK with
	// another one).
	tFwd, tRev, tEnd bool
	taintWhy         []string
	forged           map[string][]fuzzForged // by payload
	replies          map[int]bool            // offsets of authentic forged REPLYs
	counter          uint32

	// What B's application received.
	recvOffs  []int // offsets of Recv items, in order
	reqOffs   []int // offsets of Requests items, in order
	reqSeen   []int // len(recvOffs) once Recv was drained after each request
	seenOff   map[int]bool
	legitB    int // legitimate messages among them
	readB     int // items read from Recv and Requests
	recvA     int // reverse messages A's application read
	advanced  time.Duration
	log       []fuzzLogEntry // formatted only when reported
	closeErrA error
}

// fuzzLogEntry is one line of an execution's trace: an operation, or a
// note.
type fuzzLogEntry struct {
	i                      int
	op                     *fuzzOp
	v                      fuzzView
	from                   uint32
	bytes, times, injected int
	note                   string
}

func (l fuzzLogEntry) String() string {
	if l.op == nil {
		return l.note
	}
	op := l.op
	if op.typ == 0 {
		return fmt.Sprintf("op %d: sendA=%d sendB=%d pause=%v adv=%v", l.i, op.sendA, op.sendB, op.pause, fuzzAdvance(op.adv))
	}
	view := ""
	if op.real || op.near {
		view = fmt.Sprintf(" (live: cum=%#x base=%#x next=%#x)", l.v.rcvCum, l.v.sndBase, l.v.sndNext)
	}
	return fmt.Sprintf("op %d:%s %v src=%d from=%d real=%v near=%v flags=%#x other=%v copies=%d flood=%v×%d corrupt=%d/%d seq=%#x ack=%#x arg=%#x body=%d extra=%#x big=%v group=%v: %d bytes, %d injected; sendA=%d sendB=%d pause=%v adv=%v",
		l.i, view, op.typ, op.src, l.from, op.real, op.near, op.hflags, op.otherCh, op.copies, op.flood, l.times,
		op.corrupt, op.param, op.seq, op.ack, op.arg, len(op.body), op.extra, op.big, op.group, l.bytes, l.injected, op.sendA, op.sendB, op.pause, fuzzAdvance(op.adv))
}

func (r *fuzzRun) logf(format string, args ...any) {
	r.log = append(r.log, fuzzLogEntry{note: fmt.Sprintf(format, args...)})
}

func (r *fuzzRun) trace() string {
	var b strings.Builder
	for _, l := range r.log {
		b.WriteString("\n  ")
		b.WriteString(l.String())
	}
	return b.String()
}

func (r *fuzzRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nrun: n=%d m=%d size=%d window=%d taint fwd=%v rev=%v end=%v %q sentA=%d sentB=%d recvB=%v reqB=%v recvA=%d\nA: %v\nB: %v\nops:%s",
		fmt.Sprintf(format, args...), r.n, r.m, r.size, r.window, r.tFwd, r.tRev, r.tEnd, r.taintWhy, r.sentA, r.sentB,
		r.recvOffs, r.reqOffs, r.recvA, r.sa.Err(), r.sb.Err(), r.trace())
}

// runEndpointFuzz runs one input. Its configuration bytes:
//
//	0  window 4/8/16/64 (bits 0-1) | message size 8/40/300/1000 (2-3) |
//	   RecvBuffer 1/4/16/64 (4-5) | B dials (6) | AcceptBacklog 1, else 4 (7)
//	1  messages A sends, mod 65
//	2  messages B sends (bits 0-3) | B replies to requests (4) |
//	   16 KiB socket buffers (5) | MaxDatagram of exactly one largest frame (6)
//	3  unused
func runEndpointFuzz(t *testing.T, data []byte) {
	var c [fuzzConfigLen]byte
	data = data[copy(c[:], data):]
	r := &fuzzRun{
		t:       t,
		window:  []int{4, 8, 16, 64}[c[0]&3],
		size:    []int{8, 40, 300, 1000}[(c[0]>>2)&3],
		n:       int(c[1]) % 65,
		m:       int(c[2] & 15),
		reply:   c[2]&(1<<4) != 0,
		forged:  make(map[string][]fuzzForged),
		replies: make(map[int]bool),
		seenOff: make(map[int]bool),
	}
	r.maxDgram = 4096
	if c[2]&(1<<6) != 0 {
		r.maxDgram = transport.FrameLen(wire.HeaderLen + fuzzMaxMsg)
	}
	cfg := &Config{
		Window:        r.window,
		RecvBuffer:    []int{1, 4, 16, 64}[(c[0]>>4)&3],
		MaxMessage:    fuzzMaxMsg,
		MaxDatagram:   r.maxDgram,
		AcceptBacklog: 4,
		CloseTimeout:  2 * time.Second,
	}
	if c[0]&(1<<7) != 0 {
		cfg.AcceptBacklog = 1
	}
	ncfg := memnet.Config{}
	if c[2]&(1<<5) != 0 {
		ncfg.ReadBuffer = 16 << 10 // about twenty small datagrams: EAGAIN and overruns
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.done = ctx

	// The endpoints, as newEndpoints builds them, on a network of ours.
	r.net = memnet.New(ncfg)
	p := &pair{net: r.net}
	r.p = p
	ca, err := r.net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := r.net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	p.ta, p.tb = ca, cb
	if p.a, err = NewEndpoint(ca, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	if p.b, err = NewEndpoint(cb, cfg); err != nil {
		t.Fatal(err)
	}
	if r.held, err = r.net.Open(0); err != nil {
		t.Fatal(err)
	}
	_ = r.held.SetReadBuffer(0) // the minimum: a few datagrams, then EAGAIN
	t.Cleanup(func() { r.held.Close() })
	if c[0]&(1<<6) != 0 {
		r.sb, r.sa = dialAccept(t, p.b, p.a) // B dialed
	} else {
		r.sa, r.sb = dialAccept(t, p.a, p.b)
	}
	synctest.Wait()
	r.va, r.vb = r.sa.fuzzView(), r.sb.fuzzView()
	if r.va.myEpoch != r.vb.peerEpoch || r.vb.myEpoch != r.va.peerEpoch || r.vb.rcvCum != r.va.myISN {
		t.Fatalf("views disagree: A %+v, B %+v", r.va, r.vb)
	}

	for ops := 0; len(data) > 0 && ops < fuzzMaxOps; ops++ {
		var op fuzzOp
		op, data = decodeFuzzOp(data)
		r.step(ops, op)
	}
	r.finish()
}

// step runs one operation: legitimate sends, the injection, time.
func (r *fuzzRun) step(i int, op fuzzOp) {
	r.trySend(op.sendA, op.sendB)
	synctest.Wait()
	if op.pause {
		r.paused = !r.paused
	}
	if op.typ != 0 {
		r.inject(i, op)
		synctest.Wait()
	} else {
		r.log = append(r.log, fuzzLogEntry{i: i, op: &op})
	}
	if d := min(fuzzAdvance(op.adv), fuzzMaxAdv-r.advanced); d > 0 {
		r.advanced += d
		time.Sleep(d)
		synctest.Wait()
	}
	r.drain() // the next step's Wait lets the pumps settle
}

// trySend queues up to a legitimate messages at A and b at B without
// blocking.
func (r *fuzzRun) trySend(a, b int) {
	for ; a > 0 && r.sentA < r.n; a-- {
		if r.sa.Send(r.done, msg(r.sentA, r.size)) != nil {
			break
		}
		r.sentA++
	}
	for ; b > 0 && r.sentB < r.m; b-- {
		if r.sb.Send(r.done, msg(fuzzRevBase+r.sentB, r.size)) != nil {
			break
		}
		r.sentB++
	}
}

// inject builds op's datagram(s) and sends them into B.
func (r *fuzzRun) inject(i int, op fuzzOp) {
	v := r.vb
	if op.real || op.near {
		if cur := r.sb.fuzzView(); cur.ok {
			v = cur
		}
	}
	from := r.p.a.LocalPort()
	switch op.src {
	case srcUnheld:
		from = fuzzUnheld
	case srcHeld:
		from = r.held.LocalPort()
	case srcKernel:
		from = 0
	}
	var dg []byte
	last := 0
	coalesced := op.copies
	if op.flood {
		coalesced = 1
	}
	for range coalesced {
		last = len(dg)
		dg = r.appendFrame(dg, op, v, from)
	}
	dg = corruptLast(dg, last, op)
	dst := transport.Addr{Port: r.p.b.LocalPort()}
	if op.group {
		dst.Group = 1 + uint32(op.param)
	}
	times := 1
	if op.flood {
		times = op.copies * (1 + 4*op.mult)
	}
	delivered := 0
	for range times {
		if len(dg) > 0 && r.net.Inject(from, dst, dg) == nil {
			delivered++
		}
	}
	r.log = append(r.log, fuzzLogEntry{i: i, op: &op, v: v, from: from, bytes: len(dg), times: times, injected: delivered})
	if delivered > 0 && from == r.p.a.LocalPort() {
		r.classify(dg)
	}
}

// appendFrame appends one frame of op to dg.
func (r *fuzzRun) appendFrame(dg []byte, op fuzzOp, v fuzzView, from uint32) []byte {
	ch := DefaultChannel
	if op.otherCh {
		ch = fuzzOtherCh
	}
	f := wire.Frame{ID: ch, Seq: op.seq, Ack: op.ack, Port: from, Type: op.typ, Flags: op.hflags, Arg: op.arg}
	near := func(base uint32, raw uint32) uint32 { return base + uint32(int32(int16(raw))) }
	var payload []byte
	switch op.typ {
	case wire.TypeData, wire.TypeReply:
		if op.real {
			f.Ack = v.peerEpoch
			if op.typ == wire.TypeReply {
				f.Ack = v.myEpoch + 1
			}
		}
		dsn := &f.Seq
		if op.typ == wire.TypeReply {
			dsn = &f.Arg
		}
		if op.near {
			*dsn = near(v.rcvCum, *dsn)
		}
		r.counter++
		payload = append(payload, fuzzMarker...)
		payload = binary.LittleEndian.AppendUint32(payload, *dsn)
		payload = binary.LittleEndian.AppendUint32(payload, r.counter)
		payload = append(payload, op.body...)
		for op.big && len(payload) <= fuzzMaxMsg {
			payload = append(payload, payload...)
		}
	case wire.TypePing:
		if op.real {
			f.Ack = v.peerEpoch
		}
		if op.near {
			f.Seq = near(v.rcvCum, f.Seq)
		}
	case wire.TypeRst:
		if op.real {
			f.Ack = v.myEpoch + 1
		}
		if op.near {
			f.Seq = near(v.rcvCum-1, f.Seq)
		}
	case wire.TypeAck:
		if op.real {
			f.Ack = v.myEpoch + 1
		}
		if !op.near {
			payload = op.body // raw: counts and lengths may lie
			break
		}
		f.Seq = near(v.rcvCum-1, f.Seq)
		f.Arg = near(v.sndBase, op.arg)
		le := binary.LittleEndian
		payload = le.AppendUint32(payload, f.Arg+uint32(int32(int16(op.arg>>16))))  // limit
		payload = le.AppendUint32(payload, v.sndBase+uint32(int32(int8(op.extra)))) // dup
		nr := min(len(op.body)/2, 40)
		payload = le.AppendUint16(payload, uint16(nr))
		payload = le.AppendUint16(payload, 0)
		for k := range nr {
			start := v.sndBase + uint32(int32(int8(op.body[2*k])))
			end := start + uint32(int32(int8(op.body[2*k+1])))
			payload = le.AppendUint32(payload, start)
			payload = le.AppendUint32(payload, end)
		}
	case wire.TypeSyn, wire.TypeSynAck:
		var syn wire.Syn
		if len(op.body) >= wire.SynLen {
			syn, _ = wire.ParseSyn(op.body)
		} else {
			syn = wire.Syn{
				Epoch:       op.ack,
				ISN:         op.seq,
				Window:      op.arg & 0xff,
				MaxMessage:  (op.arg >> 8) & 0xffff,
				MaxDatagram: 65536,
			}
			if b := op.arg >> 24; b != 0 {
				syn.MaxDatagram = b * 16
			}
			if op.real {
				syn.Epoch = v.peerEpoch // a retransmission of the real SYN, or its SYNACK
			}
		}
		if op.typ == wire.TypeSyn {
			f.Ack = syn.Epoch
			if op.near {
				f.Ack++ // inconsistent with the body: malformed
			}
		} else if op.real {
			f.Ack = v.myEpoch + 1
		}
		payload = wire.AppendSyn(nil, syn)
		if len(op.body) > wire.SynLen {
			payload = append(payload, op.body[wire.SynLen:]...) // a later version's extension
		}
	default:
		payload = op.body
	}
	out, err := wire.Append(dg, &f, nil, payload)
	if err != nil {
		return dg
	}
	return out
}

// corruptLast damages the frame at dg[last:] (the whole datagram for a
// truncation).
func corruptLast(dg []byte, last int, op fuzzOp) []byte {
	if len(dg) == 0 || len(dg)-last < transport.FrameHeaderLen+wire.HeaderLen {
		return dg
	}
	fr := dg[last:]
	ne := binary.NativeEndian
	reseal := func() {
		if transport.FrameHeaderLen+int(ne.Uint16(fr[32:])) <= len(fr) {
			wire.Seal(fr)
		}
	}
	p := op.param
	switch op.corrupt {
	case 1: // truncated
		return dg[:max(1, len(dg)-1-3*p)]
	case 2: // nlmsg_len lies
		ne.PutUint32(fr[0:], uint32(int(ne.Uint32(fr[0:]))+p-16))
	case 3: // cn_msg.len lies, CRC consistent with the lie where it can be
		ne.PutUint16(fr[32:], uint16(max(0, int(ne.Uint16(fr[32:]))+p-16)))
		reseal()
	case 4: // a bit flipped
		i := (p * 7) % len(fr)
		fr[i] ^= 1 << (p % 8)
	case 5: // another protocol version
		fr[transport.FrameHeaderLen] = byte(p)
		if p == wire.Version {
			fr[transport.FrameHeaderLen] = 2
		}
		reseal()
	case 6: // not NLMSG_DONE
		ne.PutUint16(fr[4:], uint16(p))
		if p == transport.NlmsgDone {
			ne.PutUint16(fr[4:], 0x10)
		}
	case 7: // unknown frame type
		fr[transport.FrameHeaderLen+1] = byte(8 + p)
		if p == 31 {
			fr[transport.FrameHeaderLen+1] = 0
		}
		reseal()
	}
	return dg
}

// classify parses a datagram from the peer's port as B's engine will and
// records what in it is authentic: the malicious peer's frames that carry
// the session's real epochs.
func (r *fuzzRun) classify(dg []byte) {
	if len(dg) > r.maxDgram {
		return // B drops it whole (truncated)
	}
	b := bytes.Clone(dg)
	var rd wire.Reader
	rd.Reset(b)
	for rd.Next() {
		f, err := rd.Frame()
		if err != nil || f.ID != DefaultChannel {
			continue
		}
		realA, realB1 := r.va.myEpoch, r.vb.myEpoch+1
		taint := func(t *bool, why string) {
			*t = true
			if !slices.Contains(r.taintWhy, why) {
				r.taintWhy = append(r.taintWhy, why)
			}
		}
		switch f.Header.Type {
		case wire.TypeSyn:
			if syn, err := wire.ParseSyn(f.Body); err == nil && f.Ack == syn.Epoch && syn.Epoch != 0 && syn.Epoch != realA {
				taint(&r.tEnd, "SYN with a new epoch")
			}
		case wire.TypeSynAck:
			if syn, err := wire.ParseSyn(f.Body); err == nil && f.Ack == realB1 && syn.Epoch != realA {
				taint(&r.tEnd, "SYNACK with another epoch")
			}
		case wire.TypeData, wire.TypeReply:
			authentic := f.Header.Type == wire.TypeData && f.Ack == realA || f.Header.Type == wire.TypeReply && f.Ack == realB1
			if authentic && len(f.Body) > fuzzMaxMsg {
				// Above the max_message B announced: B ends the
				// session with RST 6 (ErrProtocol).
				taint(&r.tEnd, "message over max_message")
			}
			if f.Header.Type == wire.TypeData && f.Ack == realA && len(f.Body) <= fuzzMaxMsg {
				k := forgedData
				switch {
				case f.Header.Flags&wire.FlagFin != 0:
					k = forgedFin
					taint(&r.tEnd, "FIN")
				case f.Header.Flags&wire.FlagRequest != 0:
					k = forgedRequest
				}
				taint(&r.tFwd, "DATA")
				r.addForged(f.Body, f.Seq, k)
			}
			if f.Header.Type == wire.TypeReply && f.Ack == realB1 && len(f.Body) <= fuzzMaxMsg {
				// FIN means nothing on a REPLY (PROTOCOL.md §2).
				taint(&r.tFwd, "REPLY")
				r.addForged(f.Body, f.Header.Arg, forgedReply)
				r.replies[int(int32(f.Header.Arg-r.va.myISN))] = true
			}
		case wire.TypeAck:
			var a wire.Ack
			if f.Ack == realB1 && wire.ParseAck(f.Body, &a) == nil {
				taint(&r.tRev, "ACK")
			}
		case wire.TypeRst:
			if f.Ack == realB1 {
				taint(&r.tEnd, "RST")
			}
		}
	}
}

func (r *fuzzRun) addForged(body []byte, dsn uint32, k forgedKind) {
	key := string(body)
	r.forged[key] = append(r.forged[key], fuzzForged{off: int(int32(dsn - r.va.myISN)), kind: k})
}

// drain reads what the applications were given (B's unless paused) and
// checks every item.
func (r *fuzzRun) drain() {
	for {
		select {
		case b := <-r.sa.Recv():
			if err := checkMsg(b, fuzzRevBase+r.recvA, r.size); err != nil {
				r.fatalf("A received reverse message #%d wrong: %v (%x)", r.recvA, err, b[:min(len(b), 16)])
			}
			r.recvA++
			continue
		case q := <-r.sa.Requests():
			r.fatalf("A received a request %x: B never sends one", q.Data[:min(len(q.Data), 16)])
		default:
		}
		break
	}
	if r.paused {
		return
	}
	r.drainRecvB()
	for {
		select {
		case q := <-r.sb.Requests():
			r.gotB(q.Data, true)
			// Everything ahead of the request is in Recv's buffer now.
			r.drainRecvB()
			r.reqSeen = append(r.reqSeen, len(r.recvOffs))
			if r.reply {
				_ = q.Reply(r.done, []byte("fuzz reply"))
			}
			continue
		default:
		}
		return
	}
}

func (r *fuzzRun) drainRecvB() {
	for {
		select {
		case b := <-r.sb.Recv():
			r.gotB(b, false)
			continue
		default:
		}
		return
	}
}

// gotB checks one item B's application received.
func (r *fuzzRun) gotB(b []byte, req bool) {
	r.readB++
	off := -1
	if len(b) >= 8 {
		if i := binary.LittleEndian.Uint64(b); i < uint64(r.n) && bytes.Equal(b, msg(int(i), r.size)) {
			off = int(i)
			if req {
				r.fatalf("legitimate message %d delivered as a request", i)
			}
			r.legitB++
		}
	}
	offs := &r.recvOffs
	if req {
		offs = &r.reqOffs
	}
	prev := -1
	if len(*offs) > 0 {
		prev = (*offs)[len(*offs)-1]
	}
	if off < 0 {
		want := forgedData
		if req {
			want = forgedRequest
		}
		for _, c := range r.forged[string(b)] {
			if c.kind == want && c.off > prev && !r.seenOff[c.off] && (off < 0 || c.off < off) {
				off = c.off
			}
		}
		if off < 0 {
			kinds := []string{}
			for _, c := range r.forged[string(b)] {
				kinds = append(kinds, fmt.Sprintf("%d@%d", c.kind, c.off))
			}
			r.fatalf("B's application received (request=%v) %d bytes %x that neither A nor an authentic forged frame sent at a DSN after %d (forged candidates %v)",
				req, len(b), b[:min(len(b), 24)], prev, kinds)
		}
	}
	if off <= prev {
		r.fatalf("B received offset %d after %d (request=%v): out of order or duplicated", off, prev, req)
	}
	if r.seenOff[off] {
		r.fatalf("B received offset %d twice", off)
	}
	r.seenOff[off] = true
	*offs = append(*offs, off)
}

// settle lets time pass, sending and draining, until cond holds or limit
// passes; it reports whether cond held.
func (r *fuzzRun) settle(limit time.Duration, send bool, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	step := 100 * time.Microsecond
	for {
		if send {
			r.trySend(r.n, r.m)
			synctest.Wait()
		}
		r.drain()
		synctest.Wait()
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(step)
		synctest.Wait()
		step = min(2*step, time.Second)
	}
}

func ended(s *Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// finish stops the injections and checks the end states.
func (r *fuzzRun) finish() {
	r.paused = false
	start := time.Now()
	fwdDone := func() bool {
		if r.sentA < r.n {
			return false
		}
		for k := range r.n {
			if !r.seenOff[k] && !r.replies[k] {
				return false
			}
		}
		return true
	}
	revDone := func() bool { return r.sentB == r.m && r.recvA == r.m }
	r.settle(30*time.Second, true, func() bool {
		if r.sa.Err() != nil || r.sb.Err() != nil {
			return true
		}
		// A tainted direction may never complete: give it 2s.
		grace := time.Since(start) >= 2*time.Second
		return (fwdDone() || r.tFwd && grace) && (revDone() || r.tRev && grace)
	})
	r.logf("finish: fwd=%v rev=%v errA=%v errB=%v", fwdDone(), revDone(), r.sa.Err(), r.sb.Err())
	if !r.tEnd {
		if err := r.sa.Err(); err != nil {
			r.fatalf("no authentic frame could end it, yet A's session ended: %v", err)
		}
		if err := r.sb.Err(); err != nil {
			r.fatalf("no authentic frame could end it, yet B's session ended: %v", err)
		}
		if !r.tFwd && (!fwdDone() || r.legitB != r.n || len(r.recvOffs) != r.n || len(r.reqOffs) != 0) {
			r.fatalf("A→B untouched by authentic frames, yet incomplete 30s after the injections stopped")
		}
		if !r.tRev && !revDone() {
			r.fatalf("B→A untouched by authentic ACKs, yet incomplete 30s after the injections stopped")
		}
	}
	for _, s := range []*Session{r.sa, r.sb} {
		if err := s.Err(); err != nil && !isPeerEnd(err) {
			r.fatalf("session ended with %v: not ErrPeerReset, ErrPeerGone, ErrPeerClosed or ErrProtocol", err)
		}
	}

	// A closes gracefully; B's application keeps reading meanwhile.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		r.closeErrA = r.sa.Close()
	}()
	if !r.settle(r.p.a.cfg.CloseTimeout+10*time.Second, false, func() bool {
		select {
		case <-closed:
			return ended(r.sb)
		default:
			return false
		}
	}) {
		select {
		case <-closed:
			r.fatalf("B's session still open 10s after A's Close returned %v", r.closeErrA)
		default:
			r.fatalf("A's Close still blocked after CloseTimeout+10s")
		}
	}
	r.drain() // messages that arrived before the end stay readable
	errA, errB := r.closeErrA, r.sb.Err()
	r.logf("closed: Close=%v errB=%v", errA, errB)
	if !r.tFwd && !r.tEnd {
		if errA != nil {
			r.fatalf("A's Close returned %v, want nil", errA)
		}
		if !errors.Is(errB, ErrPeerClosed) {
			r.fatalf("B ended with %v, want ErrPeerClosed", errB)
		}
	} else {
		if errA != nil && !isPeerEnd(errA) && !errors.Is(errA, ErrTimeout) {
			r.fatalf("A's Close returned %v", errA)
		}
		if !isPeerEnd(errB) {
			r.fatalf("B ended with %v", errB)
		}
	}
	if errors.Is(errB, ErrPeerClosed) && errA != nil && !errors.Is(errA, ErrPeerClosed) && !r.tFwd {
		// B saw a FIN that A's Close did not send successfully: only a
		// forged one can explain it. (Forged DATA can: beyond A's next
		// DSN, it makes B acknowledge past what A sent, so that A ignores
		// the acknowledgement of its real FIN and times out.)
		r.fatalf("B ended with ErrPeerClosed, A's Close returned %v, and no FIN was forged", errA)
	}

	// The accounting, once Done is closed.
	stA, stB := r.sa.Stats(), r.sb.Stats()
	if stA.Received != stA.Delivered+stA.Undelivered {
		r.fatalf("A: Received %d != Delivered %d + Undelivered %d", stA.Received, stA.Delivered, stA.Undelivered)
	}
	if stB.Received != stB.Delivered+stB.Undelivered {
		r.fatalf("B: Received %d != Delivered %d + Undelivered %d", stB.Received, stB.Delivered, stB.Undelivered)
	}
	if stB.Delivered != uint64(r.readB) {
		r.fatalf("B: Delivered %d, its application read %d", stB.Delivered, r.readB)
	}
	if stB.Undelivered > uint64(len(r.replies)) {
		r.fatalf("B: %d Undelivered, only %d forged REPLYs could be", stB.Undelivered, len(r.replies))
	}
	// Requests were handed over only after what preceded them in Recv.
	for i, k := range r.reqOffs {
		if seen := r.reqSeen[i]; seen < len(r.recvOffs) && r.recvOffs[seen] < k {
			r.fatalf("request at offset %d read before message at offset %d reached Recv", k, r.recvOffs[seen])
		}
	}
	if fuzzTrace {
		r.t.Logf("n=%d m=%d size=%d window=%d taint fwd=%v rev=%v end=%v %q recvB=%v reqB=%v recvA=%d\nA %+v\nB %+v\nendpoint B %+v%s",
			r.n, r.m, r.size, r.window, r.tFwd, r.tRev, r.tEnd, r.taintWhy, r.recvOffs, r.reqOffs, r.recvA,
			stA, stB, r.p.b.Stats(), r.trace())
	}
}

// fuzzTrace, set by CNLINK_FUZZ_TRACE=1, logs every execution's
// operations and outcome (with -v): for reading a crasher or a seed.
var fuzzTrace = os.Getenv("CNLINK_FUZZ_TRACE") != ""

func isPeerEnd(err error) bool {
	return errors.Is(err, ErrPeerReset) || errors.Is(err, ErrPeerGone) || errors.Is(err, ErrPeerClosed) || errors.Is(err, ErrProtocol)
}

// fuzzEndpointSeeds are inputs that reach the interesting states at once.
func fuzzEndpointSeeds() [][]byte {
	cfg := func(c0, n, c2 byte) []byte { return []byte{c0, n, c2, 0} }
	seed := func(c []byte, ops ...fuzzOp) []byte {
		for _, op := range ops {
			c = append(c, op.encode()...)
		}
		return c
	}
	w16 := byte(2) | 1<<2 | 2<<4 // window 16, 40-byte messages, RecvBuffer 16
	w4 := byte(0) | 1<<2 | 0<<4  // window 4, RecvBuffer 1
	flow := fuzzOp{sendA: 8, sendB: 2, adv: 10}
	data := func(delta int16, flags uint16) fuzzOp {
		return fuzzOp{typ: wire.TypeData, real: true, near: true, seq: uint32(uint16(delta)), hflags: flags, sendA: 2, body: []byte("forged"), adv: 5}
	}
	ack := func(cum, limit int16, ranges ...int8) fuzzOp {
		body := make([]byte, 0, 2*len(ranges))
		for _, r := range ranges {
			body = append(body, byte(r))
		}
		return fuzzOp{typ: wire.TypeAck, real: true, near: true, arg: uint32(uint16(cum)) | uint32(uint16(limit))<<16, body: body, sendB: 3, adv: 3}
	}
	many := make([]int8, 80)
	for i := range many {
		many[i] = int8(i % 7)
	}
	beyond := []int8{20, 3, 40, 10, 90, 5}
	return [][]byte{
		// Legitimate traffic only.
		seed(cfg(w16, 40, 8), flow, flow, flow),
		// Valid DATA with the right epoch beyond the window, at it, and at
		// the next DSN (substitution: the malicious peer's right).
		seed(cfg(w16, 30, 0), flow, data(100, 0), data(16, 0), data(15, 0), data(0, 0), data(1, 0), flow),
		seed(cfg(w4, 20, 0|1<<4), data(2, wire.FlagRequest), data(0, 0), data(1, wire.FlagRequest), flow, flow),
		// FIN early; FIN right at the cumulative ack.
		seed(cfg(w16, 30, 0), flow, data(3, wire.FlagFin), flow, flow),
		seed(cfg(w16, 30, 0), flow, data(0, wire.FlagFin), flow),
		// ACK with 40 ranges (more than MaxRanges); SACK beyond Next;
		// limit far beyond; limit behind.
		seed(cfg(w16, 10, 15), flow, ack(0, 16, many...), flow),
		seed(cfg(w16, 10, 15), flow, ack(1, 16, beyond...), flow, ack(0, 16, 1, 1), flow),
		seed(cfg(w16, 10, 15), flow, ack(0, 30000), flow, ack(0, -5), flow, ack(200, 0), flow),
		// STATUS_REQ bursts, coalesced and as separate datagrams.
		seed(cfg(w16, 40, 8), flow,
			fuzzOp{typ: wire.TypePing, real: true, near: true, hflags: wire.FlagStatusReq, copies: 8, sendA: 4, sendB: 2},
			fuzzOp{typ: wire.TypePing, real: true, near: true, hflags: wire.FlagStatusReq, copies: 8, flood: true, mult: 3, adv: 1},
			fuzzOp{typ: wire.TypeAck, real: true, near: true, hflags: wire.FlagStatusReq, copies: 4, flood: true},
			flow),
		// RST with the right and the wrong ack.
		seed(cfg(w16, 20, 4), flow, fuzzOp{typ: wire.TypeRst, ack: 12345, arg: wire.RstAbort}, flow,
			fuzzOp{typ: wire.TypeRst, real: true, near: true, arg: wire.RstAbort}, flow),
		// SYN with a new epoch from the peer's port; a retransmission of
		// the real SYN; a SYNACK with another epoch.
		seed(cfg(w16, 20, 4), flow, fuzzOp{typ: wire.TypeSyn, ack: 0x1234567, arg: 16 | 1024<<8}, flow),
		seed(cfg(w16, 20, 4), flow, fuzzOp{typ: wire.TypeSyn, real: true, arg: 16 | 1024<<8}, flow,
			fuzzOp{typ: wire.TypeSynAck, real: true, ack: 1, arg: 16 | 1024<<8}, flow),
		// The same from third ports and the kernel, and on another channel.
		seed(cfg(w16, 20, 4), flow,
			fuzzOp{typ: wire.TypeSyn, src: srcUnheld, ack: 77, arg: 16 | 1024<<8},
			fuzzOp{typ: wire.TypeSyn, src: srcHeld, ack: 78, arg: 16 | 1024<<8, copies: 8, flood: true, mult: 2},
			fuzzOp{typ: wire.TypeData, src: srcHeld, real: true, near: true, copies: 8, flood: true, mult: 15},
			fuzzOp{typ: wire.TypeData, src: srcKernel, real: true, near: true, copies: 8, flood: true, mult: 15},
			fuzzOp{typ: wire.TypeRst, src: srcUnheld, real: true},
			fuzzOp{typ: wire.TypeData, otherCh: true, real: true, near: true},
			fuzzOp{typ: wire.TypeSyn, otherCh: true, ack: 79, arg: 16 | 1024<<8},
			flow, flow),
		// Wrong epoch from the peer's port: B answers with an RST that A
		// must not take for its own.
		seed(cfg(w16, 20, 4), flow, fuzzOp{typ: wire.TypeData, near: true, ack: 99}, fuzzOp{typ: wire.TypePing, ack: 98}, flow),
		// A forged REPLY.
		seed(cfg(w16, 20, 4), flow, fuzzOp{typ: wire.TypeReply, real: true, near: true, arg: 1, body: []byte("r")}, flow),
		// Truncated frames, lying lengths, bad CRC, version, types.
		seed(cfg(w16, 20, 4), flow,
			fuzzOp{typ: wire.TypeData, real: true, near: true, corrupt: 1, param: 3, copies: 2},
			fuzzOp{typ: wire.TypeData, real: true, near: true, corrupt: 2, param: 20},
			fuzzOp{typ: wire.TypeData, real: true, near: true, corrupt: 3, param: 4, body: []byte("lying length")},
			fuzzOp{typ: wire.TypeAck, real: true, corrupt: 3, param: 30, body: make([]byte, 12)},
			fuzzOp{typ: wire.TypeAck, real: true, body: []byte{0, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0}},
			fuzzOp{typ: wire.TypeData, real: true, near: true, corrupt: 4, param: 9},
			fuzzOp{typ: wire.TypeData, real: true, near: true, corrupt: 5, param: 2},
			fuzzOp{typ: wire.TypeData, real: true, near: true, corrupt: 6, param: 1},
			fuzzOp{typ: wire.TypeData, real: true, near: true, corrupt: 7, param: 0},
			fuzzOp{typ: wire.TypeData, real: true, near: true, big: true},
			fuzzOp{typ: wire.TypeData, real: true, near: true, big: true, copies: 2},
			fuzzOp{typ: wire.TypeData, real: true, near: true, group: true},
			fuzzOp{typ: wire.TypeData, real: true, near: true, copies: 8, body: make([]byte, 200)},
			flow),
		// A paused reader: zero window, probes, forged data at its edge,
		// long silences.
		seed(cfg(w4, 30, 0), fuzzOp{sendA: 15, pause: true, adv: 100}, data(3, 0), data(4, 0),
			fuzzOp{sendA: 15, adv: 200}, fuzzOp{pause: true, adv: 255}, flow),
		// Small queues: EAGAIN and overruns from a kernel flood.
		seed(cfg(w16|1<<7, 40, 4|1<<5|1<<6), flow,
			fuzzOp{typ: wire.TypeData, src: srcKernel, copies: 8, flood: true, mult: 15, sendA: 8},
			fuzzOp{typ: wire.TypePing, real: true, copies: 8, flood: true, mult: 15, sendA: 8, sendB: 3},
			flow, flow),
	}
}
