package registry_test

import (
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/registry/registrytest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (Run must
// return when stopped).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestImports(t *testing.T) { deptest.Check(t) }

func TestMemStore(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store { return registry.NewMemStore() })
}
