package profile_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/profile"
)

// TestCodecModel: the codec's view of a product gives the names of the
// data types the product's own lookups give, and nothing where they find
// nothing; the zero CodecModel knows no service.
func TestCodecModel(t *testing.T) {
	p, _, err := profile.LoadDir(os.DirFS("testdata/profiles/SmartLock_DozeLabs_SL2"), "", nil)
	require.NoError(t, err)
	m := p.CodecModel()
	for _, tc := range []struct {
		kind                   string
		service, command, name string
		want                   string
		ok                     bool
	}{
		{"para", "Lock", "UNLOCK", "holdSeconds", "int", true},
		{"para", "Lock", "UNLOCK", "reason", "string", true},
		{"para", "Lock", "SET_USERS", "users", "jsonObject", true},
		{"para", "Lock", "UNLOCK", "nope", "", false},
		{"para", "Lock", "NOPE", "holdSeconds", "", false},
		{"para", "Nope", "UNLOCK", "holdSeconds", "", false},
		{"response", "Lock", "UNLOCK", "lockState", "string", true},
		{"response", "Lock", "UNLOCK", "holdSeconds", "", false},
		{"property", "Lock", "", "nope", "", false},
	} {
		var got string
		var ok bool
		switch tc.kind {
		case "para":
			got, ok = m.ParaType(tc.service, tc.command, tc.name)
			want, wantOK := p.ParaType(tc.service, tc.command, tc.name)
			require.Equal(t, wantOK, ok, "ParaType(%q, %q, %q) agrees with the product's", tc.service, tc.command, tc.name)
			if ok {
				require.Equal(t, want.String(), got)
			}
		case "response":
			got, ok = m.ResponseParaType(tc.service, tc.command, tc.name)
		case "property":
			got, ok = m.PropertyType(tc.service, tc.name)
		}
		require.Equal(t, tc.ok, ok, "%s %s/%s/%s", tc.kind, tc.service, tc.command, tc.name)
		require.Equal(t, tc.want, got, "%s %s/%s/%s", tc.kind, tc.service, tc.command, tc.name)
	}
	for _, svc := range p.Services {
		for _, prop := range svc.Properties {
			got, ok := m.PropertyType(svc.ID, prop.Name)
			require.True(t, ok, "property %s/%s", svc.ID, prop.Name)
			require.Equal(t, prop.DataType.String(), got, "property %s/%s", svc.ID, prop.Name)
		}
	}

	var zero profile.CodecModel
	_, ok := zero.PropertyType("Lock", "lockState")
	require.False(t, ok, "the zero CodecModel knows no service")
	_, ok = zero.ParaType("Lock", "UNLOCK", "holdSeconds")
	require.False(t, ok)
	_, ok = zero.ResponseParaType("Lock", "UNLOCK", "lockState")
	require.False(t, ok)
}
