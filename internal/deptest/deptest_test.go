package deptest

import (
	"os"
	"path/filepath"
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
		{"examples/platform", "store", false, true},
		{"profile", "internal/deptest", true, true},
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
	require.False(t, thirdPartyAllowed("registry", "go.etcd.io/bbolt"))
	require.True(t, thirdPartyAllowed("store", "go.etcd.io/bbolt"))
	require.True(t, thirdPartyAllowed("store/postgres", "github.com/jackc/pgx/v5/pgxpool"))
	require.False(t, thirdPartyAllowed("store", "github.com/jackc/pgx/v5"), "only store/postgres imports pgx")
	require.False(t, thirdPartyAllowed("command", "github.com/plgd-dev/go-coap/v3/message"))
	require.True(t, thirdPartyAllowed("lwm2m/transport", "github.com/pion/dtls/v3"))
	require.True(t, thirdPartyAllowed("lwm2m/transport", "github.com/plgd-dev/go-coap/v3/message"))
	require.True(t, thirdPartyAllowed("lwm2m/lwm2mtest", "github.com/plgd-dev/go-coap/v3/message"))
	require.True(t, thirdPartyAllowed("lwm2m/cmd/lwm2mbench", "github.com/pion/dtls/v3"))
	require.False(t, thirdPartyAllowed("lwm2m", "github.com/plgd-dev/go-coap/v3/message"), "the lwm2m object model imports no go-coap")
	require.False(t, thirdPartyAllowed("lwm2m", "github.com/pion/dtls/v3"), "the lwm2m object model imports no pion")
	require.True(t, thirdPartyAllowed("registry", "crypto/rand"))
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
