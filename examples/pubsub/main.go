// Command pubsub runs reliable multicast in one process: one publisher and
// -subs subscribers on a connector group, each subscriber on its own
// netlink socket with a small receive buffer (-rcvbuf), so that the kernel
// drops multicast datagrams for them and cnlink has to repair.
//
//	sudo go run ./examples/pubsub -subs 8 -n 200000 -size 256 -rcvbuf 4096
//
// Every message carries its index (first 8 bytes) and bytes derived from
// it; every subscriber checks that it gets message 0, 1, 2, ... n-1, each
// once, whole, with consecutive MSNs. The program shows progress once a
// second, then a table per subscriber: messages received, messages that
// arrived as repairs, NAKs sent, ENOBUFS reports, the datagrams the kernel
// dropped for its socket (the Drops column of /proc/net/netlink, read just
// before the subscriber closes its socket) and messages lost. It exits 1
// if any subscriber lost, duplicated, reordered or corrupted anything, or
// ended with an error.
//
// -laggards d drops a subscriber that alone holds the publisher back for
// d (PublisherConfig.LaggardTimeout) instead of waiting for it; -stuck k
// makes the last k subscribers never read their messages, which shows it:
//
//	sudo go run ./examples/pubsub -subs 4 -n 100000 -stuck 1 -laggards 200ms   # exits 1
//
// It needs root or CAP_NET_ADMIN: publishing to a group, joining an even
// group and sending NAKs all do.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/multicast"
	"github.com/cnlink/cnlink/transport"
)

