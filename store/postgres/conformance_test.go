package postgres

import (
	"testing"

	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/registry/registrytest"
)

func TestRegistryConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store { return openTest(t).Registry() })
}
