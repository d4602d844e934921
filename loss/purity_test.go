package loss

import (
	"testing"

	"github.com/cnlink/cnlink/internal/purity"
)

// TestPackageIsPure enforces the package's contract on its own source: no
// clock reads, timers or sleeps, no goroutines, no I/O or lock imports.
func TestPackageIsPure(t *testing.T) { purity.Check(t, 2, nil) }
