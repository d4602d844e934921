package multicast

import (
	"context"
	"testing"
	"time"

	"github.com/cnlink/cnlink/transport/memnet"
)

func TestSmokeMemnet(t *testing.T) {
	n := memnet.New(memnet.Config{})
	ptr, _ := n.Open(0)
	pub, err := NewPublisher(ptr, PublisherConfig{Group: 2})
	if err != nil {
		t.Fatal(err)
	}
	var subs []*Subscriber
	for range 3 {
		tr, _ := n.Open(0)
		s, err := Subscribe(tr, SubscriberConfig{Group: 2})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	const N = 20000
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
	for i := range N {
		msg[0] = byte(i)
		if err := pub.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pub.Close(cctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("pub %+v", pub.Stats())
	for range subs {
		if err := <-res; err != nil {
			t.Error(err)
		}
	}
}
