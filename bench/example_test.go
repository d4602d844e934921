package bench_test

import (
	"fmt"

	"github.com/cnlink/cnlink/bench"
)

// A sender stamps each message with its index; the receiver's Checker
// catches anything lost, duplicated, reordered or cut short.
func Example() {
	msgs := make([][]byte, 3)
	for i := range msgs {
		msgs[i] = make([]byte, 64)
		bench.Stamp(msgs[i], uint64(i))
	}
	c := bench.Checker{Size: 64}
	fmt.Println(c.Check(msgs[0]))
	fmt.Println(c.Check(msgs[2]))
	fmt.Println(c.Check(msgs[1]), c.Check(msgs[2]), c.Done(3))
	// Output:
	// <nil>
	// got message 2, want 1 (lost, duplicated or reordered)
	// <nil> <nil> <nil>
}
