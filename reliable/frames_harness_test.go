package reliable

// Frame-level test harness, in the manner of golang.org/x/net/quic's
// testConn: one real Endpoint under test, and a raw memnet Conn playing a
// scripted peer that writes hand-made frames and asserts exactly the frames
// the endpoint answers with.
//
// Everything runs inside a testing/synctest bubble, so time is synthetic:
// the endpoint's timers fire only when the test lets time pass (advance,
// advanceUntilFrame, wantIdle), and every received frame is stamped with
// the exact synthetic instant it was sent at.
//
// Values in failure messages are printed symbolically where the harness
// knows their base: P and Q are the scripted peer's epoch and ISN, E and I
// the endpoint's (learnt from its SYN or SYNACK), so "ack=P+1 cum=Q+3"
// reads as the protocol tables in docs/PROTOCOL.md do.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
	"github.com/cnlink/cnlink/window"
)

const (
	// The scripted peer's epoch and ISN. The ISN sits just below the u32
	// wrap so that any test sending more than a few messages crosses it.
	tcPeerEpoch = 0x5eed0001
	tcPeerISN   = 0xfffffffd

	// tcIdle is how long wantIdle listens. It is shorter than every engine
	// timer at its smallest (RACK's 100µs reordering window, the 200µs RTO
	// floor, the ~1ms first SYN retransmission), so that silence means
	// "did not answer", not "no timer happened to fire".
	tcIdle = 50 * time.Microsecond
)

// testConn is one endpoint under test and the scripted peer.
type testConn struct {
	t     *testing.T
	net   *memnet.Network
	ep    *Endpoint
	peer  *memnet.Conn
	ch    transport.CbID
	start time.Time

	// What the scripted peer announces in its SYN/SYNACK. Tests may change
	// it before the handshake.
	peerSyn wire.Syn

	// The endpoint's epoch and ISN, learnt from its SYN or SYNACK.
	epEpoch, epISN uint32
	known          bool

	mu       sync.Mutex
	pending  []*tcFrame    // received, not yet asserted
	arrived  chan struct{} // cap 1: a datagram arrived
	datagram int           // datagrams received so far
}

// tcFrame is one frame the endpoint sent, decoded.
type tcFrame struct {
	at       time.Duration // synthetic time since the harness started
	dgram    int           // index of the datagram that carried it
	dgramLen int           // that datagram's length in bytes
	wire.Parsed
	syn *wire.Syn // SYN, SYNACK
	ack *wire.Ack // ACK
}

// newTestConn starts an endpoint with cfg (nil means a small Window of 16,
// which keeps the numbers in failure messages short) and a scripted peer on
// the same in-memory network. Call it inside synctest.Test.
func newTestConn(t *testing.T, cfg *Config) *testConn {
	return newTestConnNet(t, memnet.Config{}, cfg)
}

// newTestConnNet is newTestConn with a network configuration (credentials).
func newTestConnNet(t *testing.T, ncfg memnet.Config, cfg *Config) *testConn {
	t.Helper()
	if cfg == nil {
		cfg = &Config{Window: 16}
	}
	tc := &testConn{
		t:       t,
		net:     memnet.New(ncfg),
		ch:      DefaultChannel,
		start:   time.Now(),
		arrived: make(chan struct{}, 1),
		peerSyn: wire.Syn{Epoch: tcPeerEpoch, ISN: tcPeerISN, Window: 64, MaxMessage: 4096, MaxDatagram: 65536},
	}
	epConn, err := tc.net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if tc.ep, err = NewEndpoint(epConn, cfg); err != nil {
		t.Fatal(err)
	}
	if tc.peer, err = tc.net.Open(0); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go tc.reader(done)
	t.Cleanup(func() {
		tc.ep.Close()
		tc.peer.Close()
		<-done
	})
	return tc
}

