//go:build linux

package transport_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// The benchmarks send b.N messages of a given payload size from one
// socket to another in the same process, the receiver on its own
// goroutine checking that every message arrives once and in order.
// "single" puts one message in each datagram; "batched" packs as many as
// fit in 64 KiB (3 at 16 KiB payloads). BenchmarkAdapter goes through
// Conn; BenchmarkRawSyscall is the baseline: blocking sockets driven by
// plain unix.Sendto / unix.Recvfrom. Both run in one invocation so that
// their ratio is measured on the same machine state.

var benchSizes = []int{64, 256, 1024, 4096, 16384}

const batchBytes = 64 << 10

// benchSocketBuffer is SO_RCVBUF for both receivers: the system default,
// so the numbers describe what an untuned endpoint gets.
const benchSocketBuffer = 0

func BenchmarkAdapter(b *testing.B) {
	if !testenv.NetAdmin() {
		b.Skip("needs CAP_NET_ADMIN to send between user ports")
	}
	forEachShape(b, benchAdapter)
}

func BenchmarkRawSyscall(b *testing.B) {
	if !testenv.NetAdmin() {
		b.Skip("needs CAP_NET_ADMIN to send between user ports")
	}
	forEachShape(b, benchRaw)
}

func forEachShape(b *testing.B, run func(b *testing.B, size, perDgram int)) {
	for _, mode := range []string{"single", "batched"} {
		for _, size := range benchSizes {
			perDgram := 1
			if mode == "batched" {
				perDgram = batchBytes / transport.FrameLen(size)
			}
			b.Run(fmt.Sprintf("%s/size=%d", mode, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				cpu0 := cpuTime(b)
				run(b, size, perDgram)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				// CPU time (all threads, user+system) per message holds
				// up better than wall time on a shared, noisy machine. It
				// includes setup, which b.N amortises.
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDatagram is perDgram frames of size-byte payloads; stamp rewrites
// their cn_msg seq in place so that no datagram is encoded in the loop.
type benchDatagram struct {
	buf  []byte
	flen int
}

func newBenchDatagram(b *testing.B, size, perDgram int) *benchDatagram {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	d := &benchDatagram{flen: transport.FrameLen(size)}
	for range perDgram {
		var err error
		d.buf, err = transport.AppendFrame(d.buf, &transport.Frame{NlType: transport.NlmsgDone, ID: transport.CbID{Idx: 0x10010, Val: 1}, Payload: payload})
		if err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// next returns the datagram carrying the k messages from seq on.
func (d *benchDatagram) next(seq uint32, k int) []byte {
	out := d.buf[:k*d.flen]
	for i := range k {
		binary.NativeEndian.PutUint32(out[i*d.flen+24:], seq+uint32(i))
	}
	return out
}

// checker verifies what the receiver gets: whole messages of the right
// size, in sequence.
type checker struct {
	size int
	want uint32
	sc   transport.Scanner
}

func (c *checker) datagram(p []byte) error {
	c.sc.Reset(p)
	for c.sc.Next() {
		f := c.sc.Frame()
		if f.Seq != c.want || len(f.Payload) != c.size {
			return fmt.Errorf("got seq %d with %d bytes, want seq %d with %d", f.Seq, len(f.Payload), c.want, c.size)
		}
		c.want++
	}
	return c.sc.Err()
}

// busyWait backs off after ErrPeerBusy. The kernel never wakes a netlink
// sender once the peer drains, so the sender polls on a timer: sleeps from
// 5 us, doubling up to a millisecond. It does not spin: the kernel
// allocates and copies the whole datagram before it finds the peer's queue
// full, so each refused attempt costs about as much as a successful one
// and steals memory bandwidth and CPU from the receiver. Measured here
// with 64 KiB datagrams and the default queue, 64 yields before sleeping
// made the sender 3-4x slower than this.
func busyWait(n *int) {
	time.Sleep(min(5*time.Microsecond<<min(*n, 8), time.Millisecond))
	*n++
}

func benchAdapter(b *testing.B, size, perDgram int) {
	tx, err := transport.Open(transport.Config{NoCredentials: true, WriteBuffer: 2 * batchBytes})
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	rx, err := transport.Open(transport.Config{ReadBuffer: benchSocketBuffer})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	dst := transport.Addr{Port: rx.LocalPort()}
	d := newBenchDatagram(b, size, perDgram)

	total := b.N
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, batchBytes+4096)
		c := &checker{size: size}
		for int(c.want) < total {
			p, err := rx.Receive(buf)
			if err != nil {
				done <- err
				return
			}
			if p.Overrun || p.Truncated || p.From != tx.LocalPort() {
				done <- fmt.Errorf("unexpected packet: overrun=%v truncated=%v from=%d", p.Overrun, p.Truncated, p.From)
				return
			}
			if err := c.datagram(p.Data); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	b.ResetTimer()
	for sent := 0; sent < total; {
		k := min(perDgram, total-sent)
		dg := d.next(uint32(sent), k)
		for spins := 0; ; {
			err := tx.Send(dst, dg)
			if err == nil {
				break
			}
			if !errors.Is(err, transport.ErrPeerBusy) {
				rx.Close() // unblocks the receiver
				<-done
				b.Fatalf("send: %v", err)
			}
			busyWait(&spins)
		}
		sent += k
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// How often the sender found the receiver's queue full and had to
	// poll: the cost the raw baseline pays by sleeping in the kernel.
	b.ReportMetric(float64(tx.Stats().PeerBusy)/float64(b.N), "eagain/op")
}

func benchRaw(b *testing.B, size, perDgram int) {
	open := func(sndbuf int) int {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			b.Fatal(err)
		}
		if sndbuf > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndbuf); err != nil {
				unix.Close(fd)
				b.Fatal(err)
			}
		}
		return fd
	}
	tx := open(2 * batchBytes)
	defer unix.Close(tx)
	rx := open(0)
	defer unix.Close(rx)
	if benchSocketBuffer > 0 {
		if err := unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, benchSocketBuffer); err != nil {
			b.Fatal(err)
		}
	}
	// A receive timeout lets the receiver notice that the sender gave up.
	if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		b.Fatal(err)
	}
	sa, err := unix.Getsockname(rx)
	if err != nil {
		b.Fatal(err)
	}
	txsa, err := unix.Getsockname(tx)
	if err != nil {
		b.Fatal(err)
	}
	txPort := txsa.(*unix.SockaddrNetlink).Pid
	dst := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: sa.(*unix.SockaddrNetlink).Pid}
	d := newBenchDatagram(b, size, perDgram)

	total := b.N
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, batchBytes+4096)
		c := &checker{size: size}
		for int(c.want) < total {
			n, from, err := unix.Recvfrom(rx, buf, 0)
			if err == unix.EINTR || (err == unix.EAGAIN && !stop.Load()) {
				continue
			}
			if err != nil {
				done <- err
				return
			}
			if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != txPort {
				done <- fmt.Errorf("datagram from %v, want port %d", from, txPort)
				return
			}
			if err := c.datagram(buf[:n]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	b.ResetTimer()
	for sent := 0; sent < total; {
		k := min(perDgram, total-sent)
		// Blocking sendto: the kernel puts the sender to sleep while the
		// receiver's queue is full and wakes it as the queue drains.
		if err := unix.Sendto(tx, d.next(uint32(sent), k), 0, dst); err != nil {
			if err == unix.EINTR {
				continue
			}
			stop.Store(true)
			<-done
			b.Fatalf("sendto: %v", err)
		}
		sent += k
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}
