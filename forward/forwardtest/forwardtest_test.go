package forwardtest_test

import (
	"testing"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/forward/forwardtest"
	"github.com/doze-io/doze/internal/deptest"
)

func TestImports(t *testing.T) { deptest.Check(t) }

func TestMemoryStore(t *testing.T) {
	forwardtest.Run(t, func(*testing.T) forward.Store { return &forward.MemoryStore{} })
}