func main() {
	var o options
	flag.IntVar(&o.Subs, "subs", 8, "subscribers, each on its own socket")
	flag.IntVar(&o.N, "n", 200000, "messages to publish")
	flag.IntVar(&o.Size, "size", 256, "message size in bytes (at least 8)")
	flag.IntVar(&o.Rcvbuf, "rcvbuf", 4096, "each subscriber's SO_RCVBUF in bytes (the kernel doubles it)")
	flag.DurationVar(&o.Laggards, "laggards", 0, "drop a subscriber that alone holds the publisher back this long (0: wait for it)")
	flag.IntVar(&o.Stuck, "stuck", 0, "the last k subscribers never read their messages (shows -laggards)")
	group := flag.Uint("group", 0, "even connector group to use (0: one no socket has joined)")
	flag.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	o.Group = uint32(*group)
	o.Progress = time.Second
	log.SetFlags(0)
	log.SetPrefix("pubsub: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		log.Print(err)
		stop()
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	Subs, N, Size int
	Rcvbuf        int
	Laggards      time.Duration
	Stuck         int           // the last Stuck subscribers never read Recv
	Group         uint32        // 0: a free even group
	Progress      time.Duration // 0: no progress lines
	Timeout       time.Duration // 0: none
}

func (o *options) check() error {
	var errs []string
	if o.Subs < 1 {
		errs = append(errs, fmt.Sprintf("-subs %d: need at least 1", o.Subs))
	}
	if o.N < 1 {
		errs = append(errs, fmt.Sprintf("-n %d: need at least 1", o.N))
	}
	if o.Size < 8 {
		errs = append(errs, fmt.Sprintf("-size %d: need at least 8 (the index)", o.Size))
	}
	if o.Rcvbuf < 0 {
		errs = append(errs, fmt.Sprintf("-rcvbuf %d: negative", o.Rcvbuf))
	}
	if o.Stuck < 0 || o.Stuck > o.Subs {
		errs = append(errs, fmt.Sprintf("-stuck %d: outside 0..%d", o.Stuck, o.Subs))
	}
	if o.Group != 0 && (o.Group%2 != 0 || o.Group > transport.MaxGroup) {
		errs = append(errs, fmt.Sprintf("-group %d: want an even group of 2..%d", o.Group, transport.MaxGroup))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// errFailed: some subscriber did not get every message exactly once, in
// order (run's error wraps it and names them).
var errFailed = errors.New("not every subscriber got every message exactly once, in order")

// stamp writes message i: the index in the first 8 bytes, then bytes
// derived from it, so that a subscriber can check the whole payload.
func stamp(msg []byte, i uint64) {
	binary.LittleEndian.PutUint64(msg, i)
	for j := 8; j < len(msg); j++ {
		msg[j] = byte(i*131 + uint64(j))
	}
}

// verify checks that msg is message i of size bytes.
func verify(msg []byte, i uint64, size int) error {
	if len(msg) != size {
		return fmt.Errorf("message %d: %d bytes, want %d", i, len(msg), size)
	}
	if got := binary.LittleEndian.Uint64(msg); got != i {
		return fmt.Errorf("got message %d, want %d (lost, duplicated or reordered)", got, i)
	}
	for j := 8; j < len(msg); j++ {
		if msg[j] != byte(i*131+uint64(j)) {
			return fmt.Errorf("message %d: byte %d is %#x, want %#x (corrupted)", i, j, msg[j], byte(i*131+uint64(j)))
		}
	}
	return nil
}

// dropsConn is a subscriber's socket. The subscriber owns it and closes it
// when its stream ends; just before, dropsConn reads the kernel's Drops
// count for the port from /proc/net/netlink, so that the count covers the
// whole run (the socket, and its line, are gone after Close).
type dropsConn struct {
	*transport.Conn
	once  sync.Once
	drops atomic.Uint64
	known atomic.Bool
	err   error // set in once
}

func (c *dropsConn) readDrops() {
	s, err := discover.ByPort(c.LocalPort())
	if err != nil {
		c.err = err
		return
	}
	c.drops.Store(s.Drops)
	c.known.Store(true)
}

func (c *dropsConn) Close() error {
	c.once.Do(c.readDrops)
	return c.Conn.Close()
}

// sub is one subscriber and what its reader saw.
type sub struct {
	idx    int
	conn   *dropsConn
	rcvbuf int // SO_RCVBUF as the kernel reports it (doubled)
	s      *multicast.Subscriber
	stuck  bool

	received atomic.Uint64 // messages that passed the checks
	lostMsgs uint64        // Message.Lost summed
	bad      error         // the first check that failed
	done     chan struct{} // the reader finished
}

// read takes every message from Recv and checks it.
func (u *sub) read(size int) {
	defer close(u.done)
	if u.stuck {
		<-u.s.Done() // never reads: the publisher must drop it or wait
		return
	}
	var next uint64
	var prevMSN uint32
	for m := range u.s.Recv() {
		u.lostMsgs += m.Lost
		if u.bad == nil {
			switch {
			case m.Lost > 0:
				u.bad = fmt.Errorf("%d messages lost before MSN %d", m.Lost, m.MSN)
			case next > 0 && m.MSN != prevMSN+1:
				u.bad = fmt.Errorf("MSN %d after %d (duplicated, reordered or lost)", m.MSN, prevMSN)
			default:
				u.bad = verify(m.Data, next, size)
			}
		}
		prevMSN = m.MSN
		next++
		if u.bad == nil {
			u.received.Store(next)
		}
	}
}

// freeEvenGroup returns an even group (joining it needs CAP_NET_ADMIN)
// that no connector socket in this network namespace has joined, starting
// the search at a random one so that concurrent runs pick different ones.
func freeEvenGroup() (uint32, error) {
	ss, err := discover.Sockets()
	if err != nil {
		return 0, err
	}
	var used uint32
	for _, s := range ss {
		used |= s.Groups
	}
	const evens = transport.MaxGroup / 2
	start := rand.Uint32N(evens)
	for i := range uint32(evens) {
		g := 2 * (1 + (start+i)%evens)
		if used&(1<<(g-1)) == 0 {
			return g, nil
		}
	}
	return 0, errors.New("every even connector group has a member; pick one with -group")
}

// run publishes o.N messages to o.Subs subscribers, prints progress and
// the final table to w, and returns nil only when every subscriber got
// every message exactly once, in order, and the publisher closed cleanly.
func run(ctx context.Context, o options, w io.Writer) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("timed out after %v", o.Timeout))
		defer cancel()
	}
	group := o.Group
	if group == 0 {
		if group, err = freeEvenGroup(); err != nil {
			return err
		}
	}
	// The publisher's socket first, so that subscribers accept only its
	// port; then the subscribers join, and only then does the publisher
	// start: its first heartbeat, which every subscriber hears, is where
	// their streams begin.
	ptr, err := transport.Open(transport.Config{})
	if err != nil {
		return err
	}
	subs := make([]*sub, 0, o.Subs)
	defer func() {
		for _, u := range subs {
			u.s.Close()
			<-u.done
		}
	}()
	for i := range o.Subs {
		c, err := transport.Open(transport.Config{ReadBuffer: o.Rcvbuf})
		if err != nil {
			ptr.Close()
			return err
		}
		u := &sub{idx: i, conn: &dropsConn{Conn: c}, stuck: i >= o.Subs-o.Stuck, done: make(chan struct{})}
		u.rcvbuf, _ = c.ReadBuffer()
		u.s, err = multicast.Subscribe(u.conn, multicast.SubscriberConfig{Group: group, Publisher: ptr.LocalPort()})
		if err != nil {
			ptr.Close()
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		subs = append(subs, u)
		go u.read(o.Size)
	}
	pub, err := multicast.NewPublisher(ptr, multicast.PublisherConfig{Group: group, LaggardTimeout: o.Laggards})
	if err != nil {
		return err
	}
	defer pub.Abort() // after a clean Close, a no-op
	fmt.Fprintf(w, "publisher port %d, group %d; %d subscribers, SO_RCVBUF %d (kernel: %d); %d messages of %d bytes\n",
		pub.Port(), group, o.Subs, o.Rcvbuf, subs[0].rcvbuf, o.N, o.Size)

	// Wait until every subscriber has registered, so that flow control
	// counts them all from the first message.
	for reg := time.Now().Add(5 * time.Second); pub.Stats().Subscribers < o.Subs; {
		if time.Now().After(reg) {
			fmt.Fprintf(w, "only %d of %d subscribers registered within 5s; publishing anyway\n", pub.Stats().Subscribers, o.Subs)
			break
		}
		time.Sleep(time.Millisecond)
	}

	var published atomic.Uint64
	start := time.Now()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if o.Progress <= 0 {
			return
		}
		t := time.NewTicker(o.Progress)
		defer t.Stop()
		last, lastAt := uint64(0), start
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				n := published.Load()
				slow, slowest := -1, uint64(0)
				for _, u := range subs {
					if u.stuck {
						continue
					}
					if r := u.received.Load(); slow < 0 || r < slowest {
						slow, slowest = u.idx, r
					}
				}
				line := fmt.Sprintf("%5.1fs  published %d/%d (%s msgs/s)", now.Sub(start).Seconds(), n, o.N,
					rate(float64(n-last)/now.Sub(lastAt).Seconds()))
				if slow >= 0 {
					line += fmt.Sprintf(", slowest subscriber #%d has %d", slow, slowest)
				}
				fmt.Fprintln(w, line)
				last, lastAt = n, now
			}
		}
	}()

	msg := make([]byte, o.Size)
	var pubErr error
	for i := range o.N {
		stamp(msg, uint64(i))
		if err := pub.Publish(ctx, msg); err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			pubErr = fmt.Errorf("publish message %d: %w", i, err)
			break
		}
		published.Add(1)
	}
	pubTime := time.Since(start)
	// Close waits until every registered subscriber has confirmed every
	// message (or was dropped), then sends FIN: each subscriber ends its
	// stream once it delivered the last message, reading its socket's
	// Drops just before closing it.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	if pubErr != nil {
		pub.Abort()
	} else if err := pub.Close(closeCtx); err != nil {
		pubErr = fmt.Errorf("publisher close: %w", err)
	}
	cancel()
	elapsed := time.Since(start)
	ps := pub.Stats()

	// The subscribers end on FIN (or eviction); one that does not within
	// its PublisherTimeout and a margin is closed.
	wait := time.After(5 * time.Second)
	for _, u := range subs {
		select {
		case <-u.done:
		case <-wait:
			u.s.Close()
			<-u.done
		}
	}
	close(stopProgress)
	<-progressDone

	fmt.Fprintf(w, "published %d messages in %v (%s msgs/s), all delivered after %v\n", ps.Published,
		pubTime.Round(time.Millisecond), rate(float64(ps.Published)/pubTime.Seconds()), elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "publisher: %d datagrams (%d heartbeats); %d NAKs (%d for unsent messages, %d below the history, %d over the rate limit, %d without room); repaired %d messages by unicast and %d by multicast; waited for flow control %d times; %d registrations, %d subscribers dropped\n",
		ps.Datagrams, ps.Heartbeats, ps.Naks, ps.NaksUnsent, ps.NaksTooOld, ps.NaksRateLimited, ps.NaksNoRoom,
		ps.RepairsUnicast, ps.RepairsMulticast, ps.Blocked, ps.Registered, ps.Evicted)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sub\tport\treceived\trepaired\tdups\tNAKs\toverruns\tkernel drops\tlost\t result")
	var failed []string
	var drops, repaired uint64
	for _, u := range subs {
		st := u.s.Stats()
		got := u.received.Load()
		verdict := "ok"
		var why error
		switch {
		case u.s.Err() != nil && !errors.Is(u.s.Err(), multicast.ErrClosed):
			why = u.s.Err()
		case u.bad != nil:
			why = u.bad
		case got != uint64(o.N):
			why = fmt.Errorf("received %d of %d messages", got, o.N)
			if err := u.s.Err(); err != nil {
				why = fmt.Errorf("%w: %w", why, err)
			}
		}
		if why != nil {
			verdict = why.Error()
			failed = append(failed, fmt.Sprintf("#%d: %v", u.idx, why))
		}
		d := "?"
		if u.conn.known.Load() {
			d = fmt.Sprint(u.conn.drops.Load())
			drops += u.conn.drops.Load()
		}
		repaired += st.Repaired
		fmt.Fprintf(tw, "#%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t %s\n", u.idx, u.conn.LocalPort(), got, st.Repaired,
			st.Duplicates, st.Naks, st.Overruns, d, uint64(o.N)-got, verdict)
	}
	tw.Flush()
	for _, u := range subs {
		if u.conn.err != nil {
			fmt.Fprintf(w, "subscriber #%d: kernel drops unknown: %v\n", u.idx, u.conn.err)
		}
	}
	if len(failed) == 0 && pubErr == nil {
		fmt.Fprintf(w, "every subscriber got all %d messages in order, once; the kernel dropped %d datagrams for them and cnlink repaired %d messages\n",
			o.N, drops, repaired)
		return nil
	}
	if pubErr != nil {
		failed = append(failed, pubErr.Error())
	}
	return fmt.Errorf("%w: %s", errFailed, strings.Join(failed, "; "))
}

// rate formats msgs/s with three significant digits.
func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
