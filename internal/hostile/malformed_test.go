//go:build linux

package hostile

// Case 4: malformed datagrams from inside a valid session. They are
// injected through the legitimate peer's own socket (the tap), so they
// come from the session's port with the peer's credentials and carry the
// session's real epochs: a hostile peer, or a corrupting path, is the
// threat here.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

// malformed is one kind of bad datagram and the rejections it must cause
// at the victim (Stats.Rejected keys).
type malformed struct {
	name  string
	build func(v sessionView, i int) []byte
	want  map[string]uint64
}

// windowSize is the default reliable.Config.Window the tests run with.
const windowSize = 4096

func malformedSet(pid uint32) []malformed {
	ch := reliable.DefaultChannel
	// A DATA frame at a DSN the peer has not reached yet: were a broken
	// frame taken, the peer's real message at that DSN would later be
	// dropped as a duplicate and the application would get the forgery.
	ahead := func(v sessionView, k int) uint32 { return uint32(v.peerNext) + 200 + uint32(k) }
	data := func(v sessionView, k int, payload []byte) []byte {
		return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: ahead(v, k), Ack: v.peerEpoch, Type: wire.TypeData}, nil, payload)
	}
	ping := func(v sessionView) []byte {
		return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext), Ack: v.peerEpoch, Type: wire.TypePing}, nil, nil)
	}
	ack := func(v sessionView, cum uint32, flags uint16, body []byte) []byte {
		return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext) - 1, Ack: v.victimEpoch + 1, Type: wire.TypeAck, Flags: flags, Arg: cum}, body, nil)
	}
	// ackRaw builds an Ack body whose range count says n and which
	// carries have ranges.
	ackRaw := func(limit uint32, n uint16, have int) []byte {
		b := ne.AppendUint32(nil, limit)
		b = ne.AppendUint32(b, 0)
		b = ne.AppendUint16(b, n)
		b = ne.AppendUint16(b, 0)
		for i := range have {
			b = ne.AppendUint32(b, uint32(1000+10*i))
			b = ne.AppendUint32(b, uint32(1005+10*i))
		}
		return b
	}
	// ackRawFrame seals an ACK whose body is not a valid Ack (wire.Append
	// refuses bodies above the largest valid one).
	ackRawFrame := func(v sessionView, body []byte) []byte {
		f := transport.Frame{NlType: transport.NlmsgDone, NlSeq: 1, NlPID: pid, ID: ch, Seq: uint32(v.peerNext) - 1, Ack: v.victimEpoch + 1}
		hdr := make([]byte, wire.HeaderLen)
		wire.PutHeader(hdr, wire.Header{Type: wire.TypeAck, Arg: v.cum})
		b, err := transport.AppendFrameParts(nil, &f, hdr, body)
		if err != nil {
			panic(err)
		}
		wire.Seal(b)
		return b
	}
	// beyond is a DSN of the victim's stream far past anything it can
	// have sent: three windows past what the peer has seen.
	beyond := func(v sessionView) uint32 { return uint32(v.victimNext) + 3*windowSize }
	one := func(k string) map[string]uint64 { return map[string]uint64{k: 1} }
	none := map[string]uint64{}

	return []malformed{
		{"oversized datagram (above MaxDatagram: truncated)", func(v sessionView, i int) []byte {
			b := data(v, 0, forged("truncated", i))
			for k := 1; k <= 5; k++ { // 5 x 16000 bytes: about 80 KB
				b = frame(b, wire.Frame{ID: ch, Port: pid, Seq: ahead(v, k), Ack: v.peerEpoch, Type: wire.TypeData}, nil, bytes.Repeat([]byte("F"), 16000))
			}
			return b
		}, one("truncated")},
		{"nlmsg_len beyond the datagram", func(v sessionView, i int) []byte {
			b := data(v, 1, forged("nlmsg_len long", i))
			ne.PutUint32(b, uint32(len(b)+100))
			return b
		}, one("malformed")},
		{"nlmsg_len below cn_msg", func(v sessionView, i int) []byte {
			b := data(v, 2, forged("nlmsg_len 20", i))
			ne.PutUint32(b, 20)
			return b
		}, one("malformed")},
		{"nlmsg_len below nlmsghdr", func(v sessionView, i int) []byte {
			b := data(v, 3, forged("nlmsg_len 8", i))
			ne.PutUint32(b, 8)
			return b
		}, one("malformed")},
		{"nlmsg_len zero", func(v sessionView, i int) []byte {
			b := data(v, 4, forged("nlmsg_len 0", i))
			ne.PutUint32(b, 0)
			return b
		}, one("malformed")},
		{"nlmsg_len of a bare nlmsghdr after a valid PING", func(v sessionView, i int) []byte {
			b := append(ping(v), data(v, 5, forged("bare header", i))...)
			ne.PutUint32(b[48:], transport.NlmsgHdrLen)
			return b
		}, one("malformed")},
		{"cn_msg.len beyond nlmsg_len", func(v sessionView, i int) []byte {
			b := data(v, 6, forged("cn_msg.len long", i))
			ne.PutUint16(b[32:], 0xffff)
			return b
		}, one("malformed")},
		{"cn_msg.len short, CRC of the whole frame", func(v sessionView, i int) []byte {
			b := data(v, 7, forged("cn_msg.len short", i))
			ne.PutUint16(b[32:], ne.Uint16(b[32:])-4)
			return b
		}, one("checksum")},
		{"cn_msg.len below the cnlink header", func(v sessionView, i int) []byte {
			b := data(v, 8, forged("cn_msg.len 4", i))
			ne.PutUint16(b[32:], 4)
			return b
		}, one("malformed")},
		{"a valid PING, then nlmsg_len beyond the datagram", func(v sessionView, i int) []byte {
			b := append(ping(v), data(v, 9, forged("after ping", i))...)
			ne.PutUint32(b[48:], uint32(len(b)))
			return b
		}, one("malformed")},
		{"a valid PING, then 7 trailing bytes", func(v sessionView, i int) []byte {
			return append(ping(v), "FORGED!"...)
		}, one("malformed")},
		{"5-byte datagram", func(v sessionView, i int) []byte { return []byte("FORGE") }, one("malformed")},
		{"bad CRC: payload byte flipped", func(v sessionView, i int) []byte {
			b := data(v, 10, forged("flipped", i))
			b[transport.FrameHeaderLen+int(ne.Uint16(b[32:]))-1] ^= 0x20 // the last payload byte, not padding
			return b
		}, one("checksum")},
		{"bad CRC: cn_msg.seq changed after sealing", func(v sessionView, i int) []byte {
			b := data(v, 11, forged("reseq", i))
			ne.PutUint32(b[24:], ne.Uint32(b[24:])+1)
			return b
		}, one("checksum")},
		{"bad CRC: FIN flag set after sealing", func(v sessionView, i int) []byte {
			b := data(v, 12, nil)
			ne.PutUint16(b[38:], wire.FlagFin)
			return b
		}, one("checksum")},
		{"nlmsg_type not NLMSG_DONE", func(v sessionView, i int) []byte {
			b := data(v, 13, forged("nlmsg_type", i))
			ne.PutUint16(b[4:], 16)
			return b
		}, one("malformed")},
		{"protocol version 2", func(v sessionView, i int) []byte {
			b := data(v, 14, forged("version 2", i))
			b[36] = 2
			wire.Seal(b)
			return b
		}, one("malformed")},
		{"unknown frame types 0, 8 and 255 with the answer epoch", func(v sessionView, i int) []byte {
			var b []byte
			for _, typ := range []wire.Type{0, 8, 255} {
				b = frame(b, wire.Frame{ID: ch, Port: pid, Seq: ahead(v, 15), Ack: v.victimEpoch + 1, Type: typ}, nil, forged("type", i))
			}
			return b
		}, map[string]uint64{"malformed": 3}},
		{"unknown frame type 9 with the peer's epoch", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: ahead(v, 16), Ack: v.peerEpoch, Type: 9}, nil, forged("type 9", i))
		}, one("epoch")},
		{"ACK with 33 SACK ranges", func(v sessionView, i int) []byte {
			return ackRawFrame(v, ackRaw(v.cum+windowSize, 33, 33))
		}, one("malformed")},
		{"ACK claiming 32 ranges, carrying 3", func(v sessionView, i int) []byte {
			return ackRawFrame(v, ackRaw(v.cum+windowSize, 32, 3))
		}, one("malformed")},
		{"ACK claiming 65535 ranges", func(v sessionView, i int) []byte {
			return ackRawFrame(v, ackRaw(v.cum+windowSize, 0xffff, 32))
		}, one("malformed")},
		{"ACK with a 6-byte body", func(v sessionView, i int) []byte {
			return ackRawFrame(v, ackRaw(v.cum+windowSize, 0, 0)[:6])
		}, one("malformed")},
		{"ACK with 32 SACK ranges beyond the window", func(v sessionView, i int) []byte {
			var rs []wire.Range
			for k := range uint32(32) {
				rs = append(rs, wire.Range{Start: beyond(v) + 100*k, End: beyond(v) + 100*k + 50})
			}
			return ack(v, v.cum, 0, ackBody(v.cum+windowSize, rs...))
		}, none},
		{"ACK with reversed, stale, half-space and huge SACK ranges", func(v sessionView, i int) []byte {
			rs := []wire.Range{
				{Start: beyond(v) + 50, End: beyond(v)},                  // reversed
				{Start: v.cum - 3*windowSize, End: v.cum - 2*windowSize}, // long acknowledged
				{Start: v.cum + 1<<31, End: v.cum + 1<<31 + 10},          // half the number space away (see TestHalfSpaceSACK)
				{Start: beyond(v), End: beyond(v) + 1<<30},               // huge, beyond
			}
			return ack(v, v.cum, 0, ackBody(v.cum+windowSize, rs...))
		}, none},
		{"ACK acknowledging DSNs never sent", func(v sessionView, i int) []byte {
			b := ack(v, beyond(v), 0, ackBody(beyond(v)+windowSize))
			return append(b, ack(v, uint32(v.victimNext)+1<<31-1, 0, ackBody(uint32(v.victimNext)+1<<31))...)
		}, map[string]uint64{"state": 2}},
		{"ACK with a limit far beyond the window and a bogus DSACK", func(v sessionView, i int) []byte {
			body := wire.AppendAck(nil, &wire.Ack{Limit: v.cum + 1<<30, Dup: beyond(v)})
			return ack(v, v.cum, wire.FlagDupValid, body)
		}, none},
		{"DATA three windows ahead", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext) + 3*windowSize, Ack: v.peerEpoch, Type: wire.TypeData}, nil, forged("ahead", i))
		}, one("window")},
		{"REPLY three windows ahead", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.victimNext) - 1, Ack: v.victimEpoch + 1, Type: wire.TypeReply, Arg: uint32(v.peerNext) + 3*windowSize}, nil, forged("reply ahead", i))
		}, one("window")},
		{"DATA three windows behind", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext) - 3*windowSize, Ack: v.peerEpoch, Type: wire.TypeData}, nil, forged("behind", i))
		}, none},
		{"SYN whose ack is not its epoch", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: 5, Ack: 77, Type: wire.TypeSyn},
				synBody(wire.Syn{Epoch: 78, ISN: 5, Window: 16, MaxMessage: 1024, MaxDatagram: 65536}), nil)
		}, one("malformed")},
		{"SYN with epoch 0", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: 5, Ack: 0, Type: wire.TypeSyn},
				synBody(wire.Syn{Epoch: 0, ISN: 5, Window: 16, MaxMessage: 1024, MaxDatagram: 65536}), nil)
		}, one("malformed")},
		{"SYN with a short body", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: ch, Port: pid, Seq: 5, Ack: 79, Type: wire.TypeSyn},
				synBody(wire.Syn{Epoch: 79, ISN: 5, Window: 16, MaxMessage: 1024, MaxDatagram: 65536})[:12], nil)
		}, one("malformed")},
		{"DATA with the session's epoch on another channel", func(v sessionView, i int) []byte {
			return frame(nil, wire.Frame{ID: transport.CbID{Idx: 0x434e4c4b, Val: 2}, Port: pid, Seq: ahead(v, 18), Ack: v.peerEpoch, Type: wire.TypeData}, nil, forged("channel", i))
		}, one("no_session")},
	}
}

