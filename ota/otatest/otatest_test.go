package otatest_test

import (
	"testing"

	"github.com/doze-io/doze/internal/deptest"
)

// TestImports checks the import rules; the suite itself runs from ota's
// tests (in-memory store) and store's (bbolt).
func TestImports(t *testing.T) { deptest.Check(t) }
