//go:build linux

package bench_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cnlink/cnlink/bench"
	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

const (
	// sendBatch is how many messages the sender hands to SendBatch at
	// once, as a throughput-minded application would.
	sendBatch = 64
	// recvBatch is how many messages one RecvBatch call may return.
	recvBatch = 256
	// runTimeout bounds one benchmark run: a stalled session fails it
	// instead of hanging the suite.
	runTimeout = 5 * time.Minute
)

// reliablePair is two endpoints over real netlink sockets with a session
// between them: a dialed b.
type reliablePair struct {
	epA, epB *reliable.Endpoint
	a, b     *reliable.Session
}

// newReliablePair opens the pair. With lossPercent > 0 each transport is
// wrapped by the fault injector, which drops that share of the datagrams
// it sends (data one way, acknowledgements the other), seeded so that a
// run's loss pattern is reproducible given the same call sequence.
func newReliablePair(b *testing.B, lossPercent int, seed uint64) *reliablePair {
	b.Helper()
	open := func(i uint64) *reliable.Endpoint {
		tr, err := transport.Open(transport.Config{ReadBuffer: sockBuffer, WriteBuffer: sockBuffer})
		if err != nil {
			b.Fatalf("transport: %v", err)
		}
		var t transport.Transport = tr
		if lossPercent > 0 {
			t = fault.Wrap(tr, fault.Config{Seed: seed*2 + i, Send: fault.Direction{Loss: float64(lossPercent) / 100}})
		}
		ep, err := reliable.NewEndpoint(t, nil)
		if err != nil {
			t.Close()
			b.Fatalf("endpoint: %v", err)
		}
		return ep
	}
	p := &reliablePair{epA: open(0), epB: open(1)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	accepted := make(chan error, 1)
	go func() {
		var err error
		p.b, err = p.epB.Accept(ctx)
		accepted <- err
	}()
	var err error
	p.a, err = p.epA.Dial(ctx, p.epB.LocalPort(), transport.CbID{})
	if aerr := <-accepted; err == nil {
		err = aerr
	}
	if err != nil {
		p.close()
		b.Fatalf("handshake: %v", err)
	}
	return p
}

func (p *reliablePair) close() {
	p.epA.Close()
	p.epB.Close()
}

// retransmits sums both sessions' retransmitted frames.
func (p *reliablePair) retransmits() uint64 {
	return p.a.Stats().Retransmits + p.b.Stats().Retransmits
}

// reportPath reports how the messages travelled: datagrams the sending
// endpoint used per message (coalescing makes it small) and sends that
// met a full peer queue (EAGAIN, either side) per message.
func (p *reliablePair) reportPath(b *testing.B, n int) {
	a, bs := p.epA.Stats(), p.epB.Stats()
	b.ReportMetric(float64(a.DatagramsSent)/float64(n), "dgrams/msg")
	b.ReportMetric(float64(a.PeerBusy+bs.PeerBusy)/float64(n), "eagain/msg")
}

func BenchmarkReliable(b *testing.B) {
	testenv.RequireNetAdmin(b)
	for _, loss := range bench.LossPercents {
		for _, size := range bench.Sizes {
			b.Run(fmt.Sprintf("loss=%d/size=%d", loss, size), func(b *testing.B) {
				benchReliable(b, loss, size)
			})
		}
	}
}

// benchReliable streams b.N messages from a to b: SendBatch in batches of
// sendBatch on this goroutine, a receiver goroutine draining RecvBatch
// (recycling each message) and checking every message.
func benchReliable(b *testing.B, lossPercent, size int) {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	p := newReliablePair(b, lossPercent, uint64(lossPercent*100000+size))
	defer p.close()
	total := b.N
	ctx, cancel := context.WithTimeoutCause(context.Background(), runTimeout, errors.New("run timed out"))
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	done := make(chan error, 1)
	go func() {
		// The throughput-minded receiver: RecvBatch, and Recycle so
		// that the receive path allocates nothing either.
		c := bench.Checker{Size: size}
		in := make([][]byte, recvBatch)
		for int(c.Count()) < total {
			k, err := p.b.RecvBatch(ctx, in)
			if err != nil {
				if ctx.Err() != nil {
					err = fmt.Errorf("after %d messages: %w", c.Count(), context.Cause(ctx))
				} else {
					err = fmt.Errorf("receiving session ended after %d messages: %w", c.Count(), err)
				}
				done <- err
				return
			}
			for _, m := range in[:k] {
				if err := c.Check(m); err != nil {
					fail(err)
					done <- err
					return
				}
				p.b.Recycle(m)
			}
		}
		done <- c.Done(total)
	}()
	batch := make([][]byte, sendBatch)
	for i := range batch {
		batch[i] = make([]byte, size)
	}
	b.ResetTimer()
	for sent := 0; sent < total; {
		k := min(sendBatch, total-sent)
		for i := range k {
			bench.Stamp(batch[i], uint64(sent+i))
		}
		n, err := p.a.SendBatch(ctx, batch[:k])
		sent += n
		if err != nil {
			fail(err)
			b.Fatalf("SendBatch after %d messages: %v (receiver: %v)", sent, err, <-done)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	bench.ReportRate(b, total)
	bench.ReportRetransmits(b, p.retransmits(), total)
	p.reportPath(b, total)
}

// BenchmarkRequestReply times Session.Request round trips of 64-byte
// messages to a peer that echoes each request with Request.Reply, one at
// a time. Compare its p50-us with BenchmarkRawPingPong's.
func BenchmarkRequestReply(b *testing.B) {
	testenv.RequireNetAdmin(b)
	benchRequestReply(b, 0)
}

// BenchmarkRequestReplyLossy is BenchmarkRequestReply with 1% of the
// datagrams each side sends dropped: its p99-us is what recovery costs a
// caller (docs/ARCHITECTURE.md §6 asks for at most 5 ms).
func BenchmarkRequestReplyLossy(b *testing.B) {
	testenv.RequireNetAdmin(b)
	b.Run("loss=1", func(b *testing.B) { benchRequestReply(b, 1) })
}

func benchRequestReply(b *testing.B, lossPercent int) {
	b.ReportAllocs()
	b.SetBytes(pingSize)
	p := newReliablePair(b, lossPercent, uint64(1+lossPercent))
	defer p.close()
	ctx, cancel := context.WithTimeoutCause(context.Background(), runTimeout, errors.New("run timed out"))
	defer cancel()
	served := make(chan error, 1)
	go func() {
		for {
			select {
			case req := <-p.b.Requests():
				if err := req.Reply(ctx, req.Data); err != nil {
					served <- fmt.Errorf("reply: %w", err)
					return
				}
			case m := <-p.b.Recv():
				served <- fmt.Errorf("unexpected plain message of %d bytes", len(m))
				return
			case <-ctx.Done():
				served <- nil
				return
			}
		}
	}()
	total := b.N
	msg := make([]byte, pingSize)
	samples := make([]time.Duration, total)
	c := bench.Checker{Size: pingSize}
	b.ResetTimer()
	for i := range total {
		bench.Stamp(msg, uint64(i))
		t0 := time.Now()
		resp, err := p.a.Request(ctx, msg)
		samples[i] = time.Since(t0)
		if err == nil {
			err = c.Check(resp)
		}
		if err != nil {
			cancel()
			b.Fatalf("request %d: %v (server: %v)", i, err, <-served)
		}
	}
	b.StopTimer()
	cancel()
	if err := <-served; err != nil {
		b.Fatal(err)
	}
	bench.ReportLatency(b, samples)
	bench.ReportRetransmits(b, p.retransmits(), total)
}
