package discover

import (
	"testing"

	"github.com/cnlink/cnlink/internal/leakcheck"
	"github.com/cnlink/cnlink/internal/testenv"
)

// TestMain fails the package if a test leaves a socket or goroutine behind.
func TestMain(m *testing.M) { leakcheck.Main(m) }

func testenvNetAdmin(t *testing.T) { testenv.RequireNetAdmin(t) }
