//go:build linux

package hostile

// Cases 1 and 2: forgeries from a third port (a forged nlmsg_pid, guessed
// epochs), and guessed epochs from the session's own port.

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/reliable"
)

// forgeries returns one of every frame an attacker would send to take
// over or disturb the session, with nlmsg_pid set to the peer's port (the
// header claims the peer sent it) and, as the worst case, the session's
// real epochs and sequence numbers as the peer knows them. Frames from
// another port must be rejected whatever they carry: the sender's
// identity is the port the kernel stamps, never nlmsg_pid.
func forgeries(dst []byte, v sessionView, pid uint32, round int) ([]byte, int) {
	ch := reliable.DefaultChannel
	n := 0
	add := func(f wire.Frame, body, payload []byte) {
		f.ID, f.Port = ch, pid
		dst = frame(dst, f, body, payload)
		n++
	}
	next := uint32(v.peerNext)
	for k := range uint32(4) {
		add(wire.Frame{Seq: next + k, Ack: v.peerEpoch, Type: wire.TypeData}, nil, forged("data", round))
	}
	add(wire.Frame{Seq: next + 4, Ack: v.peerEpoch, Type: wire.TypeData, Flags: wire.FlagRequest}, nil, forged("request", round))
	add(wire.Frame{Seq: next + 5, Ack: v.peerEpoch, Type: wire.TypeData, Flags: wire.FlagFin}, nil, nil)
	add(wire.Frame{Seq: next, Ack: v.peerEpoch, Type: wire.TypePing, Flags: wire.FlagStatusReq}, nil, nil)
	// Acknowledges everything the victim sent (and more), opens the
	// window wide and asks for a repair.
	add(wire.Frame{Seq: next - 1, Ack: v.victimEpoch + 1, Type: wire.TypeAck, Flags: wire.FlagStatusReq, Arg: uint32(v.victimNext) + 100},
		ackBody(uint32(v.victimNext)+1<<30, wire.Range{Start: uint32(v.victimNext), End: uint32(v.victimNext) + 50}), nil)
	add(wire.Frame{Seq: uint32(v.victimNext) - 1, Ack: v.victimEpoch + 1, Type: wire.TypeReply, Arg: next + 6}, nil, forged("reply", round))
	add(wire.Frame{Seq: next - 1, Ack: v.victimEpoch + 1, Type: wire.TypeRst, Arg: wire.RstAbort}, nil, nil)
	add(wire.Frame{Seq: 1, Ack: v.victimEpoch + 1, Type: wire.TypeSynAck},
		synBody(wire.Syn{Epoch: v.peerEpoch ^ 0x5a5a, ISN: 7, Window: 16, MaxMessage: 1024, MaxDatagram: 65536}), nil)
	return dst, n
}

