package fault_test

import (
	"fmt"
	"time"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
)

// A lossy, slow link between two memnet sockets: with the seed fixed, the
// same datagrams are lost on every run.
func Example() {
	net := memnet.New(memnet.Config{})
	ia, _ := net.Open(0)
	ib, _ := net.Open(0)
	a := fault.Wrap(ia, fault.Config{Seed: 42, Send: fault.Direction{Loss: 0.3}})
	defer a.Close()
	defer ib.Close()

	for i := range 10 {
		_ = a.Send(transport.Addr{Port: ib.LocalPort()}, []byte{byte(i)}) // nil even when lost
	}
	buf := make([]byte, 16)
	var got []byte
	for ib.Stats().Queued > 0 {
		p, _ := ib.Receive(buf)
		got = append(got, p.Data[0])
	}
	fmt.Println("arrived:", got)
	fmt.Println(a.Stats())
	// Output:
	// arrived: [1 2 3 4 5 6 7]
	// fault seed=42 send{passed=7 lost=3 dup=0 reordered=0 corrupt=0 delayed=0 eagain=0 failed=0} recv{passed=0 lost=0 dup=0 reordered=0 corrupt=0 delayed=0 overruns=0 overrun-drops=0}
}

// Delay and jitter hold datagrams on a timer; Receive waits for them. In
// a testing/synctest bubble the wait costs no real time.
func ExampleDirection_delay() {
	net := memnet.New(memnet.Config{})
	ia, _ := net.Open(0)
	ib, _ := net.Open(0)
	b := fault.Wrap(ib, fault.Config{Recv: fault.Direction{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}})
	defer b.Close()
	defer ia.Close()
	start := time.Now()
	_ = ia.Send(transport.Addr{Port: b.LocalPort()}, []byte("ping"))
	p, _ := b.Receive(make([]byte, 16))
	fmt.Printf("%s, delayed at least 20ms: %v\n", p.Data, time.Since(start) >= 20*time.Millisecond)
	// Output: ping, delayed at least 20ms: true
}
