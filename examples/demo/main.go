// Command demo runs two cnlink endpoints over real NETLINK_CONNECTOR
// sockets, with the fault injector between them, streams numbered
// messages from one to the other and checks, as the application sees
// them, that none was lost, duplicated or reordered.
//
//	go run ./examples/demo                  # 100,000 x 256 B at 5% loss
//	go run ./examples/demo -n 1000000 -loss 0.2 -dup 0.05 -reorder 0.1
//
// It needs root or CAP_NET_ADMIN (unicast between user netlink ports).
// It exits with status 1 if any message was lost, duplicated or
// reordered, and 2 on a setup error.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"text/tabwriter"
	"time"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

func main() {
	n := flag.Int("n", 100_000, "messages to send")
	size := flag.Int("size", 256, "message size in bytes (>= 12)")
	loss := flag.Float64("loss", 0.05, "probability that a datagram is dropped (each direction)")
	dup := flag.Float64("dup", 0.01, "probability that a datagram is duplicated")
	reorder := flag.Float64("reorder", 0.01, "probability that a datagram is held back and reordered")
	corrupt := flag.Float64("corrupt", 0.001, "probability that a datagram has bits flipped")
	overrun := flag.Float64("overrun", 0.002, "probability of an injected receive overrun (ENOBUFS) dropping 3 datagrams")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "fault injector seed")
	batch := flag.Int("batch", 64, "messages per SendBatch call")
	flag.Parse()
	if *size < 12 || *n < 1 || *batch < 1 {
		fmt.Fprintln(os.Stderr, "demo: -size must be >= 12, -n and -batch >= 1")
		os.Exit(2)
	}
	if err := run(*n, *size, *batch, *seed, fault.Direction{
		Loss: *loss, Duplicate: *dup, Reorder: *reorder, Corrupt: *corrupt,
	}, fault.Direction{OverrunBurst: fault.Burst{P: *overrun, Len: 3}}); err != nil {
		var v *violation
		if errors.As(err, &v) {
			fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		if errors.Is(err, transport.ErrPermission) {
			fmt.Fprintln(os.Stderr, "demo: run it as root (or with CAP_NET_ADMIN)")
		}
		os.Exit(2)
	}
}

type violation struct{ lost, dups, reordered int }

func (v *violation) Error() string {
	return fmt.Sprintf("application saw %d lost, %d duplicated, %d reordered messages", v.lost, v.dups, v.reordered)
}

func open(seed uint64, send, recv fault.Direction) (*reliable.Endpoint, *fault.Conn, error) {
	tr, err := transport.Open(transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20})
	if err != nil {
		return nil, nil, err
	}
	fc := fault.Wrap(tr, fault.Config{Seed: seed, Send: send, Recv: recv})
	ep, err := reliable.NewEndpoint(fc, nil)
	if err != nil {
		fc.Close()
		return nil, nil, err
	}
	return ep, fc, nil
}

