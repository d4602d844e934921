//go:build linux

package bench_test

import (
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/bench"
	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// The raw baselines use golang.org/x/sys/unix directly: blocking
// NETLINK_CONNECTOR sockets, sendto and recvfrom, no protocol. Unicast
// between user ports has backpressure (a blocking sender sleeps while the
// receiver's queue is full, docs/PLATFORM.md §3), so nothing is lost and the
// numbers are the kernel's ceiling for each shape.

const (
	// sockBuffer is SO_SNDBUF and SO_RCVBUF of every socket in the suite,
	// raw and reliable alike, so that both get the same kernel queueing.
	sockBuffer = 4 << 20
	// batchBytes bounds a batched datagram.
	batchBytes = 64 << 10
	// stallTimeout is SO_SNDTIMEO / SO_RCVTIMEO of the raw sockets: a
	// benchmark whose peer stopped fails after it instead of hanging.
	stallTimeout = 10 * time.Second
	// pingSize is the payload of the request/reply and ping-pong runs.
	pingSize = 64
)

var benchChannel = transport.CbID{Idx: 0x434e4c4b, Val: 0xbe}

// rawSock is a blocking NETLINK_CONNECTOR socket on a kernel-assigned port.
type rawSock struct {
	fd   int
	port uint32
}

func openRaw(b testing.TB) *rawSock {
	b.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		b.Fatalf("socket: %v", err)
	}
	tv := unix.NsecToTimeval(stallTimeout.Nanoseconds())
	for _, o := range []struct {
		name string
		set  func() error
	}{
		{"SO_SNDBUFFORCE", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuffer) }},
		{"SO_RCVBUFFORCE", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuffer) }},
		{"SO_SNDTIMEO", func() error { return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv) }},
		{"SO_RCVTIMEO", func() error { return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) }},
		{"bind", func() error { return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}) }},
	} {
		if err := o.set(); err != nil {
			unix.Close(fd)
			b.Fatalf("%s: %v", o.name, err)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		b.Fatalf("getsockname: %v", err)
	}
	return &rawSock{fd: fd, port: sa.(*unix.SockaddrNetlink).Pid}
}

func (r *rawSock) close() { unix.Close(r.fd) }

// sendto sends p to port. It builds the sockaddr itself because
// unix.Sendto's Sockaddr interface costs an allocation per call, which
// would be charged to the baseline.
func (r *rawSock) sendto(port uint32, p []byte) error {
	sa := unix.RawSockaddrNetlink{Family: unix.AF_NETLINK, Pid: port}
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(r.fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
			0, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrNetlink)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return fmt.Errorf("sendto: peer stalled for %v", stallTimeout)
		}
		return fmt.Errorf("sendto: %w", e)
	}
}

// recvfrom receives one datagram from port into buf. Datagrams from
// other ports are an error: nothing else may talk to these sockets.
func (r *rawSock) recvfrom(buf []byte, port uint32) (int, error) {
	var sa unix.RawSockaddrNetlink
	for {
		salen := uint32(unix.SizeofSockaddrNetlink)
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(r.fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)),
			0, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
		switch e {
		case 0:
			if sa.Pid != port {
				return 0, fmt.Errorf("recvfrom: datagram from port %d, want %d", sa.Pid, port)
			}
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, fmt.Errorf("recvfrom: nothing for %v", stallTimeout)
		}
		return 0, fmt.Errorf("recvfrom: %w", e)
	}
}

// datagram is perDgram connector frames of size-byte payloads, encoded
// once; stamp rewrites the payload indexes in place for each send.
type datagram struct {
	buf        []byte
	flen, size int
}

func newDatagram(b testing.TB, size, perDgram int) *datagram {
	b.Helper()
	d := &datagram{flen: transport.FrameLen(size), size: size}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for range perDgram {
		var err error
		d.buf, err = transport.AppendFrame(d.buf, &transport.Frame{NlType: transport.NlmsgDone, ID: benchChannel, Payload: payload})
		if err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// stamp returns the datagram carrying the k messages from index first on.
func (d *datagram) stamp(first uint64, k int) []byte {
	out := d.buf[:k*d.flen]
	for i := range k {
		p := i*d.flen + transport.FrameHeaderLen
		bench.Stamp(out[p:p+d.size], first+uint64(i))
	}
	return out
}

func BenchmarkRawNetlink(b *testing.B) {
	testenv.RequireNetAdmin(b)
	for _, size := range bench.Sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchRaw(b, size, 1) })
	}
}

func BenchmarkRawNetlinkBatched(b *testing.B) {
	testenv.RequireNetAdmin(b)
	for _, size := range bench.Sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			benchRaw(b, size, batchBytes/transport.FrameLen(size))
		})
	}
}

// benchRaw sends b.N messages of size bytes, perDgram per datagram, from
// one socket to another; a receiver goroutine checks every one.
func benchRaw(b *testing.B, size, perDgram int) {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	tx, rx := openRaw(b), openRaw(b)
	defer tx.close()
	defer rx.close()
	d := newDatagram(b, size, perDgram)
	total := b.N
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, batchBytes+4096)
		c := bench.Checker{Size: size}
		var sc transport.Scanner
		for int(c.Count()) < total {
			n, err := rx.recvfrom(buf, tx.port)
			if err != nil {
				done <- err
				return
			}
			sc.Reset(buf[:n])
			for sc.Next() {
				if err := c.Check(sc.Frame().Payload); err != nil {
					done <- err
					return
				}
			}
			if err := sc.Err(); err != nil {
				done <- err
				return
			}
		}
		done <- c.Done(total)
	}()
	b.ResetTimer()
	for sent := 0; sent < total; {
		k := min(perDgram, total-sent)
		if err := tx.sendto(rx.port, d.stamp(uint64(sent), k)); err != nil {
			b.Fatalf("%v (receiver: %v)", err, <-done)
		}
		sent += k
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	bench.ReportRate(b, total)
}

// BenchmarkRawPingPong is the round-trip baseline for
// BenchmarkRequestReply: a 64-byte message to an echo goroutine and back
// over blocking sockets, timed one by one.
func BenchmarkRawPingPong(b *testing.B) {
	testenv.RequireNetAdmin(b)
	b.ReportAllocs()
	b.SetBytes(pingSize)
	cli, srv := openRaw(b), openRaw(b)
	defer cli.close()
	defer srv.close()
	total := b.N
	echoDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for range total {
			n, err := srv.recvfrom(buf, cli.port)
			if err == nil {
				err = srv.sendto(cli.port, buf[:n])
			}
			if err != nil {
				echoDone <- err
				return
			}
		}
		echoDone <- nil
	}()
	d := newDatagram(b, pingSize, 1)
	buf := make([]byte, 4096)
	samples := make([]time.Duration, total)
	c := bench.Checker{Size: pingSize}
	var sc transport.Scanner
	b.ResetTimer()
	for i := range total {
		t0 := time.Now()
		err := cli.sendto(srv.port, d.stamp(uint64(i), 1))
		var n int
		if err == nil {
			n, err = cli.recvfrom(buf, srv.port)
		}
		samples[i] = time.Since(t0)
		if err == nil {
			sc.Reset(buf[:n])
			if !sc.Next() {
				err = errors.Join(errors.New("empty reply"), sc.Err())
			} else {
				err = c.Check(sc.Frame().Payload)
			}
		}
		if err != nil {
			b.Fatalf("round trip %d: %v", i, err)
		}
	}
	b.StopTimer()
	if err := <-echoDone; err != nil {
		b.Fatal(err)
	}
	bench.ReportLatency(b, samples)
}
