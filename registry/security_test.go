package registry_test

import (
	"testing"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// TestRegisterSecurity: a registration names its transport security
// (SEC-1): PSK by default, with a key; NONE has no key and refuses one;
// anything else is refused naming the allowed values.
func TestRegisterSecurity(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	d := register(t, r, "861000000000001")
	require.Equal(t, registry.SecurityPSK, d.Security)
	require.Len(t, d.PSK, registry.GeneratedPSKLen)

	none := registerPlain(t, r, "861000000000002")
	require.Equal(t, registry.SecurityNone, none.Security)
	require.Nil(t, none.PSK, "a NONE device has no key")
	got, err := r.Get(ctx, none.ID)
	require.NoError(t, err)
	require.Equal(t, registry.SecurityNone, got.Security, "Get returns what Register stored")

	_, err = r.Register(ctx, registry.Enrollment{NodeID: "861000000000003", Info: meterInfo,
		Security: registry.SecurityNone, PSK: registry.PSK("0123456789abcdef")})
	var fe *registry.FieldError
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.Equal(t, "psk", fe.Field)
	require.NotContains(t, err.Error(), "0123456789abcdef")

	_, err = r.Register(ctx, registry.Enrollment{NodeID: "861000000000004", Info: meterInfo, Security: "TLS"})
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.Equal(t, "security", fe.Field)
	require.Contains(t, err.Error(), `"PSK"`)
	require.Contains(t, err.Error(), `"NONE"`)
}

// TestPlainCoAPCannotBindPSKDevice: the impostor of issue 14 knows a
// meter's IMEI (printed on it) and registers over plain CoAP with it as
// endpoint name, which is also the default verifyCode. The registry
// refuses before comparing anything: a PSK device binds only over DTLS,
// bound or not, and nothing about it changes (SEC-1).
func TestPlainCoAPCannotBindPSKDevice(t *testing.T) {
	r, rec := newRegistry(t, registry.Config{})
	meter := register(t, r, "861234567890123")
	own, err := r.Register(ctx, registry.Enrollment{NodeID: "861234567890124", VerifyCode: "code-124", Info: meterInfo})
	require.NoError(t, err)
	rec.take()

	for _, c := range []struct{ node, code string }{
		{"861234567890123", "861234567890123"},
		{"urn:imei:861234567890123", "urn:imei:861234567890123"},
		{"861234567890124", "code-124"}, // even the right verifyCode
	} {
		_, err := r.Connect(ctx, c.node, registry.Connection{VerifyCode: c.code})
		require.ErrorIs(t, err, registry.ErrWrongTransport, "Connect(%q, verifyCode) of a PSK device over plain CoAP", c.node)
		require.NotContains(t, err.Error(), "code-124", "errors never repeat a verifyCode")
	}
	require.Empty(t, rec.take(), "refused connections change nothing")
	for _, id := range []string{meter.ID, own.ID} {
		d, err := r.Get(ctx, id)
		require.NoError(t, err)
		require.False(t, d.Bound)
		require.Equal(t, registry.StatusInactive, d.Status)
	}

	// The real meter binds over DTLS; the impostor still cannot connect.
	key, err := r.PSK(ctx, meter.NodeID)
	require.NoError(t, err)
	_, err = r.Connect(ctx, meter.NodeID, registry.Connection{PSK: key})
	require.NoError(t, err)
	before, err := r.Get(ctx, meter.ID)
	require.NoError(t, err)
	_, err = r.Connect(ctx, meter.NodeID, registry.Connection{VerifyCode: meter.NodeID})
	require.ErrorIs(t, err, registry.ErrWrongTransport)
	after, err := r.Get(ctx, meter.ID)
	require.NoError(t, err)
	require.True(t, before.LastSeen.Equal(after.LastSeen), "a refused impostor does not even touch the device")
}

// TestNoneDeviceHasNoDTLS: a device registered without security has no
// key for a DTLS handshake and cannot bind with one; it binds over plain
// CoAP with its verifyCode.
func TestNoneDeviceHasNoDTLS(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	d := registerPlain(t, r, "861000000000009")
	_, err := r.PSK(ctx, d.NodeID)
	require.ErrorIs(t, err, registry.ErrWrongTransport, "no key is handed to a DTLS handshake")
	_, err = r.Connect(ctx, d.NodeID, registry.Connection{PSK: registry.PSK("0123456789abcdef")})
	require.ErrorIs(t, err, registry.ErrWrongTransport)
	got, err := r.Connect(ctx, d.NodeID, registry.Connection{VerifyCode: d.NodeID})
	require.NoError(t, err)
	require.True(t, got.Bound)
}

// TestSecurityLookup: Registry.Security answers what an lwm2m endpoint
// policy needs: PSK, NONE or not found. A stored record without
// the field (written before SEC-1) is a PSK device, and refused over
// plain CoAP like one.
func TestSecurityLookup(t *testing.T) {
	st := registry.NewMemStore()
	r, err := registry.New(st, catalog, registry.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })

	psk := register(t, r, "861000000000021")
	registerPlain(t, r, "urn:imei:861000000000022")
	old := registry.Device{ID: "0196a1b2-0000-7000-8000-0000000000aa", NodeID: "861000000000023", VerifyCode: "861000000000023",
		PSK: registry.NewPSK(), Info: meterInfo, NodeType: registry.Endpoint, Status: registry.StatusInactive,
		CreatedAt: time.Now(), LastModified: time.Now()}
	require.NoError(t, st.Create(ctx, old))

	for _, c := range []struct {
		node string
		want registry.Security
		err  error
	}{
		{psk.NodeID, registry.SecurityPSK, nil},
		{"urn:imei:" + psk.NodeID, registry.SecurityPSK, nil},
		{"861000000000022", registry.SecurityNone, nil},
		{old.NodeID, registry.SecurityPSK, nil},
		{"unknown", "", registry.ErrNotFound},
	} {
		got, err := r.Security(ctx, c.node)
		if c.err != nil {
			require.ErrorIs(t, err, c.err, "Security(%q)", c.node)
			continue
		}
		require.NoError(t, err, "Security(%q)", c.node)
		require.Equal(t, c.want, got, "Security(%q)", c.node)
	}
	_, err = r.Connect(ctx, old.NodeID, registry.Connection{VerifyCode: old.NodeID})
	require.ErrorIs(t, err, registry.ErrWrongTransport, "a device stored before SEC-1 is a PSK device")
}