func run(n, size, batch int, seed uint64, send, recv fault.Direction) error {
	a, fa, err := open(seed, send, recv)
	if err != nil {
		return err
	}
	defer a.Close()
	b, fb, err := open(seed+1, send, recv)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Printf("cnlink demo: %d messages of %d bytes, port %d -> port %d over NETLINK_CONNECTOR\n", n, size, a.LocalPort(), b.LocalPort())
	fmt.Printf("faults each way: loss %.1f%%, duplication %.1f%%, reordering %.1f%%, corruption %.2f%%, overrun bursts %.2f%% (seed %d)\n\n",
		send.Loss*100, send.Duplicate*100, send.Reorder*100, send.Corrupt*100, recv.OverrunBurst.P*100, seed)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	accepted := make(chan *reliable.Session, 1)
	go func() {
		s, err := b.Accept(ctx)
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- s
	}()
	sa, err := a.Dial(ctx, b.LocalPort(), transport.CbID{})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	sb := <-accepted
	if sb == nil {
		return errors.New("accept failed")
	}

	// Receiver: every message carries its index and a CRC of its bytes,
	// so the application itself checks order, uniqueness and integrity.
	type result struct {
		got, lost, dups, reordered, corrupt int
		err                                 error
	}
	res := make(chan result, 1)
	var progress [1]int64
	go func() {
		var r result
		next := 0
		seen := make([]bool, n)
		for r.got < n {
			var m []byte
			select {
			case m = <-sb.Recv():
			case <-sb.Done():
				r.err = sb.Err()
				res <- r
				return
			case <-ctx.Done():
				r.err = ctx.Err()
				res <- r
				return
			}
			idx := int(binary.LittleEndian.Uint64(m))
			if crc32.ChecksumIEEE(m[12:]) != binary.LittleEndian.Uint32(m[8:]) {
				r.corrupt++
			}
			switch {
			case idx < 0 || idx >= n:
				r.corrupt++
			case seen[idx]:
				r.dups++
			case idx != next:
				r.reordered++
				seen[idx] = true
			default:
				seen[idx] = true
			}
			next = idx + 1
			r.got++
			progress[0] = int64(r.got)
		}
		for _, s := range seen {
			if !s {
				r.lost++
			}
		}
		res <- r
	}()

	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	sendErr := make(chan error, 1)
	go func() {
		msgs := make([][]byte, 0, batch)
		buf := make([]byte, batch*size)
		for i := 0; i < n; {
			msgs = msgs[:0]
			for j := 0; j < batch && i < n; j, i = j+1, i+1 {
				m := buf[j*size : (j+1)*size]
				binary.LittleEndian.PutUint64(m, uint64(i))
				for k := 12; k < size; k++ {
					m[k] = byte(i + k)
				}
				binary.LittleEndian.PutUint32(m[8:], crc32.ChecksumIEEE(m[12:]))
				msgs = append(msgs, m)
			}
			if _, err := sa.SendBatch(ctx, msgs); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- sa.Flush(ctx)
	}()
	var r result
loop:
	for {
		select {
		case r = <-res:
			break loop
		case <-tick.C:
			got := progress[0]
			el := time.Since(start).Seconds()
			fmt.Printf("\r  received %8d / %d  (%3.0f%%)  %8.0f msgs/s  retransmits %d   ", got, n, 100*float64(got)/float64(n), float64(got)/el, sa.Stats().Retransmits)
		}
	}
	el := time.Since(start)
	fmt.Printf("\n\n")
	if err := <-sendErr; err != nil && r.err == nil {
		r.err = fmt.Errorf("send: %w", err)
	}
	if r.err == nil {
		r.err = sa.Close()
	}
	ssa, ssb := sa.Stats(), sb.Stats()
	fsa, fsb := fa.Stats(), fb.Stats()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(k string, v any) { fmt.Fprintf(w, "%s\t%v\t\n", k, v) }
	row("sent", n)
	row("delivered", r.got-r.dups)
	row("lost (app view)", r.lost)
	row("duplicated (app view)", r.dups)
	row("reordered (app view)", r.reordered)
	row("corrupted (app view)", r.corrupt)
	row("datagrams dropped by injector", fsa.Send.Lost+fsb.Send.Lost+fsa.Recv.DroppedInOverrun+fsb.Recv.DroppedInOverrun)
	row("datagrams duplicated by injector", fsa.Send.Duplicated+fsb.Send.Duplicated)
	row("datagrams corrupted by injector", fsa.Send.Corrupted+fsb.Send.Corrupted)
	row("duplicates suppressed", ssa.DuplicatesSuppressed+ssb.DuplicatesSuppressed)
	row("retransmissions", ssa.Retransmits+ssb.Retransmits)
	row("overruns repaired", b.Stats().Overruns+a.Stats().Overruns)
	row("checksum rejects", a.Stats().Rejected["checksum"]+b.Stats().Rejected["checksum"])
	row("goodput msgs/s", fmt.Sprintf("%.0f", float64(r.got)/el.Seconds()))
	row("goodput MB/s", fmt.Sprintf("%.1f", float64(r.got)*float64(size)/el.Seconds()/1e6))
	row("elapsed", el.Round(time.Millisecond))
	w.Flush()
	if r.err != nil {
		return r.err
	}
	if r.lost+r.dups+r.reordered+r.corrupt > 0 {
		return &violation{r.lost, r.dups, r.reordered}
	}
	fmt.Println("\nOK: every message arrived exactly once, in order, intact.")
	return nil
}
