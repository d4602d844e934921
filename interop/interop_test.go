//go:build linux

package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

const (
	streamN    = 100_000 // messages of each stream test
	streamLoss = "0.1"   // datagrams the C peer drops, each way
)

func logGoSession(t *testing.T, what string, ep *reliable.Endpoint, s *reliable.Session) {
	t.Helper()
	st := s.Stats()
	es := ep.Stats()
	t.Logf("Go %s: sent %d received %d delivered %d retransmits %d (after RTO %d) duplicates %d status %d/%d srtt %v; endpoint: datagrams %d sent %d received, peer busy %d, rejected %v, resets sent %d",
		what, st.Sent, st.Received, st.Delivered, st.Retransmits, st.TimeoutRetransmits, st.DuplicatesSuppressed,
		st.StatusRequests, st.StatusRepair, st.SRTT, es.DatagramsSent, es.DatagramsReceived, es.PeerBusy, es.Rejected, es.ResetsSent)
}

// Go dials, sends 100,000 messages and closes; the C peer drops 10% of
// the datagrams it receives and of those it sends (its ACKs), checks every
// message and sees the session end with the peer's FIN.
func TestStreamGoToC(t *testing.T) {
	ep := newEndpoint(t, nil)
	p := startPeer(t, append([]string{"-accept", "-expect", strconv.Itoa(streamN), "-max-time", "50"}, lossArgs(t, streamLoss, 1)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := ep.Dial(ctx, p.port, transport.CbID{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	start := time.Now()
	if err := sendStream(ctx, s, streamN); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v, want nil (the C peer holds every message)", err)
	}
	el := time.Since(start)
	res := p.expectOK(t, 10*time.Second)
	if num(res, "verified") != streamN || res["end"] != "peer_closed" {
		t.Errorf("C peer verified %s of %d messages, end=%s (want peer_closed)", res["verified"], streamN, res["end"])
	}
	t.Logf("Go->C: %d messages in %v (%.0f msgs/s) through %s%% loss each way", streamN, el.Round(time.Millisecond), streamN/el.Seconds(), "10")
	logGoSession(t, "sender", ep, s)
}

// The C peer dials, sends 100,000 messages of 8..256 bytes and closes,
// dropping 10% of the datagrams each way; Go checks every message, in
// order, exactly once, and sees ErrPeerClosed.
func TestStreamCToGo(t *testing.T) {
	ep := newEndpoint(t, nil)
	p := startPeer(t, append([]string{"-dial", portArg(ep), "-send", strconv.Itoa(streamN), "-size", "256", "-vary", "-close",
		"-max-time", "50"}, lossArgs(t, streamLoss, 2)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	start := time.Now()
	if err := recvStream(ctx, s, streamN, 256, true); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerClosed) {
		t.Errorf("the session ended with %v, want ErrPeerClosed", err)
	}
	res := p.expectOK(t, 10*time.Second)
	if num(res, "acked") != streamN || res["end"] != "closed" {
		t.Errorf("C peer: %s of %d acknowledged, end=%s (want closed)", res["acked"], streamN, res["end"])
	}
	t.Logf("C->Go: %d messages in %v (%.0f msgs/s) through 10%% loss each way; C retransmitted %s frames (%s RTOs), srtt %sµs",
		streamN, el.Round(time.Millisecond), streamN/el.Seconds(), res["retransmits"], res["rtos"], res["srtt_us"])
	logGoSession(t, "receiver", ep, s)
}

// Go sends requests from 8 goroutines; the C peer (-echo) answers each
// with its payload as a REPLY. 5% loss each way.
func TestRequestGoToC(t *testing.T) {
	const workers, per = 8, 500
	ep := newEndpoint(t, nil)
	p := startPeer(t, append([]string{"-accept", "-echo", "-max-time", "50"}, lossArgs(t, "0.05", 3)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := ep.Dial(ctx, p.port, transport.CbID{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 256)
			for k := range per {
				i := uint64(w*per+k) | reqBit
				req := fillMsg(buf[:goLen(w*per+k)], i)
				rep, err := s.Request(ctx, req)
				if err != nil {
					errc <- fmt.Errorf("request %d: %w", i&^reqBit, err)
					return
				}
				if len(rep) != len(req) || !checkMsg(rep, i) {
					errc <- fmt.Errorf("request %d: the reply (%d bytes) is not its echo", i&^reqBit, len(rep))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	el := time.Since(start)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	res := p.expectOK(t, 10*time.Second)
	if num(res, "answered") != workers*per {
		t.Errorf("the C peer answered %s requests, want %d", res["answered"], workers*per)
	}
	t.Logf("%d requests Go->C in %v (%.0f/s, 8 concurrent) through 5%% loss each way", workers*per, el.Round(time.Millisecond), workers*per/el.Seconds())
	logGoSession(t, "requester", ep, s)
}

// The C peer sends 4000 pipelined requests; Go answers each with its
// payload; the C peer checks every reply and matches it to its request.
func TestRequestCToGo(t *testing.T) {
	const n = 4000
	ep := newEndpoint(t, nil)
	p := startPeer(t, append([]string{"-dial", portArg(ep), "-requests", strconv.Itoa(n), "-size", "200", "-vary", "-close",
		"-max-time", "50"}, lossArgs(t, "0.05", 4)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	answered := 0
	for done := false; !done; {
		select {
		case r := <-s.Requests():
			i := uint64(answered) | reqBit
			if !checkMsg(r.Data, i) || len(r.Data) != cLen(i, 200, true) {
				t.Errorf("request %d (%d bytes) is not the C peer's request %d", answered, len(r.Data), answered)
			}
			if err := r.Reply(ctx, r.Data); err != nil {
				t.Fatalf("Reply %d: %v", answered, err)
			}
			answered++
		case <-s.Done():
			done = true
		case <-ctx.Done():
			t.Fatalf("after %d requests: %v", answered, ctx.Err())
		}
	}
	if err := s.Err(); !errors.Is(err, reliable.ErrPeerClosed) {
		t.Errorf("the session ended with %v, want ErrPeerClosed", err)
	}
	if answered != n {
		t.Errorf("Go answered %d requests, want %d", answered, n)
	}
	res := p.expectOK(t, 10*time.Second)
	if num(res, "replies") != n {
		t.Errorf("the C peer got %s replies, want %d", res["replies"], n)
	}
	logGoSession(t, "replier", ep, s)
}

// Graceful close by Go, on a channel other than the default: Close
// returns nil once the C peer acknowledged the FIN; the C peer sees the
// session end with the FIN after the last message.
func TestCloseGoToC(t *testing.T) {
	ep := newEndpoint(t, nil)
	ch := transport.CbID{Idx: 0x1234abcd, Val: 7}
	p := startPeer(t, "-accept", "-channel", "0x1234abcd:7", "-expect", "10")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := ep.Dial(ctx, p.port, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if err := sendStream(ctx, s, 10); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v, want nil", err)
	}
	t.Logf("Close returned after %v", time.Since(start))
	if err := s.Err(); !errors.Is(err, reliable.ErrClosed) {
		t.Errorf("Err after Close: %v, want ErrClosed", err)
	}
	res := p.expectOK(t, 10*time.Second)
	if res["end"] != "peer_closed" {
		t.Errorf("C peer end=%s, want peer_closed", res["end"])
	}
}

// Graceful close by the C peer: Go gets every message, then
// ErrPeerClosed; the C peer's FIN is acknowledged (end=closed).
func TestCloseCToGo(t *testing.T) {
	ep := newEndpoint(t, nil)
	p := startPeer(t, "-dial", portArg(ep), "-send", "10", "-close")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	if err := recvStream(ctx, s, 10, 128, false); err != nil {
		t.Fatal(err)
	}
	if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerClosed) {
		t.Errorf("the session ended with %v, want ErrPeerClosed", err)
	}
	res := p.expectOK(t, 10*time.Second)
	if res["end"] != "closed" {
		t.Errorf("C peer end=%s, want closed", res["end"])
	}
}

// Both sides send, receive everything and close at about the same time:
// each learns that the other holds everything it sent (Go's Close returns
// nil, or ErrPeerClosed when the C peer's FIN came first, which the
// document allows; the C peer ends closed or peer_closed with every message
// acknowledged).
func TestCloseSimultaneous(t *testing.T) {
	const n = 2000
	ep := newEndpoint(t, nil)
	p := startPeer(t, "-dial", portArg(ep), "-send", strconv.Itoa(n), "-expect", strconv.Itoa(n), "-close")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	errc := make(chan error, 1)
	go func() { errc <- sendStream(ctx, s, n) }()
	if err := recvStream(ctx, s, n, 128, false); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil && !errors.Is(err, reliable.ErrPeerClosed) {
		t.Errorf("Close: %v, want nil or ErrPeerClosed", err)
	} else {
		t.Logf("Go's Close: %v", err)
	}
	res := p.expectOK(t, 10*time.Second)
	t.Logf("C peer end=%s", res["end"])
}

// Go aborts: the C peer sees the session reset (RST 1).
func TestAbortGoToC(t *testing.T) {
	ep := newEndpoint(t, nil)
	p := startPeer(t, "-accept", "-expect", "10", "-want", "reset")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := ep.Dial(ctx, p.port, transport.CbID{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if err := sendStream(ctx, s, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	s.Abort()
	if err := s.Err(); !errors.Is(err, reliable.ErrAborted) {
		t.Errorf("Err after Abort: %v, want ErrAborted", err)
	}
	res := p.expectOK(t, 10*time.Second)
	if res["end"] != "reset" {
		t.Errorf("C peer end=%s, want reset", res["end"])
	}
}

// The C peer aborts after its messages were acknowledged: Go delivers
// them, then the session ends with ErrPeerReset.
func TestAbortCToGo(t *testing.T) {
	ep := newEndpoint(t, nil)
	p := startPeer(t, "-dial", portArg(ep), "-send", "10", "-abort")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	if err := recvStream(ctx, s, 10, 128, false); err != nil {
		t.Fatal(err)
	}
	if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerReset) {
		t.Errorf("the session ended with %v, want ErrPeerReset", err)
	}
	res := p.expectOK(t, 10*time.Second)
	if res["end"] != "aborted" {
		t.Errorf("C peer end=%s, want aborted", res["end"])
	}
}

// A C peer is killed (SIGKILL: no RST) and a new one starts on the same
// port. The Go side's old session must end with a typed error (the new
// process answers the old session's frames with RST 2, or its SYN has a
// new epoch, or the kernel-stamped credentials changed: ErrPeerReset or
// ErrPeerGone), and a new session with the new process must work.
func TestPeerRestart(t *testing.T) {
	// The C peer accepts: Go's next frame of the old session reaches the
	// new process, which knows no such session.
	t.Run("acceptor", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		p1 := startPeer(t, "-accept", "-expect", "100", "-max-time", "30")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s1, err := ep.Dial(ctx, p1.port, transport.CbID{})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if err := sendStream(ctx, s1, 100); err != nil {
			t.Fatal(err)
		}
		if err := s1.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		p1.kill()
		p2 := startPeer(t, "-accept", "-bind", strconv.FormatUint(uint64(p1.port), 10), "-expect", "100")
		if p2.port != p1.port {
			t.Fatalf("the new C peer bound port %d, want %d", p2.port, p1.port)
		}
		start := time.Now()
		buf := make([]byte, 64)
		for i := 0; s1.Err() == nil && time.Since(start) < 10*time.Second; i++ {
			_ = s1.Send(ctx, fillMsg(buf, uint64(100+i)))
			time.Sleep(10 * time.Millisecond)
		}
		err = s1.Err()
		if !isOneOf(err, reliable.ErrPeerReset, reliable.ErrPeerGone) {
			t.Fatalf("the old session: %v, want ErrPeerReset or ErrPeerGone", err)
		}
		t.Logf("the old session ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
		s2, err := ep.Dial(ctx, p2.port, transport.CbID{})
		if err != nil {
			t.Fatalf("Dial the new peer: %v", err)
		}
		if err := sendStream(ctx, s2, 100); err != nil {
			t.Fatal(err)
		}
		if err := s2.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		res := p2.expectOK(t, 10*time.Second)
		t.Logf("the new C peer answered %s frames of the old session with RST 2", res["rsts_sent"])
	})
	// The C peer dials: the new process dials again from the same port,
	// with a new epoch.
	t.Run("dialer", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		p1 := startPeer(t, "-dial", portArg(ep), "-send", "100", "-max-time", "30")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s1 := accept(t, ctx, ep, p1)
		if err := recvStream(ctx, s1, 100, 128, false); err != nil {
			t.Fatal(err)
		}
		p1.kill()
		start := time.Now()
		p2 := startPeer(t, "-dial", portArg(ep), "-bind", strconv.FormatUint(uint64(p1.port), 10), "-send", "100", "-close")
		s2 := accept(t, ctx, ep, p2)
		select {
		case <-s1.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the old session did not end within 10s of the new peer's SYN")
		}
		if err := s1.Err(); !isOneOf(err, reliable.ErrPeerReset, reliable.ErrPeerGone) {
			t.Errorf("the old session: %v, want ErrPeerReset or ErrPeerGone", err)
		} else {
			t.Logf("the old session ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
		if err := recvStream(ctx, s2, 100, 128, false); err != nil {
			t.Fatal(err)
		}
		if err := waitEnd(ctx, s2); !errors.Is(err, reliable.ErrPeerClosed) {
			t.Errorf("the new session ended with %v, want ErrPeerClosed", err)
		}
		p2.expectOK(t, 10*time.Second)
	})
}

// The C peer damages every 7th frame it sends after computing its CRC
// (the CRC, a payload byte or the DSN): Go drops each one, counts it, and
// still delivers every message exactly once. The other way the C peer
// damages its ACKs, and Go's stream still completes.
func TestBadCRC(t *testing.T) {
	t.Run("CToGo", func(t *testing.T) {
		const n = 20000
		ep := newEndpoint(t, nil)
		p := startPeer(t, "-dial", portArg(ep), "-send", strconv.Itoa(n), "-size", "200", "-vary", "-close", "-bad-crc", "7")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := accept(t, ctx, ep, p)
		if err := recvStream(ctx, s, n, 200, true); err != nil {
			t.Fatal(err)
		}
		if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerClosed) {
			t.Errorf("the session ended with %v, want ErrPeerClosed", err)
		}
		res := p.expectOK(t, 10*time.Second)
		rej := ep.Stats().Rejected["checksum"]
		if rej == 0 || rej != num(res, "corrupted") {
			t.Errorf("Go counted %d frames with a bad checksum, the C peer damaged %s", rej, res["corrupted"])
		}
		t.Logf("the C peer damaged %s frames, Go rejected %d", res["corrupted"], rej)
		logGoSession(t, "receiver", ep, s)
	})
	t.Run("GoToC", func(t *testing.T) {
		const n = 20000
		ep := newEndpoint(t, nil)
		p := startPeer(t, "-accept", "-expect", strconv.Itoa(n), "-bad-crc", "7")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := ep.Dial(ctx, p.port, transport.CbID{})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if err := sendStream(ctx, s, n); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		res := p.expectOK(t, 10*time.Second)
		t.Logf("the C peer damaged %s of its frames, Go rejected %d", res["corrupted"], ep.Stats().Rejected["checksum"])
		logGoSession(t, "sender", ep, s)
	})
}

// Before every 10th message the C peer sends, with a valid CRC but a
// wrong epoch, in turn: a DATA with a bogus message at that message's
// DSN, an ACK acknowledging more than Go has sent, an RST. Go must drop
// them all (counted as "epoch"), deliver the real stream exactly, and the
// session must survive.
func TestBadEpoch(t *testing.T) {
	const n = 20000
	ep := newEndpoint(t, nil)
	p := startPeer(t, "-dial", portArg(ep), "-send", strconv.Itoa(n), "-expect", "1000", "-close", "-bad-epoch", "10")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	errc := make(chan error, 1)
	go func() { errc <- sendStream(ctx, s, 1000) }()
	if err := recvStream(ctx, s, n, 128, false); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerClosed) {
		t.Errorf("the session ended with %v, want ErrPeerClosed", err)
	}
	res := p.expectOK(t, 10*time.Second)
	rej := ep.Stats().Rejected["epoch"]
	if rej == 0 || rej != num(res, "forged") {
		t.Errorf("Go rejected %d frames for their epoch, the C peer forged %s", rej, res["forged"])
	}
	t.Logf("the C peer forged %s frames, Go rejected %d for their epoch and answered with %d RSTs, which the C peer dropped (%s frames with a wrong epoch)",
		res["forged"], rej, ep.Stats().ResetsSent, res["epoch_bad"])
}

// An idle session stays open while each side answers the other's
// keepalive PINGs with ACK, then closes. In "CPings" the C peer probes
// every 300ms and would declare Go dead after 1.5s of silence; in
// "GoPings" Go does (Config.KeepAlive, DeadPeerTimeout) and the C peer
// probes rarely. Both idle for 3.5s.
func TestKeepalive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   *reliable.Config
		cArgs []string
	}{
		{"CPings", nil, []string{"-keepalive", "300"}},
		{"GoPings", &reliable.Config{KeepAlive: 300 * time.Millisecond, DeadPeerTimeout: 1500 * time.Millisecond}, []string{"-keepalive", "2000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := newEndpoint(t, tc.cfg)
			p := startPeer(t, append([]string{"-dial", portArg(ep), "-send", "10", "-idle", "3.5", "-close"}, tc.cArgs...)...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := accept(t, ctx, ep, p)
			if err := recvStream(ctx, s, 10, 128, false); err != nil {
				t.Fatal(err)
			}
			if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerClosed) {
				t.Errorf("the session ended with %v, want ErrPeerClosed", err)
			}
			res := p.expectOK(t, 20*time.Second)
			if tc.name == "CPings" && num(res, "pings") == 0 {
				t.Errorf("the C peer sent no keepalive PING in 3.5s idle")
			}
			t.Logf("the C peer sent %s PINGs while idle; Go endpoint received %d datagrams", res["pings"], ep.Stats().DatagramsReceived)
		})
	}
}

// The C peer stops (SIGSTOP) with its socket open: nothing answers, so
// the Go session ends with ErrPeerGone after the dead-peer timeout (5s).
func TestDeadPeer(t *testing.T) {
	ep := newEndpoint(t, nil)
	p := startPeer(t, "-dial", portArg(ep), "-send", "10")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	if err := recvStream(ctx, s, 10, 128, false); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the session did not end within 15s of the peer stopping")
	}
	el := time.Since(start)
	if err := s.Err(); !errors.Is(err, reliable.ErrPeerGone) {
		t.Errorf("the session ended with %v, want ErrPeerGone", err)
	}
	if el < 4*time.Second || el > 8*time.Second {
		t.Errorf("the session ended %v after the peer stopped, want about 5s (keepalive 1s, dead-peer timeout 5s)", el)
	}
	t.Logf("the session ended %v after the peer stopped: %v", el.Round(time.Millisecond), s.Err())
}

// The C peer serves one session: a second endpoint's SYN is refused with
// RST 3, so its Dial fails with ErrPeerReset, and the first session is
// not disturbed.
func TestRefused(t *testing.T) {
	ep1 := newEndpoint(t, nil)
	ep2 := newEndpoint(t, nil)
	p := startPeer(t, "-accept", "-expect", "10")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s1, err := ep1.Dial(ctx, p.port, transport.CbID{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if _, err := ep2.Dial(ctx, p.port, transport.CbID{}); !errors.Is(err, reliable.ErrPeerReset) {
		t.Errorf("the second Dial: %v, want ErrPeerReset (refused)", err)
	} else {
		t.Logf("the second Dial: %v", err)
	}
	if err := sendStream(ctx, s1, 10); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	p.expectOK(t, 10*time.Second)
}

// Flow control: Go's window is 64 messages and its reader is slow, so its
// ACKs' limit holds the C peer back (and opens as the reader takes
// messages). The C peer must never send beyond the limit (Go would count
// the frame as "window") and must not stall.
func TestFlowControl(t *testing.T) {
	const n = 5000
	ep := newEndpoint(t, &reliable.Config{Window: 64, RecvBuffer: 8})
	p := startPeer(t, "-dial", portArg(ep), "-send", strconv.Itoa(n), "-close")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	start := time.Now()
	for i := range n {
		m, err := next(ctx, s)
		if err != nil {
			t.Fatalf("after %d messages: %v", i, err)
		}
		if !checkMsg(m, uint64(i)) {
			t.Fatalf("message %d is not the C peer's message %d", i, i)
		}
		if i%500 == 0 {
			time.Sleep(20 * time.Millisecond) // a slow reader
		}
	}
	el := time.Since(start)
	if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerClosed) {
		t.Errorf("the session ended with %v, want ErrPeerClosed", err)
	}
	res := p.expectOK(t, 10*time.Second)
	if w := ep.Stats().Rejected["window"]; w != 0 {
		t.Errorf("Go dropped %d frames of the C peer beyond its window or limit", w)
	}
	t.Logf("%d messages through a 64-message window in %v; the C peer sent %s PINGs (window probes) and retransmitted %s frames",
		n, el.Round(time.Millisecond), res["pings"], res["retransmits"])
	logGoSession(t, "receiver", ep, s)
}

// Small limits announced by Go (MaxDatagram 2048, MaxMessage 1024, Window
// 32): the C peer must keep its datagrams, and so its coalescing, within
// them; 20% loss each way, both directions at once, one frame per C
// datagram (-dgram 300).
func TestSmallLimitsBidirectional(t *testing.T) {
	const n = 20000
	ep := newEndpoint(t, &reliable.Config{Window: 32, MaxDatagram: 2048, MaxMessage: 1024})
	p := startPeer(t, append([]string{"-dial", portArg(ep), "-send", strconv.Itoa(n), "-size", "250", "-vary", "-expect", strconv.Itoa(n),
		"-dgram", "300", "-close", "-max-time", "50"}, lossArgs(t, "0.2", 5)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := accept(t, ctx, ep, p)
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- sendStream(ctx, s, n) }()
	if err := recvStream(ctx, s, n, 250, true); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if err := s.Close(); err != nil && !errors.Is(err, reliable.ErrPeerClosed) {
		t.Errorf("Close: %v, want nil or ErrPeerClosed", err)
	}
	res := p.expectOK(t, 15*time.Second)
	t.Logf("%d messages each way in %v through 20%% loss; C: %s retransmits, %s RTOs", n, el.Round(time.Millisecond), res["retransmits"], res["rtos"])
	logGoSession(t, "", ep, s)
	if r := ep.Stats().Rejected; r["truncated"] != 0 || r["window"] != 0 || r["too_large"] != 0 {
		t.Errorf("Go rejected frames of the C peer: %v", r)
	}
}

// A C peer that breaks §6.3 (-oversize: messages above the max_message
// Go announced): Go ends the session with ErrProtocol and RST 6, which
// resets the C peer.
//
// The C peer sends as soon as the handshake is done, so the session may
// end before Accept takes it; Accept then drops it, as documented (a
// failed session is never returned). Both orders are right; which one
// happens depends on the scheduler (a loaded machine makes the second
// likely), so the test accepts either, and checks the end when Accept
// got the session.
func TestOversizedMessage(t *testing.T) {
	ep := newEndpoint(t, &reliable.Config{MaxMessage: 512})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	accepted := make(chan *reliable.Session, 1)
	go func() {
		s, _ := ep.Accept(actx)
		accepted <- s
	}()
	p := startPeer(t, "-dial", portArg(ep), "-send", "10", "-size", "1000", "-oversize", "-want", "reset")
	p.expectOK(t, 10*time.Second) // the C peer was reset
	var s *reliable.Session
	select {
	case s = <-accepted:
	case <-time.After(time.Second):
		acancel()
		s = <-accepted
	}
	if s == nil {
		t.Logf("the session ended before Accept took it: dropped, as documented")
	} else if s.Peer() != p.port {
		t.Errorf("accepted a session from port %d, want the C peer's %d", s.Peer(), p.port)
	} else if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrProtocol) {
		t.Errorf("the session ended with %v, want ErrProtocol", err)
	} else {
		t.Logf("the session ended: %v", err)
	}
	if n := ep.Stats().Rejected["too_large"]; n == 0 {
		t.Errorf("Go counted no too_large frame")
	}
}

// SYN and SYNACK announcing a window of 0 (§5.2): the receiver answers
// RST 4 and no session opens, whichever side dials.
func TestBadHandshake(t *testing.T) {
	t.Run("CDials", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		p := startPeer(t, "-dial", portArg(ep), "-syn-window", "0", "-want", "reset")
		p.expectOK(t, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if s, err := ep.Accept(ctx); err == nil {
			t.Errorf("Accept returned a session from port %d", s.Peer())
		}
		if n := ep.Stats().Rejected["malformed"]; n == 0 {
			t.Errorf("Go counted no malformed SYN")
		}
	})
	t.Run("GoDials", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		p := startPeer(t, "-accept", "-syn-window", "0", "-want", "reset")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := ep.Dial(ctx, p.port, transport.CbID{}); !errors.Is(err, reliable.ErrPeerReset) {
			t.Errorf("Dial: %v, want ErrPeerReset (RST 4)", err)
		} else {
			t.Logf("Dial: %v", err)
		}
		p.expectOK(t, 10*time.Second)
	})
}

// A full peer (§7.3): with a small receive buffer on one side, the other
// side's sends meet EAGAIN and must be retried later, not lost and not
// spun on. Both directions, 50,000 messages each.
func TestFullPeer(t *testing.T) {
	const n = 50000
	t.Run("GoFull", func(t *testing.T) {
		ep := newEndpointSock(t, transport.Config{ReadBuffer: 16 << 10, WriteBuffer: 4 << 20}, nil)
		p := startPeer(t, "-dial", portArg(ep), "-send", strconv.Itoa(n), "-close", "-dgram", "4096")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := accept(t, ctx, ep, p)
		start := time.Now()
		if err := recvStream(ctx, s, n, 128, false); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		if err := waitEnd(ctx, s); !errors.Is(err, reliable.ErrPeerClosed) {
			t.Errorf("the session ended with %v, want ErrPeerClosed", err)
		}
		res := p.expectOK(t, 10*time.Second)
		t.Logf("%d messages in %v; the C peer met EAGAIN %s times", n, el.Round(time.Millisecond), res["eagain"])
	})
	t.Run("CFull", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		p := startPeer(t, "-accept", "-expect", strconv.Itoa(n), "-rcvbuf", "16384")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := ep.Dial(ctx, p.port, transport.CbID{})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		start := time.Now()
		if err := sendStream(ctx, s, n); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		el := time.Since(start)
		p.expectOK(t, 10*time.Second)
		t.Logf("%d messages in %v; Go met a full C peer %d times", n, el.Round(time.Millisecond), ep.Stats().PeerBusy)
		logGoSession(t, "sender", ep, s)
	})
}

// Not a failure of the protocol but a performance cliff, kept as a
// reproducer: at 30% loss each way 100,000 messages Go->C take 9-17 s,
// while C->Go takes under a second. Most of Go's repairs then wait for
// its RTO (38,460 of 66,664 retransmissions in one run), and its SRTT
// inflates (91 ms in one run on a path of ~0.1 ms): a frame sent once
// whose ACKs were lost is sampled when a later ACK finally covers it, so
// the sample includes the wait; and the RTO backoff collapses only on
// such a (Karn-valid) sample. The C peer's simpler sender collapses its
// backoff on any cumulative progress. Set CNLINK_INTEROP_HEAVY=1 to run.
func TestHeavyLossGoToC(t *testing.T) {
	if os.Getenv("CNLINK_INTEROP_HEAVY") == "" {
		t.Skip("Go's RTO backoff under 30% loss each way (see the comment); set CNLINK_INTEROP_HEAVY=1 to run")
	}
	const n = 100000
	ep := newEndpoint(t, nil)
	p := startPeer(t, append([]string{"-accept", "-expect", strconv.Itoa(n), "-max-time", "100"}, lossArgs(t, "0.3", 6)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	s, err := ep.Dial(ctx, p.port, transport.CbID{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	start := time.Now()
	if err := sendStream(ctx, s, n); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	el := time.Since(start)
	p.expectOK(t, 20*time.Second)
	logGoSession(t, "sender", ep, s)
	if el > 5*time.Second {
		t.Errorf("%d messages took %v at 30%% loss each way", n, el)
	}
}
