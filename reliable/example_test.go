package reliable_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// Two endpoints on an in-memory network (use transport.Open for real
// netlink sockets) exchange messages and a request.
func Example() {
	net := memnet.New(memnet.Config{})
	ta, _ := net.Open(0)
	tb, _ := net.Open(0)
	a, _ := reliable.NewEndpoint(ta, nil)
	b, _ := reliable.NewEndpoint(tb, nil)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()

	accepted := make(chan *reliable.Session)
	go func() {
		s, _ := b.Accept(ctx)
		accepted <- s
	}()
	s, err := a.Dial(ctx, b.LocalPort(), transport.CbID{})
	if err != nil {
		fmt.Println(err)
		return
	}
	peer := <-accepted

	_ = s.Send(ctx, []byte("one"))
	_ = s.Send(ctx, []byte("two"))
	fmt.Printf("peer got %q\n", <-peer.Recv())
	fmt.Printf("peer got %q\n", <-peer.Recv())

	go func() { // the peer answers requests
		for {
			select {
			case r := <-peer.Requests():
				_ = r.Reply(ctx, append([]byte("echo "), r.Data...))
			case <-peer.Done():
				return
			}
		}
	}()
	reply, err := s.Request(ctx, []byte("three"))
	fmt.Printf("reply %q %v\n", reply, err)
	fmt.Println("close:", s.Close())
	<-peer.Done()
	fmt.Println("peer:", peer.Err())
	// Output:
	// peer got "one"
	// peer got "two"
	// reply "echo three" <nil>
	// close: <nil>
	// peer: cnlink: session port=1 channel=1129204811:1: peer closed the session
}

// Errors say why a session ended.
func ExampleSession_Err() {
	net := memnet.New(memnet.Config{})
	ta, _ := net.Open(0)
	tb, _ := net.Open(0)
	a, _ := reliable.NewEndpoint(ta, nil)
	b, _ := reliable.NewEndpoint(tb, nil)
	defer a.Close()
	ctx := context.Background()
	go func() {
		if s, err := b.Accept(ctx); err == nil {
			<-s.Done()
		}
	}()
	s, _ := a.Dial(ctx, b.LocalPort(), transport.CbID{})
	b.Close() // the peer goes away (it tells us)
	<-s.Done()
	fmt.Println(s.Err())
	// Output:
	// cnlink: session port=2 channel=1129204811:1: session reset by peer: peer endpoint closed
}

// A receive loop in one for statement: RecvIter yields every message
// until the session ends, then stops; an abnormal end (reset, peer gone)
// or the context's end comes as the last error. Requests get the same
// with RequestsIter.
func ExampleSession_RecvIter() {
	net := memnet.New(memnet.Config{})
	ta, _ := net.Open(0)
	tb, _ := net.Open(0)
	a, _ := reliable.NewEndpoint(ta, nil)
	b, _ := reliable.NewEndpoint(tb, nil)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()

	go func() {
		s, err := a.Dial(ctx, b.LocalPort(), transport.CbID{})
		if err != nil {
			return
		}
		for _, m := range []string{"one", "two", "three"} {
			_ = s.Send(ctx, []byte(m))
		}
		_ = s.Close() // graceful: the loop below ends without an error
	}()

	s, _ := b.Accept(ctx)
	for msg, err := range s.RecvIter(ctx) {
		if err != nil {
			fmt.Println("session failed:", err)
			return
		}
		fmt.Printf("%s\n", msg)
	}
	fmt.Println("end:", errors.Is(s.Err(), reliable.ErrPeerClosed))
	// Output:
	// one
	// two
	// three
	// end: true
}