// Case 1. A third port sends frames whose nlmsg_pid claims the peer's
// port, carrying the session's real epochs and next sequence numbers:
// DATA, a request, a FIN, a PING with STATUS_REQ, an ACK that
// acknowledges everything, a REPLY, an RST and a SYNACK with a new epoch.
// All are rejected as from a port with no session (no_session); none
// reaches the application or disturbs the session. Then the attacker
// opens a session of its own with a SYN that claims, in nlmsg_pid, to be
// the peer restarting: the victim opens it for the attacker's port (the
// real sender) and the peer's session lives on; the same forgeries then
// meet the attacker's own session and are rejected by its epochs.
func TestForgedHeaderPort(t *testing.T) {
	l := newLegit(t, nil)
	flows := []*flow{
		startFlow("peer→victim", 0x1111, l.ps, l.vs),
		startFlow("victim→peer", 0x2222, l.vs, l.ps),
	}
	time.Sleep(100 * time.Millisecond)
	a := newAttacker(t)
	mem := watchMem()
	pid := l.p.LocalPort()

	// Phase A: no session from the attacker's port.
	st0 := l.v.Stats()
	framesA := 0
	var b []byte
	for round := range 300 {
		v := l.tap.view()
		var n int
		b, n = forgeries(b[:0], v, pid, round)
		a.send(t, l.v.LocalPort(), b)
		framesA += n
		if round%3 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	st1 := settle(l.v, st0, "no_session", uint64(framesA))
	dA := rejectedDelta(st0, st1)
	t.Logf("phase A: %d forged frames in %d datagrams (%d refused busy); victim Rejected delta %v", framesA, a.sent.Load(), a.busy.Load(), dA)
	if want := uint64(framesA); a.busy.Load() == 0 && dA["no_session"] != want {
		t.Errorf("phase A: Rejected[no_session] grew by %d, want %d (every forged frame)", dA["no_session"], want)
	}
	l.alive(t, "after phase A")

	// Phase B: a SYN whose header claims the peer's port.
	syn := frame(nil, wire.Frame{ID: reliable.DefaultChannel, Port: pid, Seq: 99, Ack: 0xabcdef, Type: wire.TypeSyn},
		synBody(wire.Syn{Epoch: 0xabcdef, ISN: 99, Window: 4096, MaxMessage: 16384, MaxDatagram: 65536}), nil)
	synAt := time.Now()
	a.send(t, l.v.LocalPort(), syn)
	for a.frames[wire.TypeSynAck].Load() == 0 && time.Since(synAt) < 3*time.Second {
		time.Sleep(time.Millisecond)
	}
	if n := a.frames[wire.TypeSynAck].Load(); n != 1 {
		t.Errorf("the SYN got %d SYNACKs at the attacker's port within %v, want 1", n, time.Since(synAt))
	} else {
		t.Logf("phase B: the SYN was answered at the attacker's port in %v", time.Since(synAt))
	}
	// The session the SYN opened is the attacker's, at its own port.
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	as, err := l.v.Accept(actx)
	acancel()
	if err != nil {
		t.Fatalf("accepting the session the forged SYN opened: %v", err)
	}
	if as.Peer() != a.port() {
		t.Errorf("the forged SYN opened a session with port %d; the attacker is %d, the peer %d", as.Peer(), a.port(), pid)
	}
	st2 := l.v.Stats()
	framesB := 0
	for round := range 300 {
		var n int
		b, n = forgeries(b[:0], l.tap.view(), pid, round)
		a.send(t, l.v.LocalPort(), b)
		framesB += n
		if round%3 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	st3 := settle(l.v, st2, "epoch", uint64(framesB))
	dB := rejectedDelta(st2, st3)
	t.Logf("phase B: %d forged frames at the attacker's own session; victim Rejected delta %v; RSTs at the attacker %d (ResetsSent %d, suppressed %d)",
		framesB, dB, a.frames[wire.TypeRst].Load(), st3.ResetsSent, st3.ResetsSuppressed)
	switch {
	case a.busy.Load() > 0:
	case as.Err() == nil && dB["epoch"] != uint64(framesB):
		t.Errorf("phase B: Rejected[epoch] grew by %d, want %d (every forged frame)", dB["epoch"], framesB)
	case as.Err() != nil:
		// The attacker never answers: on a starved machine its session
		// can die of silence (DeadPeerTimeout) before the phase ends;
		// then the rest is rejected as state, or no_session once gone.
		t.Logf("phase B: the attacker's own session ended meanwhile: %v", as.Err())
		if n := dB["epoch"] + dB["state"] + dB["no_session"]; n != uint64(framesB) {
			t.Errorf("phase B: Rejected epoch+state+no_session grew by %d, want %d", n, framesB)
		}
	}
	as.Abort()
	l.alive(t, "after phase B")

	// Nothing else was opened.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	for {
		s, err := l.v.Accept(ctx)
		if err != nil {
			break
		}
		t.Errorf("the victim accepted another session, from port %d (the attacker is %d, the peer %d)", s.Peer(), a.port(), pid)
		s.Abort()
	}
	cancel()

	for _, f := range flows {
		f.finish(t)
	}
	l.alive(t, "at the end")
	mem.check(t, "forged nlmsg_pid", 8<<20)
	l.closeGracefully(t)
}

// Case 2. Thousands of frames with guessed epochs: random guesses and a
// sequential sweep, as DATA (at the next DSNs), PING, ACK and RST.
//
// From a third port even the right guess is worthless (the real epochs
// are among the guesses): every frame is rejected as no_session, DATA and
// PING draw rate-limited RSTs. From the session's own port (injected
// through the peer's socket, the position of a process that holds the
// port but does not know the epochs), every wrong guess is rejected as
// epoch; the RSTs the victim sends back carry the guess + 1 and the peer
// rejects them in turn. Nothing reaches either application, the session
// survives.
func TestGuessedEpochs(t *testing.T) {
	l := newLegit(t, nil)
	flows := []*flow{
		startFlow("peer→victim", 0x3333, l.ps, l.vs),
		startFlow("victim→peer", 0x4444, l.vs, l.ps),
	}
	time.Sleep(100 * time.Millisecond)
	a := newAttacker(t)
	mem := watchMem()
	pid := l.p.LocalPort()
	rng := rand.New(rand.NewPCG(2, 10))
	const guesses = 3000 // per kind (random, sequential) and frame type

	// guessFrames appends frames with epoch guess g of every type.
	guessFrames := func(dst []byte, v sessionView, g uint32, i int) []byte {
		ch := reliable.DefaultChannel
		dst = frame(dst, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext) + uint32(i%8), Ack: g, Type: wire.TypeData}, nil, forged("guess", i))
		dst = frame(dst, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext), Ack: g, Type: wire.TypePing, Flags: wire.FlagStatusReq}, nil, nil)
		dst = frame(dst, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext) - 1, Ack: g, Type: wire.TypeAck, Arg: uint32(v.victimNext) + 10},
			ackBody(uint32(v.victimNext)+1<<20), nil)
		dst = frame(dst, wire.Frame{ID: ch, Port: pid, Seq: uint32(v.peerNext) - 1, Ack: g, Type: wire.TypeRst, Arg: wire.RstAbort}, nil, nil)
		return dst
	}
	const perGuess = 4

	type sender func([]byte)
	sweep := func(send sender, skip func(uint32) bool, withTruth bool) int {
		frames := 0
		base := rng.Uint32()
		var b []byte
		nb := 0
		flush := func() {
			if len(b) > 0 {
				send(b)
				b, nb = b[:0], 0
			}
		}
		v := l.tap.view()
		for i := range 2 * guesses {
			var g uint32
			if i < guesses {
				g = rng.Uint32()
			} else {
				g = base + uint32(i-guesses)
			}
			if i%50 == 0 {
				v = l.tap.view()
			}
			if withTruth && i%1000 == 0 {
				// The worst case: the guess is right.
				for _, g := range []uint32{v.peerEpoch, v.victimEpoch + 1} {
					b = guessFrames(b, v, g, i)
					frames += perGuess
				}
			}
			if skip(g) || skip(g-1) {
				continue
			}
			b = guessFrames(b, v, g, i)
			frames += perGuess
			nb++
			if nb == 16 {
				flush()
				if i%64 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}
		flush()
		return frames
	}

	// From a third port.
	st0 := l.v.Stats()
	t0 := time.Now()
	framesA := sweep(func(b []byte) { a.send(t, l.v.LocalPort(), b) }, func(uint32) bool { return false }, true)
	st1 := settle(l.v, st0, "no_session", uint64(framesA))
	secs := time.Since(t0).Seconds()
	dA := rejectedDelta(st0, st1)
	rsts := st1.ResetsSent - st0.ResetsSent
	t.Logf("third port: %d frames in %.2fs (%d datagrams, %d refused busy); victim Rejected delta %v; ResetsSent +%d, ResetsSuppressed +%d; RSTs at the attacker %d",
		framesA, secs, a.sent.Load(), a.busy.Load(), dA, rsts, st1.ResetsSuppressed-st0.ResetsSuppressed, a.frames[wire.TypeRst].Load())
	if a.busy.Load() == 0 && dA["no_session"] != uint64(framesA) {
		t.Errorf("third port: Rejected[no_session] grew by %d, want %d", dA["no_session"], framesA)
	}
	if limit := 100 + uint64(1000*secs); rsts > limit {
		t.Errorf("third port: %d RSTs sent in %.2fs, above the limit of %d", rsts, secs, limit)
	}
	if st1.ResetsSuppressed == st0.ResetsSuppressed {
		t.Errorf("third port: no RST was suppressed")
	}
	l.alive(t, "after the third port's guesses")

	// From the session's own port, every guess wrong.
	v := l.tap.view()
	truth := map[uint32]bool{v.peerEpoch: true, v.victimEpoch + 1: true}
	st2, pst2 := l.v.Stats(), l.p.Stats()
	framesB := sweep(func(b []byte) { l.tap.inject(t, b) }, func(g uint32) bool { return truth[g] || truth[g+1] }, false)
	st3 := settle(l.v, st2, "epoch", uint64(framesB))
	rstsB := st3.ResetsSent - st2.ResetsSent
	pst3 := settle(l.p, pst2, "epoch", rstsB)
	dB := rejectedDelta(st2, st3)
	pdB := rejectedDelta(pst2, pst3)
	t.Logf("peer's port: %d frames (%d datagrams, %d refused busy); victim Rejected delta %v, ResetsSent +%d; peer Rejected delta %v",
		framesB, l.tap.injected.Load(), l.tap.injectBusy.Load(), dB, rstsB, pdB)
	if l.tap.injectBusy.Load() == 0 && dB["epoch"] != uint64(framesB) {
		t.Errorf("peer's port: victim Rejected[epoch] grew by %d, want %d", dB["epoch"], framesB)
	}
	if pdB["epoch"] < rstsB {
		t.Errorf("peer's port: the victim sent %d RSTs with guessed epochs to the peer, the peer rejected %d as epoch", rstsB, pdB["epoch"])
	}
	l.alive(t, "after the guesses from the peer's port")

	for _, f := range flows {
		f.finish(t)
	}
	l.alive(t, "at the end")
	mem.check(t, "guessed epochs", 8<<20)
	l.closeGracefully(t)
}