// reader receives the endpoint's datagrams for the scripted peer and
// stamps every frame with the synthetic time it arrived at.
func (tc *testConn) reader(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1<<16)
	for {
		p, err := tc.peer.Receive(buf)
		if err != nil {
			return
		}
		at := time.Since(tc.start)
		tc.mu.Lock()
		n := tc.datagram
		tc.datagram++
		var r wire.Reader
		r.Reset(p.Data)
		for r.Next() {
			f, err := r.Frame()
			if err != nil {
				tc.t.Errorf("endpoint sent an undecodable frame at %v: %v", at, err)
				continue
			}
			fr := tcDecode(at, n, *f, tc.t)
			fr.dgramLen = len(p.Data)
			tc.pending = append(tc.pending, fr)
		}
		if err := r.Err(); err != nil {
			tc.t.Errorf("endpoint sent a malformed datagram at %v: %v", at, err)
		}
		tc.mu.Unlock()
		select {
		case tc.arrived <- struct{}{}:
		default:
		}
	}
}

func tcDecode(at time.Duration, dgram int, f wire.Parsed, t *testing.T) *tcFrame {
	r := &tcFrame{at: at, dgram: dgram, Parsed: f}
	r.Body = slices.Clone(f.Body) // f aliases the receive buffer
	switch f.Header.Type {
	case wire.TypeSyn, wire.TypeSynAck:
		if s, err := wire.ParseSyn(r.Body); err == nil {
			r.syn = &s
		} else {
			t.Errorf("endpoint sent %v with a bad body: %v", f.Header.Type, err)
		}
	case wire.TypeAck:
		var a wire.Ack
		if err := wire.ParseAck(r.Body, &a); err == nil {
			r.ack = &a
		} else {
			t.Errorf("endpoint sent ACK with a bad body: %v", err)
		}
	}
	return r
}

// ---- time ----

// advance lets d of synthetic time pass, then lets the bubble settle.
func (tc *testConn) advance(d time.Duration) {
	tc.t.Helper()
	time.Sleep(d)
	synctest.Wait()
}

// advanceUntilFrame lets time pass until the endpoint sends something or
// max has passed, whichever is first; it returns the time waited. Frames
// sent at that instant are all pending when it returns.
func (tc *testConn) advanceUntilFrame(max time.Duration) time.Duration {
	tc.t.Helper()
	synctest.Wait()
	select {
	case <-tc.arrived: // stale: everything so far is in pending already
	default:
	}
	if tc.numPending() > 0 {
		return 0
	}
	start := time.Now()
	timer := time.NewTimer(max)
	defer timer.Stop()
	select {
	case <-tc.arrived:
	case <-timer.C:
	}
	synctest.Wait()
	return time.Since(start)
}

func (tc *testConn) now() time.Duration { return time.Since(tc.start) }

// ---- writing frames as the scripted peer ----

// tcOut is a frame the scripted peer sends; build it with the helpers
// below and adjust it with the with* methods.
type tcOut struct {
	f       wire.Frame
	body    []byte
	payload []byte
}

func (o tcOut) withSeq(v uint32) tcOut   { o.f.Seq = v; return o }
func (o tcOut) withAck(v uint32) tcOut   { o.f.Ack = v; return o }
func (o tcOut) withArg(v uint32) tcOut   { o.f.Arg = v; return o }
func (o tcOut) withFlags(v uint16) tcOut { o.f.Flags |= v; return o }
func (o tcOut) withBody(b []byte) tcOut  { o.body = b; return o }

// syn is the peer's SYN: seq = ISN, ack = epoch, body = peerSyn.
func (tc *testConn) syn() tcOut {
	s := tc.peerSyn
	return tcOut{f: wire.Frame{ID: tc.ch, Seq: s.ISN, Ack: s.Epoch, Type: wire.TypeSyn}, body: wire.AppendSyn(nil, s)}
}

