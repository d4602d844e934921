package bench

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Sizes are the payload sizes, in bytes, of every throughput benchmark.
var Sizes = []int{64, 256, 1024, 4096, 16384}

// LossPercents are the injected loss rates, in percent of datagrams sent
// by either side, of the benchmarks that inject loss.
var LossPercents = []int{0, 1, 10}

// MinSize is the smallest message Stamp and Checker handle: the index
// takes the first 8 bytes and the check byte sits after it.
const MinSize = 9

// Stamp marks msg as message number i: i goes into the first 8 bytes
// (little endian) and a byte derived from i into the last, so that a
// receiver can tell a lost, duplicated, reordered or truncated message
// from the right one by looking at two places only.
func Stamp(msg []byte, i uint64) {
	binary.LittleEndian.PutUint64(msg, i)
	msg[len(msg)-1] = checkByte(i)
}

func checkByte(i uint64) byte { return byte(i*131 + 7) }

// Index returns the number Stamp wrote into msg.
func Index(msg []byte) uint64 { return binary.LittleEndian.Uint64(msg) }

// Checker verifies what a receiver gets: messages of exactly Size bytes
// carrying the indexes 0, 1, 2, ... in order, each once.
type Checker struct {
	Size int
	next uint64
}

// Check verifies the next message.
func (c *Checker) Check(msg []byte) error {
	if len(msg) != c.Size {
		return fmt.Errorf("message %d: %d bytes, want %d", c.next, len(msg), c.Size)
	}
	if got := Index(msg); got != c.next {
		return fmt.Errorf("got message %d, want %d (lost, duplicated or reordered)", got, c.next)
	}
	if msg[len(msg)-1] != checkByte(c.next) {
		return fmt.Errorf("message %d: last byte %#x, want %#x (truncated or corrupted)", c.next, msg[len(msg)-1], checkByte(c.next))
	}
	c.next++
	return nil
}

// Count is how many messages have passed Check.
func (c *Checker) Count() uint64 { return c.next }

// Done reports an error unless exactly n messages passed Check.
func (c *Checker) Done(n int) error {
	if c.next != uint64(n) {
		return fmt.Errorf("received %d messages, want %d", c.next, n)
	}
	return nil
}

// GapChecker verifies what a receiver that may lose messages gets (raw
// multicast): messages of exactly Size bytes, each whole, whose indexes
// only increase. A lost message is skipped; a duplicated, reordered,
// truncated or corrupted one is an error.
type GapChecker struct {
	Size        int
	next, count uint64
}

// Check verifies the next message that arrived.
func (c *GapChecker) Check(msg []byte) error {
	if len(msg) != c.Size {
		return fmt.Errorf("message after %d: %d bytes, want %d", c.next, len(msg), c.Size)
	}
	i := Index(msg)
	if i < c.next {
		return fmt.Errorf("got message %d after %d (duplicated or reordered)", i, c.next-1)
	}
	if msg[len(msg)-1] != checkByte(i) {
		return fmt.Errorf("message %d: last byte %#x, want %#x (truncated or corrupted)", i, msg[len(msg)-1], checkByte(i))
	}
	c.next = i + 1
	c.count++
	return nil
}

// Count is how many messages have passed Check.
func (c *GapChecker) Count() uint64 { return c.count }

// ReportRate reports msgs/s for n messages over the benchmark's timed
// part. MB/s comes from b.SetBytes, which the benchmarks set to the
// payload size: one message is one op.
func ReportRate(b *testing.B, n int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)/s, "msgs/s")
	}
}

// ReportRetransmits reports retransmissions per message: frames (or, for
// protocols that fragment, segments) sent again, divided by the messages
// delivered.
func ReportRetransmits(b *testing.B, retransmits uint64, n int) {
	if n > 0 {
		b.ReportMetric(float64(retransmits)/float64(n), "retrans/msg")
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of samples by
// the nearest-rank method. It sorts samples in place.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	rank := int(float64(len(samples))*p/100+0.999999999) - 1
	return samples[min(max(rank, 0), len(samples)-1)]
}

// ReportLatency reports the p50-us and p99-us of round-trip samples, and
// the round trips per second as msgs/s.
func ReportLatency(b *testing.B, samples []time.Duration) {
	ReportRate(b, len(samples))
	p50 := Percentile(samples, 50)
	p99 := Percentile(samples, 99)
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-us")
}
