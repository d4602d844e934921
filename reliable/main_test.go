package reliable

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind:
// Close must stop the owner, the reader and every pump.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
