package sim_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: Run
// must stop everything it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