// synAck answers the endpoint's SYN: seq = I, ack = E + 1.
func (tc *testConn) synAck() tcOut {
	return tcOut{f: wire.Frame{ID: tc.ch, Seq: tc.epISN, Ack: tc.epEpoch + 1, Type: wire.TypeSynAck}, body: wire.AppendSyn(nil, tc.peerSyn)}
}

// data is a DATA frame of the peer's stream: seq = dsn, ack = P.
func (tc *testConn) data(dsn uint32, payload string) tcOut {
	return tcOut{f: wire.Frame{ID: tc.ch, Seq: dsn, Ack: tc.peerSyn.Epoch, Type: wire.TypeData}, payload: []byte(payload)}
}

// fin is the peer's FIN at dsn.
func (tc *testConn) fin(dsn uint32) tcOut { return tc.data(dsn, "").withFlags(wire.FlagFin) }

// ping is a PING from the peer: seq = its next DSN, ack = P.
func (tc *testConn) ping(next uint32) tcOut {
	return tcOut{f: wire.Frame{ID: tc.ch, Seq: next, Ack: tc.peerSyn.Epoch, Type: wire.TypePing}}
}

// ackOf acknowledges the endpoint's stream: arg = cum, ack = E + 1, seq =
// cum - 1 (the newest DSN it answers; the endpoint does not check it).
func (tc *testConn) ackOf(cum, limit uint32, sack ...wire.Range) tcOut {
	body := wire.AppendAck(nil, &wire.Ack{Limit: limit, Ranges: sack})
	return tcOut{f: wire.Frame{ID: tc.ch, Seq: cum - 1, Ack: tc.epEpoch + 1, Type: wire.TypeAck, Arg: cum}, body: body}
}

// rst resets the session: ack = E + 1.
func (tc *testConn) rst(seq, reason uint32) tcOut {
	return tcOut{f: wire.Frame{ID: tc.ch, Seq: seq, Ack: tc.epEpoch + 1, Type: wire.TypeRst, Arg: reason}}
}

// write sends the frames in one datagram from the scripted peer and lets
// the endpoint process it.
func (tc *testConn) write(frames ...tcOut) {
	tc.t.Helper()
	tc.writeFrom(tc.peer, frames...)
}

// writeFrom sends the frames in one datagram from another Conn.
func (tc *testConn) writeFrom(c *memnet.Conn, frames ...tcOut) {
	tc.t.Helper()
	if err := c.Send(transport.Addr{Port: tc.ep.LocalPort()}, tc.encode(frames...)); err != nil {
		tc.t.Fatalf("sending to the endpoint: %v", err)
	}
	synctest.Wait()
}

// encode builds one datagram of the frames.
func (tc *testConn) encode(frames ...tcOut) []byte {
	tc.t.Helper()
	var b []byte
	for _, o := range frames {
		var err error
		if b, err = wire.Append(b, &o.f, o.body, o.payload); err != nil {
			tc.t.Fatalf("encoding %v: %v", o.f.Type, err)
		}
	}
	return b
}

// ---- asserting the endpoint's frames ----

// frameCheck inspects one received frame and describes what is wrong with it
// ("" when nothing is).
type frameCheck func(tc *testConn, f *tcFrame) string

func hasSeq(v uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string { return tc.cmp("seq", f.Seq, v) }
}

func hasAck(v uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string { return tc.cmp("ack", f.Ack, v) }
}

// hasArg checks the header's arg: the cumulative ack of an ACK, the reason
// of a RST, the DSN of a REPLY.
func hasArg(v uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string { return tc.cmp("arg", f.Header.Arg, v) }
}

func hasCum(v uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string { return tc.cmp("cum", f.Header.Arg, v) }
}

func hasReason(v uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if f.Header.Arg != v {
			return fmt.Sprintf("reason %s, want %s", tcRstName(f.Header.Arg), tcRstName(v))
		}
		return ""
	}
}

// hasFlags checks the flags exactly.
func hasFlags(v uint16) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if f.Header.Flags != v {
			return fmt.Sprintf("flags %s, want %s", tcFlagNames(f.Header.Flags), tcFlagNames(v))
		}
		return ""
	}
}

