package ota_test

import (
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/otatest"
)

func TestImports(t *testing.T) { deptest.Check(t) }

func TestMemStore(t *testing.T) {
	otatest.Run(t, func(*testing.T) ota.Store { return ota.NewMemStore() })
}
