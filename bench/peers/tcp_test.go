package peers_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/cnlink/cnlink/bench"
)

func BenchmarkTCPBuffered(b *testing.B) {
	for _, size := range bench.Sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchTCP(b, size) })
	}
}

// benchTCP sends b.N length-prefixed messages over TCP loopback through
// a bufio.Writer, flushed once at the end, to a receiver goroutine that
// reads them back through a bufio.Reader and checks each one. A stream
// has no message boundaries: the 4-byte prefix is the framing any real
// application would add.
func benchTCP(b *testing.B, size int) {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := l.AcceptTCP()
		if err != nil {
			b.Error(err)
		}
		accepted <- c
	}()
	tx, err := net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
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
		r := bufio.NewReaderSize(rx, writeBuffer)
		var hdr [4]byte
		buf := make([]byte, size)
		c := bench.Checker{Size: size}
		for int(c.Count()) < total {
			_, err := io.ReadFull(r, hdr[:])
			if n := int(binary.LittleEndian.Uint32(hdr[:])); err == nil && n != size {
				err = fmt.Errorf("message %d: length prefix %d, want %d", c.Count(), n, size)
			}
			if err == nil {
				_, err = io.ReadFull(r, buf)
			}
			if err == nil {
				err = c.Check(buf)
			}
			if err != nil {
				rx.Close() // unblocks the sender
				done <- err
				return
			}
		}
		done <- c.Done(total)
	}()
	w := bufio.NewWriterSize(tx, writeBuffer)
	msg := make([]byte, 4+size)
	binary.LittleEndian.PutUint32(msg, uint32(size))
	b.ResetTimer()
	for i := range total {
		bench.Stamp(msg[4:], uint64(i))
		if _, err := w.Write(msg); err != nil {
			b.Fatalf("write %d: %v (receiver: %v)", i, err, <-done)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatalf("flush: %v (receiver: %v)", err, <-done)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	bench.ReportRate(b, total)
}
