package push_test

import (
	"testing"

	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/push/pushtest"
)

// TestMemoryStore runs the Store conformance suite on MemoryStore.
func TestMemoryStore(t *testing.T) {
	pushtest.Run(t, func(t *testing.T) push.Store { return push.NewMemoryStore() })
}
