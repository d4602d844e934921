package memnet_test

import (
	"fmt"
	"testing"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// BenchmarkSendReceive is one unicast datagram sent and received on one
// goroutine: the per-datagram cost the engine's tests pay.
func BenchmarkSendReceive(b *testing.B) {
	for _, size := range []int{64, 256, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			n := memnet.New(memnet.Config{})
			tx, _ := n.Open(0)
			rx, _ := n.Open(0)
			defer tx.Close()
			defer rx.Close()
			msg := make([]byte, size)
			buf := make([]byte, size)
			dst := transport.Addr{Port: rx.LocalPort()}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := tx.Send(dst, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := rx.Receive(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPipeline has a receiver goroutine draining while the sender
// retries on ErrPeerBusy, as a real session does.
func BenchmarkPipeline(b *testing.B) {
	n := memnet.New(memnet.Config{})
	tx, _ := n.Open(0)
	rx, _ := n.Open(0)
	defer tx.Close()
	msg := make([]byte, 256)
	dst := transport.Addr{Port: rx.LocalPort()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 256)
		for {
			if _, err := rx.Receive(buf); err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		for tx.Send(dst, msg) != nil {
		}
	}
	b.StopTimer()
	_ = rx.Close()
	<-done
}

// BenchmarkMulticast4 fans one datagram out to four members and reads the
// four copies.
func BenchmarkMulticast4(b *testing.B) {
	n := memnet.New(memnet.Config{})
	tx, _ := n.Open(0)
	defer tx.Close()
	var members []*memnet.Conn
	for range 4 {
		m, _ := n.Open(0)
		_ = m.JoinGroup(2)
		defer m.Close()
		members = append(members, m)
	}
	msg := make([]byte, 256)
	buf := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if err := tx.Send(transport.Addr{Group: 2}, msg); err != nil {
			b.Fatal(err)
		}
		for _, m := range members {
			if _, err := m.Receive(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}