func hasLimit(v uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if f.ack == nil {
			return "no ack body"
		}
		return tc.cmp("limit", f.ack.Limit, v)
	}
}

// hasSack checks the SACK ranges exactly, in order (none given: no SACK).
func hasSack(rs ...wire.Range) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if f.ack == nil {
			return "no ack body"
		}
		if !slices.Equal(f.ack.Ranges, rs) {
			return fmt.Sprintf("sack %s, want %s", tc.ranges(f.ack.Ranges), tc.ranges(rs))
		}
		return ""
	}
}

// hasDup checks DUP_VALID and the duplicate DSN reported.
func hasDup(v uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if f.ack == nil {
			return "no ack body"
		}
		if f.Header.Flags&wire.FlagDupValid == 0 {
			return fmt.Sprintf("no DUP_VALID, want dup=%s", tc.sym(v))
		}
		return tc.cmp("dup", f.ack.Dup, v)
	}
}

func hasPayload(p string) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if string(f.Body) != p {
			return fmt.Sprintf("payload %q, want %q", f.Body, p)
		}
		return ""
	}
}

// hasSynParams checks the limits a SYN or SYNACK announces.
func hasSynParams(window, maxMsg, maxDgram uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if f.syn == nil {
			return "no syn body"
		}
		if f.syn.Window != window || f.syn.MaxMessage != maxMsg || f.syn.MaxDatagram != maxDgram {
			return fmt.Sprintf("syn limits window=%d max_message=%d max_datagram=%d, want %d %d %d",
				f.syn.Window, f.syn.MaxMessage, f.syn.MaxDatagram, window, maxMsg, maxDgram)
		}
		return ""
	}
}

// hasBody checks the body bytes exactly (a SYNACK sent again, say).
func hasBody(b []byte) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if string(f.Body) != string(b) {
			return fmt.Sprintf("body %x, want %x", f.Body, b)
		}
		return ""
	}
}

// hasSynIdentity checks the epoch and ISN a SYN or SYNACK announces.
func hasSynIdentity(epoch, isn uint32) frameCheck {
	return func(tc *testConn, f *tcFrame) string {
		if f.syn == nil {
			return "no syn body"
		}
		if f.syn.Epoch != epoch || f.syn.ISN != isn {
			return fmt.Sprintf("syn epoch=%s isn=%s, want %s %s", tc.sym(f.syn.Epoch), tc.sym(f.syn.ISN), tc.sym(epoch), tc.sym(isn))
		}
		return ""
	}
}

func (tc *testConn) cmp(name string, got, want uint32) string {
	if got != want {
		return fmt.Sprintf("%s=%s, want %s", name, tc.sym(got), tc.sym(want))
	}
	return ""
}

// wantFrame asserts that the next frame the endpoint sent (already, at
// the current instant or earlier) has type typ and passes every check.
func (tc *testConn) wantFrame(desc string, typ wire.Type, checks ...frameCheck) *tcFrame {
	tc.t.Helper()
	synctest.Wait()
	f := tc.pop()
	if f == nil {
		tc.t.Fatalf("%s: the endpoint sent nothing; want %v", desc, typ)
	}
	tc.expect(desc, f, typ, checks...)
	return f
}

// expect asserts that f, a frame already taken, has type typ and passes
// every check.
func (tc *testConn) expect(desc string, f *tcFrame, typ wire.Type, checks ...frameCheck) {
	tc.t.Helper()
	if problems := tc.problems(f, typ, checks); problems != "" {
		tc.t.Fatalf("%s:\n  got  %s\n  but  %s%s", desc, tc.describe(f), problems, tc.rest())
	}
}

// frameWant is one expected frame for wantFrames.
type frameWant struct {
	typ    wire.Type
	checks []frameCheck
}

