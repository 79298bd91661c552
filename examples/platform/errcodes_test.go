package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// errorCodesInSource finds the stable error codes the handlers use: the
// second argument of badRequest/notFound/conflict/forbidden and the third of
// withStatus, and the Code of literal httpErrors.
func errorCodesInSource(t *testing.T) []string {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	re := regexp.MustCompile(`(?:badRequest|notFound|conflict|forbidden)\("([a-z_A-Z<>]+)"|withStatus\([^,]+, [^,]+, "([a-z_A-Z]+)"\)|Code: "([a-z_]+)"|\{push\.Err\w+, "([a-z_A-Z]+)"\}|code = "([a-z_]+)"|code := "([a-z_]+)"`)
	var codes []string
	for _, f := range files {
		if filepath.Ext(f) != ".go" || len(f) > 8 && f[len(f)-8:] == "_test.go" {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			for _, g := range m[1:] {
				if g != "" {
					codes = append(codes, g)
				}
			}
		}
	}
	slices.Sort(codes)
	codes = slices.Compact(codes)
	require.Greater(t, len(codes), 30, "the scan found the handlers' codes")
	return codes
}
