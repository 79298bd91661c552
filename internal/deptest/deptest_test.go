package deptest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllowedFor(t *testing.T) {
	tests := []struct {
		dir, dep string
		test     bool
		want     bool
	}{
		{"registry", "profile", false, false},
		{"command", "push", false, false},
		{"command", "push", true, false},
		{"store", "registry", false, true},
		{"store", "command", false, true},
		{"registry", "registry/registrytest", true, true},
		{"registry", "registry/registrytest", false, false},
		{"registry/registrytest", "registry", false, true},
		{"registry/registrytest", "codec", false, false},
		{"examples/device", "lwm2m", false, true},
		{"examples/device", "registry", false, false},
		{"examples/codeccheck", "profile", false, true},
		{"examples/device", "examples/device/sim", false, true},
		{"examples/device/sim", "lwm2m", false, true},
		{"examples/device/sim", "registry", false, false},
		{"examples/device/sim", "mqtt/ceiling", false, true},
		{"examples/device/sim", "mqtt", false, false},
		{"lwm2m/ceiling", "lwm2m", false, true},
		{"lwm2m/ceiling", "mqtt/ceiling", false, false},
		{"mqtt/ceiling", "mqtt", false, true},
		{"examples/platform", "store", false, true},
		{"profile", "internal/deptest", true, true},
		{"internal/deptest", "registry", false, true},
		{"internal/lifecycle", "registry", false, false},
		{"internal/apitime", "push", false, false},
		{"push", "internal/apitime", false, true},
		{"lwm2m/transport", "lwm2m", false, true},
		{"lwm2m/transport", "registry", false, false},
		{"lwm2m", "lwm2m/transport", false, false},
		{"lwm2m/lwm2mtest", "lwm2m/transport", false, true},
		{"store", "lwm2m/transport", false, true},
		{"store", "store/internal/records", false, true},
		{"store/postgres", "store/internal/records", false, true},
		{"registry", "store/internal/records", false, false},
		{"codec", "ota/pcp", false, true},
		{"codec", "ota", false, false},
		{"codec", "ota/download", false, false},
		{"ota", "ota/pcp", false, true},
		{"ota", "ota/download", false, false},
		{"ota", "ota/download", true, true},
		{"ota/pcp", "ota", false, false},
		{"ota/pcp", "codec", false, false},
		{"ota/download", "ota/pcp", false, true},
		{"ota/download", "ota", false, false},
		{"ota/otatest", "ota", false, true},
		{"store", "ota/pcp", true, true},
		{"examples/device/sim", "ota/download", false, true},
	}
	for _, tt := range tests {
		got := allowedFor(tt.dir, tt.dep, tt.test)
		require.Equal(t, tt.want, got, "allowedFor(%q, %q, test=%v)", tt.dir, tt.dep, tt.test)
	}
}

func TestThirdParty(t *testing.T) {
	require.False(t, thirdPartyAllowed("registry", "go.etcd.io/bbolt", false))
	require.True(t, thirdPartyAllowed("store", "go.etcd.io/bbolt", false))
	require.True(t, thirdPartyAllowed("store/postgres", "github.com/jackc/pgx/v5/pgxpool", false))
	require.False(t, thirdPartyAllowed("store", "github.com/jackc/pgx/v5", false), "only store/postgres imports pgx")
	require.False(t, thirdPartyAllowed("command", "github.com/plgd-dev/go-coap/v3/message", false))
	require.True(t, thirdPartyAllowed("lwm2m/transport", "github.com/pion/dtls/v3", false))
	require.True(t, thirdPartyAllowed("lwm2m/transport", "github.com/plgd-dev/go-coap/v3/message", false))
	require.True(t, thirdPartyAllowed("lwm2m/lwm2mtest", "github.com/plgd-dev/go-coap/v3/message", false))
	require.False(t, thirdPartyAllowed("lwm2m/cmd/lwm2mbench", "github.com/pion/dtls/v3", false), "lwm2mbench reaches pion only through lwm2m/ceiling")
	require.True(t, thirdPartyAllowed("lwm2m/ceiling", "github.com/pion/dtls/v3", false))
	require.False(t, thirdPartyAllowed("lwm2m", "github.com/plgd-dev/go-coap/v3/message", false), "the lwm2m object model imports no go-coap")
	require.False(t, thirdPartyAllowed("lwm2m", "github.com/pion/dtls/v3", false), "the lwm2m object model imports no pion")
	require.True(t, thirdPartyAllowed("registry", "crypto/rand", false))
	// The simulator reaches go-coap, pion and mochi-mqtt only through
	// lwm2m and mqtt; their ceiling packages may import them.
	for _, imp := range []string{"github.com/plgd-dev/go-coap/v3/message", "github.com/pion/dtls/v3/pkg/protocol", "github.com/mochi-mqtt/server/v2"} {
		require.False(t, thirdPartyAllowed("examples/device/sim", imp, false), "examples/device/sim imports %s", imp)
		require.False(t, thirdPartyAllowed("examples/device", imp, false), "examples/device imports %s", imp)
	}
	require.True(t, thirdPartyAllowed("lwm2m/ceiling", "github.com/pion/dtls/v3/pkg/crypto/prf", false))
	require.True(t, thirdPartyAllowed("lwm2m/ceiling", "github.com/plgd-dev/go-coap/v3/udp", false))
	require.True(t, thirdPartyAllowed("mqtt/ceiling", "github.com/mochi-mqtt/server/v2/listeners", false))
	require.False(t, thirdPartyAllowed("lwm2m/ceiling", "github.com/mochi-mqtt/server/v2", false))
	// The platform's tests (only they) may drive it with a pion client.
	require.True(t, thirdPartyAllowed("examples/platform", "github.com/pion/dtls/v3", true))
	require.False(t, thirdPartyAllowed("examples/platform", "github.com/pion/dtls/v3", false))
	require.False(t, thirdPartyAllowed("examples/platform", "github.com/plgd-dev/go-coap/v3/message", true))
	require.False(t, thirdPartyAllowed("examples/device/sim", "github.com/pion/dtls/v3", true))
}