func frameWantOf(typ wire.Type, checks ...frameCheck) frameWant { return frameWant{typ, checks} }

// wantFrames asserts that the next len(ws) frames are ws in any order:
// the protocol does not order frames answered in one turn (retransmissions
// and the ACK of a STATUS_REQ, say).
func (tc *testConn) wantFrames(desc string, ws ...frameWant) []*tcFrame {
	tc.t.Helper()
	synctest.Wait()
	var got []*tcFrame
	for range ws {
		f := tc.pop()
		if f == nil {
			break
		}
		got = append(got, f)
	}
	used := make([]bool, len(got))
	var missing []string
	for _, w := range ws {
		found := false
		for i, f := range got {
			if !used[i] && tc.problems(f, w.typ, w.checks) == "" {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, w.typ.String())
		}
	}
	if len(missing) > 0 {
		var b strings.Builder
		for _, f := range got {
			fmt.Fprintf(&b, "\n  got  %s", tc.describe(f))
		}
		tc.t.Fatalf("%s: no frame matches the expected %s among the next %d:%s%s", desc, strings.Join(missing, ", "), len(ws), b.String(), tc.rest())
	}
	return got
}

// wantIdle asserts that the endpoint sends nothing for tcIdle.
func (tc *testConn) wantIdle(desc string) {
	tc.t.Helper()
	tc.wantIdleFor(desc, tcIdle)
}

// wantIdleFor asserts that the endpoint sends nothing for d.
func (tc *testConn) wantIdleFor(desc string, d time.Duration) {
	tc.t.Helper()
	tc.advance(d)
	if f := tc.pop(); f != nil {
		tc.t.Fatalf("%s: want no frame for %v, got\n  %s%s", desc, d, tc.describe(f), tc.rest())
	}
}

// takeFrames returns and forgets every pending frame.
func (tc *testConn) takeFrames() []*tcFrame {
	synctest.Wait()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	fs := tc.pending
	tc.pending = nil
	return fs
}

func (tc *testConn) pop() *tcFrame {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.pending) == 0 {
		return nil
	}
	f := tc.pending[0]
	tc.pending = tc.pending[1:]
	return f
}

func (tc *testConn) numPending() int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return len(tc.pending)
}

func (tc *testConn) problems(f *tcFrame, typ wire.Type, checks []frameCheck) string {
	if f.Header.Type != typ {
		return fmt.Sprintf("type %v, want %v", f.Header.Type, typ)
	}
	if f.ID != tc.ch {
		return fmt.Sprintf("channel %v, want %v", f.ID, tc.ch)
	}
	var ps []string
	for _, c := range checks {
		if p := c(tc, f); p != "" {
			ps = append(ps, p)
		}
	}
	return strings.Join(ps, "; ")
}

// rest lists the frames still pending, for failure messages.
func (tc *testConn) rest() string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.pending) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n  then:")
	for _, f := range tc.pending {
		fmt.Fprintf(&b, "\n       %s", tc.describe(f))
	}
	return b.String()
}

// ---- rendering ----

// sym renders v relative to the epochs and ISNs the harness knows.
func (tc *testConn) sym(v uint32) string {
	type base struct {
		name string
		v    uint32
		ok   bool
	}
	for _, b := range []base{
		{"P", tc.peerSyn.Epoch, true}, {"E", tc.epEpoch, tc.known},
		{"Q", tc.peerSyn.ISN, true}, {"I", tc.epISN, tc.known},
	} {
		if !b.ok {
			continue
		}
		switch d := int32(v - b.v); {
		case d == 0:
			return b.name
		case d > 0 && d <= 1<<16:
			return fmt.Sprintf("%s+%d", b.name, d)
		case d < 0 && d >= -16:
			return fmt.Sprintf("%s%d", b.name, d)
		}
	}
	return fmt.Sprintf("%#x", v)
}

