package multicast

import (
	"context"
	"testing"
	"time"

	"github.com/cnlink/cnlink/transport"
)

func TestSmokeNetlink(t *testing.T) {
	ptr, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(ptr, PublisherConfig{Group: 6})
	if err != nil {
		t.Fatal(err)
	}
	var subs []*Subscriber
	for i := range 8 {
		tr, err := transport.Open(transport.Config{ReadBuffer: 4096 << (i % 5)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Subscribe(tr, SubscriberConfig{Group: 6})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	const N = 200000
	res := make(chan error, len(subs))
	for _, s := range subs {
		go func() {
			var next uint32
			got := 0
			for m := range s.Recv() {
				if got > 0 && m.MSN != next {
					t.Errorf("MSN %d want %d", m.MSN, next)
				}
				next = m.MSN + 1
				got++
			}
			t.Logf("got %d err %v stats %+v", got, s.Err(), s.Stats())
			res <- s.Err()
		}()
	}
	time.Sleep(50 * time.Millisecond)
	ctx := context.Background()
	msg := make([]byte, 256)
	t0 := time.Now()
	for i := range N {
		msg[0] = byte(i)
		if err := pub.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pub.Close(cctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: %.0f msgs/s pub %+v", time.Since(t0), N/time.Since(t0).Seconds(), pub.Stats())
	for range subs {
		if err := <-res; err != nil {
			t.Error(err)
		}
	}
}