// Case 4. Every kind of malformed datagram in malformedSet, 20 rounds,
// injected from the peer's own socket into a session streaming both ways.
// Each is rejected with exactly the counter named; nothing wrong reaches
// either application (the forged DATA frames sit at DSNs the peer has not
// reached yet, so one taken would replace a real message), the session
// survives, memory stays put.
func TestMalformed(t *testing.T) {
	l := newLegit(t, nil)
	flows := []*flow{
		startFlow("peer→victim", 0x5555, l.ps, l.vs),
		startFlow("victim→peer", 0x6666, l.vs, l.ps),
	}
	time.Sleep(100 * time.Millisecond)
	mem := watchMem()
	set := malformedSet(l.p.LocalPort())
	want := map[string]uint64{}
	st0, pst0 := l.v.Stats(), l.p.Stats()
	const rounds = 20
	for i := range rounds {
		for _, m := range set {
			l.tap.inject(t, m.build(l.tap.view(), i))
			for k, n := range m.want {
				want[k] += n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	st1 := settle(l.v, st0, "malformed", want["malformed"])
	pst1 := l.p.Stats()
	got := rejectedDelta(st0, st1)
	t.Logf("%d kinds x %d rounds: %d datagrams injected (%d refused busy); victim Rejected delta %v; peer Rejected delta %v; victim RSTs sent %d",
		len(set), rounds, l.tap.injected.Load(), l.tap.injectBusy.Load(), got, rejectedDelta(pst0, pst1), st1.ResetsSent-st0.ResetsSent)
	if l.tap.injectBusy.Load() == 0 {
		for _, k := range slices.Sorted(maps.Keys(merge(want, got))) {
			if got[k] != want[k] {
				t.Errorf("Rejected[%s] grew by %d, want %d", k, got[k], want[k])
			}
		}
	}
	l.alive(t, "after the malformed datagrams")
	for _, f := range flows {
		f.finish(t)
	}
	l.alive(t, "at the end")
	mem.check(t, "malformed", 8<<20)
	l.closeGracefully(t)
	if t.Failed() {
		var names []string
		for _, m := range set {
			names = append(names, fmt.Sprintf("%s %v", m.name, m.want))
		}
		t.Logf("the kinds:\n  %s", strings.Join(names, "\n  "))
	}
}

func merge(a, b map[string]uint64) map[string]uint64 {
	m := maps.Clone(a)
	for k, v := range b {
		m[k] += v
	}
	return m
}

// envChild runs a test's body in a child process (see TestHalfSpaceSACK).
const envChild = "CNLINK_HOSTILE_CHILD"

// halfSpaceAck is an ACK from inside the session (the peer's port, the
// victim's epoch + 1) whose cumulative ack is the peer's latest and whose
// one SACK range runs from just before the point half the sequence space
// away from it (cum + 2^31 - 1) to 2^20 past that point. A range is
// clipped to [base, next) with serial comparisons, which are not
// transitive across that point: its start compares above base, its end
// compares below next, and the end does not compare below the start. So
// the range survives the clipping whole, whatever the victim has in
// flight (2^20 > any window), and the sender walks records it never sent.
func halfSpaceAck(v sessionView, pid uint32) []byte {
	return frame(nil, wire.Frame{ID: reliable.DefaultChannel, Port: pid, Seq: uint32(v.peerNext) - 1, Ack: v.victimEpoch + 1, Type: wire.TypeAck, Arg: v.cum},
		ackBody(v.cum+windowSize, wire.Range{Start: v.cum + 1<<31 - 1, End: v.cum + 1<<31 + 1<<20}), nil)
}

// One ACK with a SACK range across the point half the sequence space
// away (halfSpaceAck), sent from inside the session while it streams both
// ways, must be ignored like any range outside what was sent: the victim
// survives, the streams complete. The test runs in a child process (the
// test binary re-executed with -test.run and CNLINK_HOSTILE_CHILD=1), so
// that a panic in the victim's engine, which kills its whole process,
// fails this test with the panic's stack instead of the package.
//
// Found by TestMalformed, whose set holds such a range (cum + 2^31 to
// cum + 2^31 + 10): window.Sender clamped SACK ranges to [Base, Next)
// with serial comparisons, which a range across that point passes whole;
// the Sender then released ring slots it never filled (reliable's
// releaseMsg met a nil message: a nil-pointer panic that killed the
// victim's process) or that held other records (released unacknowledged,
// InFlight negative). In TestMalformed it crashed the binary in about one
// run in ten, depending on what was in flight; this form did every time.
// Fixed in commit cff742c (ranges clamped by offsets from Base); the test
// keeps it fixed.
func TestHalfSpaceSACK(t *testing.T) {
	testenv.RequireNetAdmin(t)
	if os.Getenv(envChild) == "1" {
		l := newLegit(t, nil)
		pv := startFlow("peer→victim", 0x9999, l.ps, l.vs)
		vp := startFlow("victim→peer", 0xaaaa, l.vs, l.ps)
		time.Sleep(100 * time.Millisecond)
		// The victim's stream pauses with everything acknowledged, so
		// that the outcome does not depend on what is in flight (the
		// walk releases empty slots: a nil message).
		vp.finish(t)
		v := l.tap.view()
		for deadline := time.Now().Add(2 * time.Second); v.cum != uint32(v.victimNext) && time.Now().Before(deadline); v = l.tap.view() {
			time.Sleep(time.Millisecond)
		}
		t.Logf("injecting: ACK cum %#x, SACK [%#x, %#x]; %s", v.cum, v.cum+1<<31-1, v.cum+1<<31+1<<20, l.tap)
		st0 := l.v.Stats()
		ack := halfSpaceAck(v, l.p.LocalPort())
		for l.tap.inject(t, ack); l.tap.injected.Load() == 0; l.tap.inject(t, ack) {
			time.Sleep(100 * time.Microsecond) // the victim's queue was full (EAGAIN)
		}
		time.Sleep(200 * time.Millisecond)
		t.Logf("after the ACK: victim Rejected delta %v, session %+v", rejectedDelta(st0, l.v.Stats()), l.vs.Stats())
		l.alive(t, "after the ACK")
		// The victim's sending side still works.
		vp2 := startFlow("victim→peer, after", 0xbbbb, l.vs, l.ps)
		time.Sleep(200 * time.Millisecond)
		vp2.finish(t)
		pv.finish(t)
		l.alive(t, "at the end")
		l.closeGracefully(t)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHalfSpaceSACK$", "-test.v", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), envChild+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Logf("the victim survived:\n%s", out)
		return
	}
	lines := strings.Split(string(out), "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "panic:") {
			lines = lines[max(0, i-5):min(len(lines), i+30)]
			break
		}
	}
	t.Errorf("the victim's process died (%v) of one ACK from inside the session:\n%s", err, strings.Join(lines, "\n"))
}

// A DATA above the max_message the victim announced, from inside the
// session, is a protocol violation the stream cannot survive (it could
// never be acknowledged): the victim ends the session with ErrProtocol and
// tells the peer with RST 6 (ErrPeerReset there), after delivering what
// came before; the oversized payload reaches nobody.
func TestMalformedOversizedEndsSession(t *testing.T) {
	l := newLegit(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.ps.Send(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := l.ps.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	v := l.tap.view()
	l.tap.inject(t, frame(nil, wire.Frame{ID: reliable.DefaultChannel, Port: l.p.LocalPort(), Seq: uint32(v.peerNext), Ack: v.peerEpoch, Type: wire.TypeData}, nil,
		bytes.Repeat(forged("too large", 0), 2000)))
	var got []string
	for m, err := range l.vs.RecvIter(ctx) {
		if err != nil {
			if !errors.Is(err, reliable.ErrProtocol) {
				t.Fatalf("the victim's session ended with %v, want ErrProtocol", err)
			}
			break
		}
		got = append(got, string(m))
	}
	if len(got) != 1 || got[0] != "before" {
		t.Fatalf("the victim's application got %q, want [before]", got)
	}
	select {
	case <-l.ps.Done():
	case <-ctx.Done():
		t.Fatal("the peer's session did not end")
	}
	if !errors.Is(l.ps.Err(), reliable.ErrPeerReset) {
		t.Fatalf("the peer's session ended with %v, want ErrPeerReset (RST 6)", l.ps.Err())
	}
	if n := l.v.Stats().Rejected["too_large"]; n != 1 {
		t.Errorf("Rejected[too_large] = %d, want 1", n)
	}
}
