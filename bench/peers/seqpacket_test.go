//go:build linux

package peers_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/cnlink/cnlink/bench"
)

func BenchmarkSeqpacket(b *testing.B) {
	for _, size := range bench.Sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchSeqpacket(b, size) })
	}
}

// benchSeqpacket sends b.N messages over a unix SOCK_SEQPACKET
// connection, one Write per message, to a receiver goroutine that checks
// each record.
func benchSeqpacket(b *testing.B, size int) {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	// An abstract address: nothing on disk, nothing to clean up.
	addr := &net.UnixAddr{Net: "unixpacket", Name: fmt.Sprintf("@cnlink-bench-%x", rand.Uint64())}
	l, err := net.ListenUnix("unixpacket", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			b.Error(err)
		}
		accepted <- c
	}()
	tx, err := net.DialUnix("unixpacket", nil, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	rx := <-accepted
	if rx == nil {
		b.FailNow()
	}
	defer rx.Close()
	tx.SetWriteBuffer(sockBuffer)
	rx.SetReadBuffer(sockBuffer)
	deadline := time.Now().Add(runTimeout)
	tx.SetDeadline(deadline)
	rx.SetDeadline(deadline)

	total := b.N
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, size+1) // one spare byte shows an oversized record
		c := bench.Checker{Size: size}
		for int(c.Count()) < total {
			n, err := rx.Read(buf)
			if err == nil {
				err = c.Check(buf[:n])
			}
			if err != nil {
				rx.Close() // unblocks the sender
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
			b.Fatalf("write %d: %v (receiver: %v)", i, err, <-done)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	bench.ReportRate(b, total)
}
