package command_test

import (
	"testing"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/doze-io/doze/internal/deptest"
	"go.uber.org/goleak"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// TestMain fails the run when a test leaves a goroutine behind: Run must
// own and stop everything it starts.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemStore(t *testing.T) {
	commandtest.Run(t, func(t *testing.T) command.Store { return command.NewMemStore() })
}