func (tc *testConn) ranges(rs []wire.Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = tc.sym(r.Start) + ".." + tc.sym(r.End)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// describe renders a received frame: type, seq, ack, arg, flags, body.
func (tc *testConn) describe(f *tcFrame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "@%v dgram#%d %v seq=%s ack=%s", f.at, f.dgram, f.Header.Type, tc.sym(f.Seq), tc.sym(f.Ack))
	switch f.Header.Type {
	case wire.TypeAck:
		fmt.Fprintf(&b, " cum=%s", tc.sym(f.Header.Arg))
		if f.ack != nil {
			fmt.Fprintf(&b, " limit=%s sack=%s", tc.sym(f.ack.Limit), tc.ranges(f.ack.Ranges))
			if f.Header.Flags&wire.FlagDupValid != 0 {
				fmt.Fprintf(&b, " dup=%s", tc.sym(f.ack.Dup))
			}
		}
	case wire.TypeRst:
		fmt.Fprintf(&b, " reason=%s", tcRstName(f.Header.Arg))
	case wire.TypeReply:
		fmt.Fprintf(&b, " dsn=%s", tc.sym(f.Header.Arg))
	default:
		if f.Header.Arg != 0 {
			fmt.Fprintf(&b, " arg=%#x", f.Header.Arg)
		}
	}
	if f.Header.Flags != 0 {
		fmt.Fprintf(&b, " flags=%s", tcFlagNames(f.Header.Flags))
	}
	switch {
	case f.syn != nil:
		fmt.Fprintf(&b, " {epoch=%s isn=%s window=%d max_message=%d max_datagram=%d}",
			tc.sym(f.syn.Epoch), tc.sym(f.syn.ISN), f.syn.Window, f.syn.MaxMessage, f.syn.MaxDatagram)
	case f.Header.Type == wire.TypeData || f.Header.Type == wire.TypeReply:
		p := f.Body
		if len(p) > 24 {
			fmt.Fprintf(&b, " %d bytes %q...", len(p), p[:24])
		} else {
			fmt.Fprintf(&b, " %q", p)
		}
	}
	return b.String()
}

