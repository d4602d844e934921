package peers_test

import (
	"fmt"
	"math"
	"net"
	"testing"
	"time"

	"github.com/cnlink/cnlink/bench/peers"
)

// sink is a PacketConn that records what reaches it.
type sink struct {
	net.PacketConn
	got [][]byte
}

func (s *sink) WriteTo(b []byte, _ net.Addr) (int, error) {
	s.got = append(s.got, append([]byte(nil), b...))
	return len(b), nil
}

func TestLossyConn(t *testing.T) {
	for _, seed := range []uint64{1, 2, uint64(time.Now().UnixNano())} {
		for _, p := range []float64{0, 0.01, 0.1, 1} {
			t.Run(fmt.Sprintf("seed=%d/p=%v", seed, p), func(t *testing.T) {
				const n = 20000
				s := &sink{}
				c := peers.NewLossyConn(s, p, seed)
				for i := range n {
					b := []byte{byte(i), byte(i >> 8)}
					if k, err := c.WriteTo(b, nil); k != len(b) || err != nil {
						t.Fatalf("WriteTo = %d, %v; a drop must look like a send", k, err)
					}
				}
				if c.Written() != n || c.Dropped()+uint64(len(s.got)) != n {
					t.Fatalf("written %d, dropped %d, passed %d: do not add up to %d", c.Written(), c.Dropped(), len(s.got), n)
				}
				// Within 5 standard deviations of the binomial mean.
				mean, sd := n*p, math.Sqrt(n*p*(1-p))
				if d := float64(c.Dropped()); d < mean-5*sd-1 || d > mean+5*sd+1 {
					t.Fatalf("dropped %v of %d at p=%v, want about %v", d, n, p, mean)
				}
				// What passes is untouched and in order.
				last := -1
				for _, b := range s.got {
					i := int(b[0]) | int(b[1])<<8
					if i <= last {
						t.Fatalf("datagram %d after %d", i, last)
					}
					last = i
				}
				// The same seed drops the same datagrams.
				s2 := &sink{}
				c2 := peers.NewLossyConn(s2, p, seed)
				for i := range n {
					c2.WriteTo([]byte{byte(i), byte(i >> 8)}, nil)
				}
				if c2.Dropped() != c.Dropped() {
					t.Fatalf("seed %d: %d then %d drops", seed, c.Dropped(), c2.Dropped())
				}
			})
		}
	}
}
