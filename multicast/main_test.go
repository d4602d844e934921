package multicast

import (
	"testing"

	"github.com/cnlink/cnlink/internal/leakcheck"
)

// TestMain fails the package if any test leaves a goroutine or a socket
// behind: Close and Abort must stop every goroutine and release the socket.
func TestMain(m *testing.M) { leakcheck.Main(m) }
