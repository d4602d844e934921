package memnet_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: a Conn
// starts none, and the suite's readers must all end at Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