func tcFlagNames(v uint16) string {
	if v == 0 {
		return "0"
	}
	var ns []string
	for _, f := range []struct {
		bit  uint16
		name string
	}{{wire.FlagRequest, "REQUEST"}, {wire.FlagFin, "FIN"}, {wire.FlagStatusReq, "STATUS_REQ"}, {wire.FlagDupValid, "DUP_VALID"}} {
		if v&f.bit != 0 {
			ns = append(ns, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		ns = append(ns, fmt.Sprintf("%#x", v))
	}
	return strings.Join(ns, "|")
}

func tcRstName(r uint32) string {
	names := map[uint32]string{
		wire.RstAbort: "abort", wire.RstNoSession: "no-session", wire.RstRefused: "refused",
		wire.RstBadHandsh: "bad-handshake", wire.RstEndpointGo: "endpoint-closing",
		wire.RstProtocol: "protocol-violation",
	}
	if n, ok := names[r]; ok {
		return fmt.Sprintf("%d(%s)", r, n)
	}
	return fmt.Sprint(r)
}

// ---- sessions ----

// learn records the endpoint's epoch and ISN from its SYN or SYNACK.
func (tc *testConn) learn(f *tcFrame) {
	tc.t.Helper()
	if f.syn == nil {
		tc.t.Fatalf("no syn body in %s", tc.describe(f))
	}
	tc.epEpoch, tc.epISN, tc.known = f.syn.Epoch, f.syn.ISN, true
}

// wantPreAcceptAck expects the ACK that travels with the SYNACK of an
// accepted session: the small window (preAcceptCredit messages) of a
// session Accept has not taken yet.
func (tc *testConn) wantPreAcceptAck() *tcFrame {
	tc.t.Helper()
	f := tc.wantFrame("the window before Accept", wire.TypeAck)
	if f.ack == nil || window.Seq(f.ack.Limit).Sub(window.Seq(f.Header.Arg)) != preAcceptCredit {
		tc.t.Fatalf("the ACK with the SYNACK gives a window other than %d messages: %s", preAcceptCredit, tc.describe(f))
	}
	return f
}

// acceptSession opens a session from the scripted peer: SYN, the
// endpoint's SYNACK with the ACK that gives the small window of a session
// not yet accepted, Accept, and the ACK that opens the full window.
func (tc *testConn) acceptSession() *Session {
	tc.t.Helper()
	tc.write(tc.syn())
	P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
	f := tc.wantFrame("the SYN is answered", wire.TypeSynAck, hasSeq(Q), hasAck(P+1))
	tc.learn(f)
	tc.wantFrame("the window before Accept", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q), hasLimit(Q+preAcceptCredit))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := tc.ep.Accept(ctx)
	if err != nil {
		tc.t.Fatalf("Accept after the handshake: %v", err)
	}
	tc.wantFrame("Accept opens the window", wire.TypeAck, hasAck(P+1), hasCum(Q))
	return s
}

// tcDial is a Dial running in the background.
type tcDial struct {
	tc   *testConn
	done chan struct{}
	s    *Session
	err  error
	at   time.Duration // when Dial returned
}

// startDial runs Dial(ctx) to the scripted peer in the background.
func (tc *testConn) startDial(ctx context.Context) *tcDial {
	d := &tcDial{tc: tc, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.s, d.err = tc.ep.Dial(ctx, tc.peer.LocalPort(), tc.ch)
		d.at = tc.now()
	}()
	synctest.Wait()
	return d
}

// returned reports whether Dial has returned (after the bubble settled).
func (d *tcDial) returned() bool {
	synctest.Wait()
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// result asserts that Dial has returned, and returns its result.
func (d *tcDial) result() (*Session, error) {
	d.tc.t.Helper()
	if !d.returned() {
		d.tc.t.Fatal("Dial has not returned")
	}
	return d.s, d.err
}

// dialSession opens a session from the endpoint: its SYN, the peer's
// SYNACK, and Dial's return.
func (tc *testConn) dialSession() *Session {
	tc.t.Helper()
	d := tc.startDial(context.Background())
	tc.learn(tc.wantFrame("Dial sends a SYN", wire.TypeSyn))
	tc.write(tc.synAck())
	s, err := d.result()
	if err != nil {
		tc.t.Fatalf("Dial: %v", err)
	}
	return s
}

// ---- application side ----

// recvNow returns the next message already on s's Recv channel.
func (tc *testConn) recvNow(s *Session) ([]byte, bool) {
	ch := s.Recv() // the first call makes the channel: let the pump fill it
	synctest.Wait()
	select {
	case m := <-ch:
		return m, true
	default:
		return nil, false
	}
}

// wantRecv asserts that exactly msgs are waiting on s's Recv channel.
func (tc *testConn) wantRecv(s *Session, msgs ...string) {
	t := tc.t
	t.Helper()
	for i, w := range msgs {
		m, ok := tc.recvNow(s)
		if !ok {
			t.Fatalf("message %d: nothing delivered, want %q", i, w)
		}
		if string(m) != w {
			t.Fatalf("message %d: got %q, want %q", i, m, w)
		}
	}
	if m, ok := tc.recvNow(s); ok {
		t.Fatalf("unexpected extra message %q", m)
	}
}

// isDone reports whether s's Done channel is closed (after settling).
func (tc *testConn) isDone(s *Session) bool {
	synctest.Wait()
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// tcClose is a Session.Close running in the background.
type tcClose struct {
	done chan struct{}
	err  error
}

func (tc *testConn) startClose(s *Session) *tcClose {
	c := &tcClose{done: make(chan struct{})}
	go func() { c.err = s.Close(); close(c.done) }()
	synctest.Wait()
	return c
}

func (c *tcClose) returned() bool {
	synctest.Wait()
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
