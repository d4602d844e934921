package window_test

import (
	"fmt"
	"time"

	"github.com/cnlink/cnlink/window"
)

// A sender sends five messages; the second is lost on the way. The receiver
// acknowledges the others selectively, the sender declares the second lost by
// the packet threshold and sends it again, and the receiver delivers all five
// in order.
func Example() {
	const isn = window.Seq(0xFFFFFFFE) // runs across 2^32
	snd := window.NewSender[string](isn, window.SenderConfig{Window: 8})
	rcv := window.NewReceiver[string](isn, window.ReceiverConfig{Window: 8})

	now := time.Duration(0)
	deliver := func(seq window.Seq, msg string) {
		rcv.Push(seq, msg)
		for {
			m, ok := rcv.Pop()
			if !ok {
				break
			}
			fmt.Println("delivered", m)
		}
	}
	for _, msg := range []string{"a", "b", "c", "d", "e"} {
		seq := snd.Push(now, msg)
		if msg != "b" { // lost
			deliver(seq, msg)
		}
	}

	now += 10 * time.Microsecond
	ack := rcv.Ack(0)
	fmt.Printf("ack cum=%#x ranges=%d\n", uint32(ack.Cum), len(ack.Ranges))
	res := snd.OnAck(now, ack, func(seq window.Seq, msg string) {
		fmt.Println("released", msg)
	})
	fmt.Println("newly lost", res.NewlyLost)

	for {
		seq, msg, ok := snd.PopLost(now)
		if !ok {
			break
		}
		fmt.Println("retransmit", msg)
		deliver(seq, msg)
	}
	now += 10 * time.Microsecond
	res = snd.OnAck(now, rcv.Ack(0), func(seq window.Seq, msg string) {
		fmt.Println("released", msg)
	})
	fmt.Println("in flight", snd.InFlight())
	// Output:
	// delivered a
	// ack cum=0xffffffff ranges=1
	// released a
	// released c
	// released d
	// released e
	// newly lost 1
	// retransmit b
	// delivered b
	// delivered c
	// delivered d
	// delivered e
	// released b
	// in flight 0
}
