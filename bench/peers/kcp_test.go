package peers_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"

	"github.com/cnlink/cnlink/bench"
	"github.com/cnlink/cnlink/bench/peers"
)

func BenchmarkKCP(b *testing.B) {
	for _, loss := range bench.LossPercents {
		for _, size := range bench.Sizes {
			b.Run(fmt.Sprintf("loss=%d/size=%d", loss, size), func(b *testing.B) {
				benchKCP(b, loss, size)
			})
		}
	}
}

// fastMode is kcp-go's "fast" profile as its README and kcptun describe
// it: no delayed ACK, a 10 ms internal clock, fast resend after 2
// duplicate ACKs, no congestion control; windows of 1024 packets.
func fastMode(s *kcp.UDPSession) {
	s.SetNoDelay(1, 10, 2, 1)
	s.SetWindowSize(1024, 1024)
	s.SetReadBuffer(sockBuffer)
	s.SetWriteBuffer(sockBuffer)
}

var kcpConv atomic.Uint32

// benchKCP streams b.N messages over a kcp-go session on UDP loopback.
// Without loss the sessions get the plain *net.UDPConn, so kcp-go uses
// sendmmsg/recvmmsg as it would for a user; with loss each side's socket
// is wrapped by LossyConn (which hides the batch path: kcp-go then sends
// one datagram per syscall).
func benchKCP(b *testing.B, lossPercent, size int) {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	udp := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadBuffer(sockBuffer)
		c.SetWriteBuffer(sockBuffer)
		return c
	}
	srvUDP, cliUDP := udp(), udp()
	defer srvUDP.Close()
	defer cliUDP.Close()
	var srvPC, cliPC net.PacketConn = srvUDP, cliUDP
	if lossPercent > 0 {
		seed := uint64(lossPercent*100000 + size)
		srvPC = peers.NewLossyConn(srvUDP, float64(lossPercent)/100, seed*2)
		cliPC = peers.NewLossyConn(cliUDP, float64(lossPercent)/100, seed*2+1)
	}
	l, err := kcp.ServeConn(nil, 0, 0, srvPC)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	tx, err := kcp.NewConn3(kcpConv.Add(1), srvUDP.LocalAddr(), nil, 0, 0, cliPC)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	fastMode(tx)
	deadline := time.Now().Add(runTimeout)
	tx.SetDeadline(deadline)

	total := b.N
	kcp.DefaultSnmp.Reset()
	done := make(chan error, 1)
	go func() {
		// The listener makes the session when the first segment arrives.
		l.SetDeadline(deadline)
		rx, err := l.AcceptKCP()
		if err != nil {
			done <- fmt.Errorf("accept: %w", err)
			return
		}
		defer rx.Close()
		fastMode(rx)
		rx.SetDeadline(deadline)
		buf := make([]byte, size)
		c := bench.Checker{Size: size}
		for int(c.Count()) < total {
			// kcp-go splits a Write into MSS-sized messages, so a
			// message comes back in one or more Reads.
			_, err := io.ReadFull(rx, buf)
			if err == nil {
				err = c.Check(buf)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- c.Done(total)
	}()
	msg := make([]byte, size)
	b.ResetTimer()
	for i := range total {
		bench.Stamp(msg, uint64(i))
		if _, err := tx.Write(msg); err != nil {
			tx.Close()
			b.Fatalf("write %d: %v (receiver: %v)", i, err, <-done)
		}
	}
	if err := <-done; err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			err = fmt.Errorf("session closed: %w", err)
		}
		b.Fatal(err)
	}
	b.StopTimer()
	bench.ReportRate(b, total)
	bench.ReportRetransmits(b, kcp.DefaultSnmp.Copy().RetransSegs, total)
}
