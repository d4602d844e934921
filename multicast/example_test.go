package multicast_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cnlink/cnlink/multicast"
	"github.com/cnlink/cnlink/transport/memnet"
)

// One publisher, two subscribers. memnet stands in for netlink (with
// transport.Open the code is the same, and needs CAP_NET_ADMIN).
// WaitSubscribers holds the first message until both have registered, so
// that both get the stream from its first message; Close returns once
// both have every message.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := memnet.New(memnet.Config{})

	ptr, _ := net.Open(0)
	pub, err := multicast.NewPublisher(ptr, multicast.PublisherConfig{Group: 12, WaitSubscribers: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	var subs []*multicast.Subscriber
	for range 2 {
		tr, _ := net.Open(0)
		sub, err := multicast.Subscribe(tr, multicast.SubscriberConfig{Group: 12, Publisher: pub.Port()})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer sub.Close()
		subs = append(subs, sub)
	}

	for _, m := range []string{"alpha", "beta", "gamma"} {
		if err := pub.Publish(ctx, []byte(m)); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Close waits until every registered subscriber has every message,
	// then tells the group the stream ended.
	fmt.Println("publisher closed:", pub.Close(ctx))

	for i, sub := range subs {
		first := uint32(0)
		for msg, err := range sub.RecvIter(ctx) {
			if err != nil {
				fmt.Println("error:", err)
				break
			}
			if first == 0 {
				first = msg.MSN
			}
			fmt.Printf("subscriber %d: message %d %s\n", i, msg.MSN-first, msg.Data)
		}
		fmt.Printf("subscriber %d ended: %v\n", i, sub.Err())
	}
	// Output:
	// publisher closed: <nil>
	// subscriber 0: message 0 alpha
	// subscriber 0: message 1 beta
	// subscriber 0: message 2 gamma
	// subscriber 0 ended: <nil>
	// subscriber 1: message 0 alpha
	// subscriber 1: message 1 beta
	// subscriber 1: message 2 gamma
	// subscriber 1 ended: <nil>
}

// A subscriber that does not register (NoRegister) does not hold the
// publisher back: if it reads too slowly, messages leave the publisher's
// history before it has them repaired, and are lost for good. With OnLoss
// Continue it skips them and reports them as Message.Lost on the next
// message; if the stream ends right after lost messages, none is left to
// carry them, and the subscription ends with a *LostError instead of nil.
// (With the default, Fail, the first loss ends it with a *LostError.)
// Either way every message is delivered or counted lost: never a silent
// gap.
func ExampleSubscriber_lossContinue() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	net := memnet.New(memnet.Config{})

	ptr, _ := net.Open(0)
	pub, err := multicast.NewPublisher(ptr, multicast.PublisherConfig{
		Group: 12, History: 16, WaitSubscribers: 1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The slow subscriber joins first, so that it hears the stream from
	// its first message; it buffers little.
	str, _ := net.Open(0)
	slow, err := multicast.Subscribe(str, multicast.SubscriberConfig{
		Group: 12, Publisher: pub.Port(), NoRegister: true,
		OnLoss: multicast.Continue, Window: 8, RecvBuffer: 1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer slow.Close()
	// A registered subscriber that keeps up paces the publisher.
	ftr, _ := net.Open(0)
	fast, err := multicast.Subscribe(ftr, multicast.SubscriberConfig{Group: 12, Publisher: pub.Port()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fast.Close()
	go func() {
		for range fast.Recv() {
		}
	}()

	const n = 1000
	for i := range n {
		if err := pub.Publish(ctx, []byte{byte(i)}); err != nil {
			fmt.Println(err)
			return
		}
	}

	// Only now does the slow subscriber read.
	var delivered, lost uint64
	var first uint32
	for msg, err := range slow.RecvIter(ctx) {
		if err != nil {
			var le *multicast.LostError
			if errors.As(err, &le) {
				lost += le.Count // lost at the very end of the stream
			} else {
				fmt.Println("error:", err)
			}
			break
		}
		if delivered == 0 && lost == 0 {
			first = msg.MSN - uint32(msg.Lost)
		}
		delivered++
		lost += msg.Lost
		if msg.MSN-first == n-1 {
			// The last message: let the publisher close, and see the
			// subscription end.
			if err := pub.Close(ctx); err != nil {
				fmt.Println("close:", err)
			}
		}
	}
	fmt.Println("every message delivered or counted lost:", delivered+lost == n)
	fmt.Println("some lost:", lost > 0)
	fmt.Println("subscription ended:", slow.Err())
	// Output:
	// every message delivered or counted lost: true
	// some lost: true
	// subscription ended: <nil>
}
