// Package deptest enforces the import rules of docs/architecture.md: which packages of
// the module a package may import, and which third-party modules only one
// package may use.
//
// Every package calls Check from one of its tests:
//
//	func TestImports(t *testing.T) { deptest.Check(t) }
//
// Check finds the package from the test's working directory, reads the
// imports of its files with go/build, and fails the test for every import the
// table below forbids. Test files may additionally import internal/... and the
// package's own sub-packages (registry may test with registry/registrytest);
// any file may import the package's own internal/... sub-packages.
package deptest

import (
	"fmt"
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Module is the module path.
const Module = "github.com/doze-io/doze"

// allowed lists, for each package folder, the module folders its non-test
// files may import. A folder not listed may import nothing of the module
// unless a rule in allowedFor says otherwise. A sub-package with a row of
// its own (ota/pcp) follows only that row, not its parent's.
var allowed = map[string][]string{
	"profile": nil,
	// ota/pcp is a leaf wire format that imports nothing of the module:
	// codec uses it to keep PCP frames out of codecs, ota to run upgrades.
	"codec":           {"ota/pcp"},
	"lwm2m":           nil,
	"lwm2m/transport": {"lwm2m"},
	"command":         nil,
	"push":            nil,
	"ota":             {"ota/pcp"},
	"ota/pcp":         nil,
	"ota/download":    {"ota/pcp"},
	"registry":        nil,
	"mqtt":            nil,
	// forward builds on push: its broker deliveries run through a
	// push.Engine of their own, its webhook targets through the app's.
	"forward":             {"push"},
	"store":               {"registry", "command", "push", "ota", "profile", "codec", "lwm2m", "forward"},
	"examples/device":     {"lwm2m", "codec", "ota", "mqtt/ceiling"},
	"examples/codeccheck": {"codec", "profile"},
	// Every package may import internal/…; these are imported by the
	// domain packages and import nothing of the module themselves.
	"internal/lifecycle":  nil,
	"internal/lease":      nil,
	"internal/apitime":    nil,
	"internal/brokertest": nil,
}

// thirdParty lists module prefixes that only some folders may import: a
// folder listed allows itself and its sub-folders, not its parent (the
// lwm2m object model may not import go-coap or pion; lwm2m/transport may).
var thirdParty = map[string][]string{
	"github.com/plgd-dev/go-coap": {"lwm2m/transport", "lwm2m/lwm2mtest", "lwm2m/ceiling"},
	"github.com/pion/":            {"lwm2m/transport", "lwm2m/lwm2mtest", "lwm2m/ceiling"},
	"go.etcd.io/bbolt":            {"store"},
	"github.com/jackc/pgx":        {"store/postgres"},
	"github.com/mochi-mqtt/":      {"mqtt"},
	// Broker clients: forward publishes with them (paho, also the
	// simulator's MQTT client, is not restricted); the platform routes
	// between cluster nodes over NATS.
	"github.com/nats-io/":            {"forward", "examples/platform"},
	"github.com/rabbitmq/amqp091-go": {"forward"},
}

// allowedFor reports whether the package in folder dir may import the module
// folder dep. test says whether the import comes from a _test.go file.
func allowedFor(dir, dep string, test bool) bool {
	if dep == dir || strings.HasPrefix(dep, dir+"/") && (test || strings.HasPrefix(dir, "examples/")) {
		// A package's tests may use its sub-packages (registry →
		// registry/registrytest); a command may be built from its own
		// (examples/device → examples/device/sim).
		return true
	}
	if strings.HasPrefix(dep, dir+"/internal/") {
		// A package may use its own internal sub-packages (store →
		// store/internal/records).
		return true
	}
	if _, own := allowed[dir]; !own && (strings.HasPrefix(dir, "internal/") || dir == "internal" ||
		dir == "examples/platform" || strings.HasPrefix(dir, "examples/platform/")) {
		// internal/… (but for the folders with a row of their own) and
		// the assembled platform may import anything.
		return true
	}
	if dep == "internal" || strings.HasPrefix(dep, "internal/") {
		return true
	}
	root := row(dir)
	// A sub-package (registry/registrytest) may import its parent and
	// whatever its parent may import.
	if root != dir && (dep == root || strings.HasPrefix(dep, root+"/")) {
		return true
	}
	for _, a := range allowed[root] {
		if dep == a || strings.HasPrefix(dep, a+"/") {
			return true
		}
	}
	return false
}

// row returns the folder whose row of the table governs dir: dir itself when
// it has a row (ota/pcp), else its top folder.
func row(dir string) string {
	if _, ok := allowed[dir]; ok {
		return dir
	}
	return topFolder(dir)
}

// topFolder maps a package folder to the row of the table that governs it:
// "registry/registrytest" → "registry", "examples/device/x" → "examples/device".
func topFolder(dir string) string {
	parts := strings.Split(dir, "/")
	if parts[0] == "examples" && len(parts) > 1 {
		return parts[0] + "/" + parts[1]
	}
	return parts[0]
}

// thirdPartyInTests lists, for some modules of thirdParty, further folders
// whose tests (not their code) may import them: the platform's tests drive
// its DTLS socket with a pion/dtls client of their own (session
// resumption, a strict device).
var thirdPartyInTests = map[string][]string{
	"github.com/pion/": {"examples/platform"},
	// The platform's forwarding tests consume with the AMQP client.
	"github.com/rabbitmq/amqp091-go": {"examples/platform"},
}

// thirdPartyAllowed reports whether the package in folder dir may import
// imp; test says whether the import comes from a _test.go file.
func thirdPartyAllowed(dir, imp string, test bool) bool {
	under := func(folders []string) bool {
		for _, f := range folders {
			if dir == f || strings.HasPrefix(dir, f+"/") {
				return true
			}
		}
		return false
	}
	for prefix, folders := range thirdParty {
		if strings.HasPrefix(imp, prefix) {
			return under(folders) || test && under(thirdPartyInTests[prefix])
		}
	}
	return true
}

// Problems returns every forbidden import of the package in folder dir
// (relative to the module root at root), one sentence each.
func Problems(root, dir string) ([]string, error) {
	pkg, err := build.Default.ImportDir(filepath.Join(root, dir), build.ImportComment)
	if err != nil {
		return nil, fmt.Errorf("deptest: reading %s: %w", dir, err)
	}
	var out []string
	check := func(imports []string, test bool) {
		for _, imp := range imports {
			if !thirdPartyAllowed(dir, imp, test) {
				out = append(out, fmt.Sprintf("%s imports %s, which docs/architecture.md allows only elsewhere", dir, imp))
				continue
			}
			if imp != Module && !strings.HasPrefix(imp, Module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, Module), "/")
			if !allowedFor(dir, dep, test) {
				out = append(out, fmt.Sprintf("%s imports %s; docs/architecture.md allows it only %v of the module", dir, dep, allowed[row(dir)]))
			}
		}
	}
	check(pkg.Imports, false)
	check(pkg.TestImports, true)
	check(pkg.XTestImports, true)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Check fails t for every import of the package under test that docs/architecture.md's
// table forbids.
func Check(t testing.TB) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Rel(root, wd)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := Problems(root, filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("deptest: no go.mod above %s", dir)
		}
	}
}
