package transport_test

import (
	"testing"

	"github.com/cnlink/cnlink/internal/leakcheck"
)

// TestMain fails the package if any test leaves a goroutine or a socket
// behind: Close must stop every goroutine and release every socket.
func TestMain(m *testing.M) { leakcheck.Main(m) }
