package records

import (
	"testing"

	"github.com/doze-io/doze/internal/deptest"
)

func TestImports(t *testing.T) { deptest.Check(t) }
