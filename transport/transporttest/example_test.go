package transporttest_test

import (
	"fmt"
	"testing"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
	"github.com/cnlink/cnlink/transport/transporttest"
)

// memnetHarness opens memnet sockets for the suite.
type memnetHarness struct{ n *memnet.Network }

func (h memnetHarness) Open(t *testing.T, readBuffer int) transport.Transport {
	c, err := h.n.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if readBuffer > 0 {
		if err := c.SetReadBuffer(readBuffer); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (memnetHarness) RealCreds() bool { return false }

// A Transport implementation proves its conformance with a Harness and
// one call, in a test of its own package:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, memnetHarness{memnet.New(memnet.Config{})})
//	}
func ExampleRun() {
	var h transporttest.Harness = memnetHarness{memnet.New(memnet.Config{})}
	// Inside a Test function: transporttest.Run(t, h)
	fmt.Println("real credentials:", h.RealCreds())
	// Output: real credentials: false
}
