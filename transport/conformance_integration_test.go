//go:build linux

package transport_test

import (
	"testing"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/transporttest"
)

// adapterHarness opens real NETLINK_CONNECTOR sockets on kernel-assigned
// ports, so that the conformance suite checks its expectations against
// the kernel itself.
type adapterHarness struct{}

func (adapterHarness) Open(t *testing.T, readBuffer int) transport.Transport {
	t.Helper()
	c, err := transport.Open(transport.Config{ReadBuffer: readBuffer})
	if err != nil {
		t.Fatalf("Open(ReadBuffer=%d): %v", readBuffer, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RealCreds: the kernel stamps SCM_CREDENTIALS with the sending process.
func (adapterHarness) RealCreds() bool { return true }

func TestIntegrationConformance(t *testing.T) {
	testenv.RequireNetAdmin(t)
	transporttest.Run(t, adapterHarness{})
}
