package codec_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The complete example in doc.go is testdata/watermeter.json, comments
// aside: the documentation cannot drift from the codec the tests use.
func TestDocExampleIsWaterMeter(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var example []string
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		body, ok := strings.CutPrefix(line, "//\t")
		switch {
		case !in && ok && body == "{":
			in = true
		case in && !ok:
			in = false
		}
		if in {
			example = append(example, stripComment(body))
		}
		if in && body == "}" {
			break
		}
	}
	var fromDoc, fromFile any
	require.NoError(t, json.Unmarshal([]byte(strings.Join(example, "\n")), &fromDoc), "doc.go example:\n%s", strings.Join(example, "\n"))
	data, err := os.ReadFile("testdata/watermeter.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &fromFile))
	require.Equal(t, fromFile, fromDoc, "doc.go example and testdata/watermeter.json differ")
}

// stripComment drops a // comment that is outside JSON strings.
func stripComment(line string) string {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && quoted:
			i++
		case line[i] == '"':
			quoted = !quoted
		case !quoted && strings.HasPrefix(line[i:], "//"):
			return line[:i]
		}
	}
	return line
}
