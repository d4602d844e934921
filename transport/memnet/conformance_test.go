package memnet_test

import (
	"os"
	"testing"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
	"github.com/cnlink/cnlink/transport/transporttest"
)

type harness struct {
	n    *memnet.Network
	real bool
}

func (h harness) Open(t *testing.T, readBuffer int) transport.Transport {
	t.Helper()
	c, err := h.n.Open(0)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if readBuffer > 0 {
		if err := c.SetReadBuffer(readBuffer); err != nil {
			t.Fatalf("SetReadBuffer: %v", err)
		}
	}
	return c
}

func (h harness) RealCreds() bool { return h.real }

func TestConformance(t *testing.T) {
	transporttest.Run(t, harness{n: memnet.New(memnet.Config{})})
}

// TestConformanceProcessCreds stamps this process's credentials, as the
// kernel does for sockets of one process, so the suite checks them.
func TestConformanceProcessCreds(t *testing.T) {
	n := memnet.New(memnet.Config{Creds: func(uint32) transport.Creds {
		return transport.Creds{PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Valid: true}
	}})
	transporttest.Run(t, harness{n: n, real: true})
}
