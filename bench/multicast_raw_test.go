//go:build linux

package bench_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/bench"
	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

const (
	// mcastSize is the payload of every raw multicast message.
	mcastSize = 256
	// mcastDgramBytes bounds a multicast datagram: 28 messages of 256 bytes.
	mcastDgramBytes = 8 << 10
	// mcastRcvbuf is the subscribers' Config.ReadBuffer (the kernel
	// doubles it), mcastBigRcvbuf that of the /rcvbuf= variants.
	mcastRcvbuf    = 4 << 10
	mcastBigRcvbuf = 64 << 10
	// mcastEndEvery is how often the publisher repeats the end marker
	// until every subscriber has seen one.
	mcastEndEvery = 100 * time.Microsecond
)

// mcastSubs are the subscriber counts of the multicast benchmarks.
var mcastSubs = []int{1, 4, 16}

// BenchmarkRawMulticast is the raw ceiling of batched multicast on
// NETLINK_CONNECTOR, without repair: one publisher multicasts b.N
// 256-byte messages, as many per datagram as fit in 8 KiB (28), to an even
// group that N subscribers joined with a 4 KiB receive buffer; each
// subscriber reads in its own goroutine. Multicast has no backpressure
// (docs/PLATFORM.md §3): the publisher never waits, and whenever it
// outpaces a subscriber the kernel drops for that subscriber, reports
// ENOBUFS once, and drops everything more until it has drained its queue
// empty. Such a datagram is charged 16,640 bytes (docs/PLATFORM.md §9), so
// a 4 KiB buffer (8 KiB after the kernel doubles it) holds exactly one,
// accepted only because the queue was empty; 64 KiB holds seven.
//
// So raw multicast loses most of the stream once the publisher outpaces
// the subscribers, and the numbers say what a subscriber can get at best,
// not what is sent. On a 2-core machine (Linux 6.18, -benchtime 1s) 16
// subscribers each got about 0.5 M msgs/s with 4 KiB buffers and about
// 0.75 M with 64 KiB, losing 85 to 90% of the stream either way: the
// subscribers lack CPU more than buffer. One subscriber loses about half
// at 4 KiB and 5% at 64 KiB.
//
// ns/op is the wall time per message published. The metrics are per
// subscriber, as a mean over the N subscribers: msgs/s is the messages a
// subscriber received per second of wall time from the first send until
// the last subscriber stopped, delivered/msg the fraction of the b.N
// messages it received, and overruns the ENOBUFS reports it got during
// the run (they grow with b.N; each stands for several datagrams lost, as
// the Drops column of /proc/net/netlink counts them). Each subscriber
// checks that what it got is whole, never duplicated and in order
// (bench.GapChecker). BenchmarkRawMulticast/subs=N/rcvbuf=65536 is the
// same run with 64 KiB receive buffers.
//
// The subscribers do not ask for credentials (Config.NoCredentials), like
// the raw unicast baselines, which pass none either; SCM_CREDENTIALS costs
// a 16-subscriber run about 15% of its rate.
func BenchmarkRawMulticast(b *testing.B) {
	testenv.RequireNetAdmin(b)
	for _, n := range mcastSubs {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchRawMulticast(b, n, mcastRcvbuf) })
	}
	for _, n := range mcastSubs {
		b.Run(fmt.Sprintf("subs=%d/rcvbuf=%d", n, mcastBigRcvbuf), func(b *testing.B) { benchRawMulticast(b, n, mcastBigRcvbuf) })
	}
}

// mcastResult is what one subscriber got.
type mcastResult struct {
	received, overruns, foreign uint64
	err                         error
}

func benchRawMulticast(b *testing.B, subs, rcvbuf int) {
	b.ReportAllocs()
	group := freeEvenGroup()
	pub, err := transport.Open(transport.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	conns := make([]*transport.Conn, 0, subs)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range subs {
		c, err := transport.Open(transport.Config{Groups: []uint32{group}, ReadBuffer: rcvbuf, NoCredentials: true})
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}

	total := b.N
	perDgram := mcastDgramBytes / transport.FrameLen(mcastSize)
	d := newDatagram(b, mcastSize, perDgram)
	end, err := transport.AppendFrame(nil, &transport.Frame{NlType: transport.NlmsgDone, ID: benchChannel})
	if err != nil {
		b.Fatal(err)
	}
	results := make(chan mcastResult, subs)
	var wg sync.WaitGroup
	for _, c := range conns {
		buf := make([]byte, mcastDgramBytes+4096)
		wg.Go(func() { results <- readMulticast(c, buf, pub.LocalPort(), group) })
	}
	// stop ends the readers still running (closing a Conn unblocks its
	// Receive) and waits for them; the deferred Closes are then no-ops.
	stop := func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}
	dst := transport.Addr{Group: group}
	got := make([]mcastResult, 0, subs)
	tick := time.NewTicker(mcastEndEvery)
	defer tick.Stop()

	b.ResetTimer()
	for sent := 0; sent < total; {
		k := min(perDgram, total-sent)
		if err := pub.Send(dst, d.stamp(uint64(sent), k)); err != nil {
			stop()
			b.Fatalf("multicast after %d messages: %v", sent, err)
		}
		sent += k
	}
	// The end marker queues behind the data in every subscriber's queue,
	// so a subscriber that sees it has seen all it will get. It is lost
	// like data while the subscriber is congested: repeat it until every
	// subscriber has stopped.
	tick.Reset(mcastEndEvery)
	deadline := time.Now().Add(stallTimeout)
	for marker := true; len(got) < subs; {
		if marker {
			if err := pub.Send(dst, end); err != nil {
				stop()
				b.Fatalf("end marker: %v", err)
			}
		}
		select {
		case r := <-results:
			got = append(got, r)
			if r.err != nil {
				stop()
				b.Fatal(r.err)
			}
			marker = false
		case <-tick.C:
			if time.Now().After(deadline) {
				stop()
				b.Fatalf("%d of %d subscribers saw no end marker within %v", subs-len(got), subs, stallTimeout)
			}
			marker = true
		}
	}
	b.StopTimer()
	stop()

	var received, overruns float64
	var foreign uint64
	for _, r := range got {
		received += float64(r.received)
		overruns += float64(r.overruns)
		foreign += r.foreign
	}
	if foreign > 0 {
		b.Logf("group %d: the subscribers ignored %d datagrams from other senders", group, foreign)
	}
	received /= float64(subs)
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(received/s, "msgs/s")
	}
	b.ReportMetric(received/float64(total), "delivered/msg")
	b.ReportMetric(overruns/float64(subs), "overruns")
}

