package fault_test

import (
	"math/rand/v2"
	"testing"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
	"github.com/cnlink/cnlink/transport/transporttest"
)

// harness wraps memnet sockets in a fault.Conn that injects nothing: the
// wrapper itself (its receive pump, its buffers) must not change what the
// suite observes.
type harness struct{ n *memnet.Network }

func (h harness) Open(t *testing.T, readBuffer int) transport.Transport {
	t.Helper()
	c, err := h.n.Open(0)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if readBuffer > 0 {
		_ = c.SetReadBuffer(readBuffer)
	}
	f := fault.Wrap(c, fault.Config{Seed: rand.Uint64()})
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func (harness) RealCreds() bool { return false }

func TestConformance(t *testing.T) {
	transporttest.Run(t, harness{memnet.New(memnet.Config{})})
}
