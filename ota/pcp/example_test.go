package pcp_test

import (
	"fmt"
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/ota/pcp"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// ExampleEncode encodes a PCP query-version frame; the check code matches
// a frame captured from a real module.
func ExampleEncode() {
	fmt.Printf("%X\n", pcp.Encode(pcp.QueryVersion{}))
	m, err := pcp.DecodeMessage(pcp.Encode(pcp.UpgradeResult{Result: pcp.ResultOK, Version: "V1.0"}), pcp.Uplink)
	fmt.Printf("%+v %v\n", m, err)
	// Output:
	// FFFE01134C9A0000
	// {Result:ok Version:V1.0} <nil>
}
