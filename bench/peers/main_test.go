package peers_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test or benchmark leaves a goroutine
// behind. kcp-go keeps process-wide goroutines that never end: its
// timer scheduler, started at init (IgnoreCurrent, taken before anything
// runs, excuses those), and its packet post-processing workers, started
// with the first session.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/xtaci/kcp-go/v5.postProcessWorker"))
}
