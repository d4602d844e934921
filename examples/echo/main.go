// Command echo is the README's two-process program: a request/reply
// server and its client, written from the README alone.
//
//	sudo go run ./examples/echo -serve &   # the server, on discover.PortForName("echo")
//	sudo go run ./examples/echo hello world
//
// The client sends each argument as a request and prints the reply, then
// streams them as messages and closes; the server prints the messages.
// Both need root or CAP_NET_ADMIN (netlink user ports).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

func main() {
	serve := flag.Bool("serve", false, "run the server")
	name := flag.String("name", "echo", "service name (the port is discover.PortForName(name))")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("echo: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *serve {
		err = server(ctx, *name)
	} else {
		err = client(ctx, *name, flag.Args())
	}
	if err != nil {
		log.Fatal(err)
	}
}

func server(ctx context.Context, name string) error {
	tr, err := discover.OpenName(name, transport.Config{}) // the port clients compute
	if err != nil {
		return err
	}
	ep, err := reliable.NewEndpoint(tr, nil)
	if err != nil {
		return err
	}
	defer ep.Shutdown(context.Background())
	fmt.Println("listening on port", ep.LocalPort())
	for {
		s, err := ep.Accept(ctx)
		if err != nil {
			return nil // interrupted
		}
		go serve(ctx, s)
	}
}

// serve answers a session's requests and prints its messages, until the
// client closes it.
func serve(ctx context.Context, s *reliable.Session) {
	go func() {
		for req, err := range s.RequestsIter(ctx) {
			if err != nil {
				return // the message loop below reports it
			}
			_ = req.Reply(ctx, req.Data)
		}
	}()
	for msg, err := range s.RecvIter(ctx) {
		if err != nil {
			log.Printf("session %d: %v", s.Peer(), err)
			return
		}
		fmt.Printf("message from %d: %s\n", s.Peer(), msg)
	}
	fmt.Printf("session %d closed by the client\n", s.Peer())
}

func client(ctx context.Context, name string, words []string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr, err := transport.Open(transport.Config{})
	if err != nil {
		return err
	}
	ep, err := reliable.NewEndpoint(tr, nil)
	if err != nil {
		return err
	}
	defer ep.Shutdown(ctx)
	port, err := discover.Resolve(name, discover.Expect{Comm: "echo"})
	if err != nil {
		return err
	}
	s, err := ep.Dial(ctx, port, transport.CbID{})
	if err != nil {
		return err
	}
	for _, w := range words {
		reply, err := s.Request(ctx, []byte(w))
		if err != nil {
			return err
		}
		fmt.Printf("reply: %s\n", reply)
	}
	for _, w := range words {
		if err := s.Send(ctx, []byte(w)); err != nil {
			return err
		}
	}
	return s.Close() // nil: the server holds every message sent
}
