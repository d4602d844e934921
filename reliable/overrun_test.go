package reliable

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
)

// dropper models the kernel's overrun: when armed, it discards the next
// n datagrams and then reports ENOBUFS, as a congested socket does.
type dropper struct {
	transport.Transport
	mu      sync.Mutex
	drop    int
	report  bool
	dropped int
	pending *transport.Packet
}

func (d *dropper) arm(n int) {
	d.mu.Lock()
	d.drop, d.report = n, true
	d.mu.Unlock()
}

func (d *dropper) Receive(buf []byte) (transport.Packet, error) {
	d.mu.Lock()
	if q := d.pending; q != nil {
		d.pending = nil
		d.mu.Unlock()
		q.Data = buf[:copy(buf, q.Data)]
		return *q, nil
	}
	d.mu.Unlock()
	for {
		p, err := d.Transport.Receive(buf)
		if err != nil {
			return p, err
		}
		d.mu.Lock()
		if d.drop > 0 {
			d.drop--
			d.dropped++
			d.mu.Unlock()
			continue
		}
		if d.report {
			d.report = false
			// The datagram that found the queue drained again comes
			// after the report, like the kernel's next recvmsg.
			p.Data = append([]byte(nil), p.Data...)
			d.pending = &p
			d.mu.Unlock()
			return transport.Packet{Overrun: true}, nil
		}
		d.mu.Unlock()
		return p, nil
	}
}

// After an overrun report the lost messages are repaired within 2 RTOs
// (docs/ARCHITECTURE.md §6): the status exchange makes the sender retransmit at once
// instead of waiting for its timer.
func TestOverrunRepairWithinTwoRTOs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d *dropper
		wrap := func(tr transport.Transport, i int) transport.Transport {
			if i == 1 {
				d = &dropper{Transport: tr}
				return d
			}
			return tr
		}
		p := newPair(t, &Config{MaxDatagram: 4096, MaxMessage: 1024}, wrap)
		ctx := context.Background()
		if err := stream(ctx, p.sa, p.sb, 200, 300); err != nil { // warm up: RTT samples
			t.Fatal(err)
		}
		synctest.Wait()
		rto := p.sa.rttForTest()
		d.arm(3) // the next three datagrams to b are lost, then ENOBUFS
		start := time.Now()
		for i := range 60 {
			if err := p.sa.Send(ctx, msg(i, 300)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 60 {
			m := <-p.sb.Recv()
			if err := checkMsg(m, i, 300); err != nil {
				t.Fatal(err)
			}
		}
		took := time.Since(start)
		if d.dropped != 3 {
			t.Fatalf("dropped %d datagrams, want 3", d.dropped)
		}
		if p.b.Stats().Overruns != 1 || p.sa.Stats().StatusRepair == 0 {
			t.Fatalf("no status exchange: b %+v, a %+v", p.b.Stats(), p.sa.Stats())
		}
		if took > 2*rto {
			t.Fatalf("repair took %v, RTO is %v", took, rto)
		}
		t.Logf("3 datagrams lost, repaired in %v (RTO %v), a: %+v", took, rto, p.sa.Stats())
	})
}
