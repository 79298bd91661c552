package command_test

import (
	"testing"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/doze-io/doze/internal/deptest"
)

func TestImports(t *testing.T) { deptest.Check(t) }

func TestMemStore(t *testing.T) {
	commandtest.Run(t, func(t *testing.T) command.Store { return command.NewMemStore() })
}