// TestProblemsFindsForbiddenImport builds a throw-away module in which
// registry imports profile and checks that Problems reports it.
func TestProblemsFindsForbiddenImport(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	write("go.mod", "module "+Module+"\n")
	write("profile/p.go", "package profile\n")
	write("registry/r.go", "package registry\nimport _ \""+Module+"/profile\"\nimport _ \"go.etcd.io/bbolt\"\n")
	got, err := Problems(root, "registry")
	require.NoError(t, err)
	require.Len(t, got, 2, "Problems(registry) = %q", got)
	require.Contains(t, got[0]+got[1], "go.etcd.io/bbolt")
	require.Contains(t, got[0]+got[1], "imports profile")

	// The lwm2m object model may not import go-coap; its transport may.
	write("lwm2m/m.go", "package lwm2m\nimport _ \"github.com/plgd-dev/go-coap/v3/message\"\n")
	got, err = Problems(root, "lwm2m")
	require.NoError(t, err)
	require.Len(t, got, 1, "Problems(lwm2m) = %q", got)
	require.Contains(t, got[0], "go-coap")
	write("lwm2m/transport/t.go", "package transport\nimport _ \"github.com/plgd-dev/go-coap/v3/message\"\nimport _ \""+Module+"/lwm2m\"\n")
	got, err = Problems(root, "lwm2m/transport")
	require.NoError(t, err)
	require.Empty(t, got)

	write("store/s.go", "package store\nimport _ \""+Module+"/registry\"\nimport _ \"go.etcd.io/bbolt\"\n")
	got, err = Problems(root, "store")
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestImports(t *testing.T) { Check(t) }

// TestDocsTables: the import tables of docs/architecture.md say what
// deptest enforces, row for row, so that they cannot drift apart; and a
// drift is found.
func TestDocsTables(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	root, err := moduleRoot(wd)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	require.NoError(t, err)
	doc := string(b)
	require.Empty(t, docProblems(doc), "docs/architecture.md against deptest's tables")

	for _, drift := range []struct{ from, to, want string }{
		{"| `github.com/mochi-mqtt/` | `mqtt` |", "| `github.com/mochi-mqtt/` | `mqtt`, `examples/device` |", "github.com/mochi-mqtt/"},
		{"| `go.etcd.io/bbolt` | `store` | — |\n", "", "go.etcd.io/bbolt"},
		{"| `codec`, `profile` |", "| `codec` |", "examples/codeccheck"},
		{", `codec`, `ota`, `mqtt/ceiling` |", ", `codec`, `ota`, `mqtt` |", "examples/device"},
		{"| `lwm2m/transport`, `lwm2m/lwm2mtest`, `lwm2m/ceiling` |", "| `lwm2m`, `examples` |", "github.com/"},
		{"| `examples/platform` (a pion/dtls client", "| (a pion/dtls client", "thirdPartyInTests"},
	} {
		require.True(t, strings.Contains(doc, drift.from), "docs/architecture.md holds %q", drift.from)
		got := docProblems(strings.Replace(doc, drift.from, drift.to, 1))
		require.NotEmpty(t, got, "a docs table changed to %q", drift.to)
		require.Contains(t, strings.Join(got, "\n"), drift.want)
	}
	codeccheck := doc[strings.Index(doc, "| `examples/codeccheck/`"):]
	codeccheck = codeccheck[:strings.Index(codeccheck, "\n")+1]
	require.Contains(t, strings.Join(docProblems(strings.Replace(doc, codeccheck, "", 1)), "\n"),
		"examples/codeccheck", "a row of deptest's allowed table missing from the docs")
}

// docProblems compares the two import tables of the architecture page doc
// with allowed and thirdParty and says every difference. A folder row's
// "may import" cell is "nothing", "anything" (internal/… and
// examples/platform), the folders of its allowed row in backquotes, or, for
// a sub-package, its parent in backquotes ("as `store`, and `store`");
// "—" marks a folder without Go code. Parentheses are comments.
func docProblems(doc string) []string {
	var out []string
	rows := docTable(doc, "| folder | owns | may import from the module |")
	if len(rows) == 0 {
		return []string{"no table | folder | owns | may import from the module |"}
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if len(r) != 3 {
			out = append(out, fmt.Sprintf("row %q: want 3 cells", r))
			continue
		}
		dir := strings.TrimSuffix(strings.Trim(r[0], "`"), "/")
		cell, names := r[2], backquoted(withoutParens(r[2]))
		want, listed := allowed[dir]
		switch {
		case cell == "—":
		case cell == "anything":
			for other := range allowed {
				if !allowedFor(dir, other, false) {
					out = append(out, fmt.Sprintf("%s: the docs say it may import anything; deptest refuses %s", dir, other))
				}
			}
		case listed:
			seen[dir] = true
			if cell == "nothing" {
				names = nil
			}
			if !sameSet(names, want) {
				out = append(out, fmt.Sprintf("%s: the docs say it may import %v; deptest's allowed table says %v", dir, names, want))
			}
		default:
			parent := topFolder(dir)
			if parent == dir || !sameSet(names, []string{parent}) {
				out = append(out, fmt.Sprintf("%s: the docs say it may import %q; deptest has no row for it (a sub-package's cell names its parent)", dir, cell))
			}
		}
	}
	for dir := range allowed {
		if !seen[dir] {
			out = append(out, fmt.Sprintf("%s: in deptest's allowed table, not in the docs' table", dir))
		}
	}

	third, inTests := map[string][]string{}, map[string][]string{}
	for _, r := range docTable(doc, "| third-party module") {
		prefix := backquoted(r[0])
		if len(r) != 3 || len(prefix) != 1 {
			out = append(out, fmt.Sprintf("third-party row %q: want a module prefix, its folders and the folders whose tests may use it too", r))
			continue
		}
		third[prefix[0]] = backquoted(withoutParens(r[1]))
		if tests := backquoted(withoutParens(r[2])); len(tests) > 0 {
			inTests[prefix[0]] = tests
		}
	}
	for prefix, folders := range thirdPartyInTests {
		if !sameSet(inTests[prefix], folders) {
			out = append(out, fmt.Sprintf("%s: the docs' third-party table lets the tests of %v use it too; deptest's thirdPartyInTests says %v", prefix, inTests[prefix], folders))
		}
	}
	for prefix, folders := range inTests {
		if _, ok := thirdPartyInTests[prefix]; !ok {
			out = append(out, fmt.Sprintf("%s: the docs' third-party table lets the tests of %v use it too; deptest's thirdPartyInTests does not", prefix, folders))
		}
	}
	for prefix, folders := range thirdParty {
		got, ok := third[prefix]
		if !ok || !sameSet(got, folders) {
			out = append(out, fmt.Sprintf("%s: the docs' third-party table says %v; deptest's thirdParty says %v", prefix, got, folders))
		}
	}
	for prefix, folders := range third {
		if _, ok := thirdParty[prefix]; !ok {
			out = append(out, fmt.Sprintf("%s: in the docs' third-party table (%v), not in deptest's thirdParty", prefix, folders))
		}
	}
	slices.Sort(out)
	return out
}

// docTable returns the rows of the Markdown table of doc whose header line
// starts with header, each as its trimmed cells.
func docTable(doc, header string) [][]string {
	var rows [][]string
	in := false
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, header):
			in = true
		case !in:
		case !strings.HasPrefix(line, "|"):
			return rows
		case strings.HasPrefix(line, "|---"):
		default:
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			rows = append(rows, cells)
		}
	}
	return rows
}

// withoutParens returns s without its parenthesized comments.
func withoutParens(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// backquoted returns the `…` spans of s.
func backquoted(s string) []string {
	parts := strings.Split(s, "`")
	var out []string
	for i := 1; i < len(parts); i += 2 {
		out = append(out, parts[i])
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
