package otatest_test

import (
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/otatest"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// TestSuiteOnMemStore runs the suite from its own package too.
func TestSuiteOnMemStore(t *testing.T) {
	otatest.Run(t, func(*testing.T) ota.Store { return ota.NewMemStore() })
}