// readMulticast receives on c into buf until the end marker from port pub on group
// arrives, checking every message and counting overrun reports. Datagrams
// from anyone else (a test that drew the same group) are counted and
// ignored.
func readMulticast(c *transport.Conn, buf []byte, pub, group uint32) mcastResult {
	var r mcastResult
	chk := bench.GapChecker{Size: mcastSize}
	var sc transport.Scanner
	for {
		p, err := c.Receive(buf)
		if err != nil {
			if errors.Is(err, transport.ErrClosed) {
				err = fmt.Errorf("subscriber %d stopped before the end marker: %w", c.LocalPort(), err)
			}
			r.err = err
			return r
		}
		switch {
		case p.Overrun:
			r.overruns++
			continue
		case p.From != pub || p.Group != group:
			r.foreign++
			continue
		case p.Truncated:
			r.err = fmt.Errorf("subscriber %d: datagram truncated to %d bytes", c.LocalPort(), len(p.Data))
			return r
		}
		sc.Reset(p.Data)
		for sc.Next() {
			f := sc.Frame()
			if len(f.Payload) == 0 {
				r.received = chk.Count()
				return r
			}
			if err := chk.Check(f.Payload); err != nil {
				r.err = fmt.Errorf("subscriber %d: %w", c.LocalPort(), err)
				return r
			}
		}
		if err := sc.Err(); err != nil {
			r.err = fmt.Errorf("subscriber %d: %w", c.LocalPort(), err)
			return r
		}
	}
}

// freeEvenGroup draws an even connector group (the privileged ones,
// docs/PLATFORM.md §4) that no NETLINK_CONNECTOR socket in this network
// namespace has joined, as /proc/net/netlink lists them, so that tests
// running alongside (which draw random even groups) neither receive the
// benchmark's flood nor add to it. If every even group is taken it
// returns a random one: the readers ignore foreign datagrams.
func freeEvenGroup() uint32 {
	used := connectorGroups()
	start := rand.Uint32N(transport.MaxGroup / 2)
	for i := range uint32(transport.MaxGroup / 2) {
		g := 2 * (1 + (start+i)%(transport.MaxGroup/2))
		if used&(1<<(g-1)) == 0 {
			return g
		}
	}
	return 2 * (1 + start)
}

// connectorGroups is the union of the group masks of the NETLINK_CONNECTOR
// sockets in /proc/net/netlink (bit g-1 for group g), 0 if unreadable.
func connectorGroups() uint32 {
	f, err := os.Open("/proc/net/netlink")
	if err != nil {
		return 0
	}
	defer f.Close()
	var used uint32
	s := bufio.NewScanner(f)
	for s.Scan() {
		// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		fs := strings.Fields(s.Text())
		if len(fs) < 4 || fs[1] != strconv.Itoa(unix.NETLINK_CONNECTOR) {
			continue
		}
		if m, err := strconv.ParseUint(fs[3], 16, 32); err == nil {
			used |= uint32(m)
		}
	}
	return used
}

func TestGapChecker(t *testing.T) {
	msg := func(i uint64) []byte {
		m := make([]byte, mcastSize)
		bench.Stamp(m, i)
		return m
	}
	c := bench.GapChecker{Size: mcastSize}
	for _, i := range []uint64{0, 1, 5, 6, 100} {
		if err := c.Check(msg(i)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if c.Count() != 5 {
		t.Fatalf("Count = %d, want 5", c.Count())
	}
	bad := msg(101)
	bad[mcastSize-1]++
	for name, m := range map[string][]byte{
		"duplicate": msg(100),
		"reordered": msg(7),
		"short":     msg(101)[:mcastSize-1],
		"corrupted": bad,
	} {
		if err := c.Check(m); err == nil {
			t.Errorf("%s message passed", name)
		}
	}
	if c.Count() != 5 {
		t.Fatalf("Count = %d after rejected messages, want 5", c.Count())
	}
}
