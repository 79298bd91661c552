package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

var pskCases = []struct {
	in   string
	ok   bool
	want string // hex of the key
}{
	{"0011223344556677", true, "0011223344556677"},
	{"00112233445566778899AABBCCDDEEFF", true, "00112233445566778899aabbccddeeff"},
	{strings.Repeat("ab", 64), true, strings.Repeat("ab", 64)},
	{"", false, ""},
	{"00112233445566", false, ""},         // 7 bytes
	{strings.Repeat("ab", 65), false, ""}, // 65 bytes
	{"001122334455667", false, ""},        // odd
	{"00112233445566zz", false, ""},       // not hex
	{"0x11223344556677", false, ""},
}

// TestParsePSK: a caller's PSK is hex, 8 to 64 bytes (REG-1).
func TestParsePSK(t *testing.T) {
	for _, c := range pskCases {
		k, err := registry.ParsePSK(c.in)
		if !c.ok {
			require.ErrorIs(t, err, registry.ErrInvalid, "ParsePSK(%q)", c.in)
			var fe *registry.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, "psk", fe.Field)
			require.Empty(t, fe.Value, "the key is never repeated in an error")
			if len(c.in) >= 4 {
				require.NotContains(t, err.Error(), c.in[:4], "ParsePSK(%q) error repeats the input", c.in)
			}
			continue
		}
		require.NoError(t, err, "ParsePSK(%q)", c.in)
		require.Equal(t, c.want, k.Hex())
	}
}

func FuzzParsePSK(f *testing.F) {
	for _, c := range pskCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := registry.ParsePSK(s)
		if err != nil {
			if len(s) >= 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q repeats the input", err)
			}
			return
		}
		if len(k) < registry.MinPSKLen || len(k) > registry.MaxPSKLen {
			t.Fatalf("ParsePSK(%q) accepted %d bytes", s, len(k))
		}
		if k.Hex() != strings.ToLower(s) {
			t.Fatalf("round trip: %q → %q", s, k.Hex())
		}
	})
}

// TestPSKNeverPrinted: the key does not appear in fmt output, slog records
// (text and JSON), JSON, or the errors of a failed connection (REG-1).
func TestPSKNeverPrinted(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	d := register(t, r, "861")
	secret := d.PSK.Hex()
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, d.PSK), fmt.Sprintf(verb, d))
	}
	outputs = append(outputs, d.PSK.String(), fmt.Sprint(d), fmt.Sprintln(&d))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("device", "psk", d.PSK, "device", d)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("device", "psk", d.PSK, "device", d)
	outputs = append(outputs, buf.String())
	js, err := json.Marshal(d)
	require.NoError(t, err)
	outputs = append(outputs, string(js))
	for _, out := range outputs {
		require.NotContains(t, strings.ToLower(out), secret[:8], "PSK leaked in %q", out)
		require.NotContains(t, out, fmt.Sprint([]byte(d.PSK)), "PSK bytes leaked")
	}
	require.Contains(t, fmt.Sprintf("%v", d.PSK), "REDACTED")
	require.Contains(t, buf.String(), "REDACTED")

	// A logging registry logs no key either.
	buf.Reset()
	lr, err := registry.New(registry.NewMemStore(), catalog, registry.Config{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	ld, err := lr.Register(ctx, registry.Enrollment{NodeID: "861", Info: meterInfo})
	require.NoError(t, err)
	_, err = lr.Connect(ctx, "861", registry.Connection{PSK: ld.PSK})
	require.NoError(t, err)
	require.NoError(t, lr.Delete(ctx, ld.ID))
	require.NotEmpty(t, buf.String(), "debug records were written")
	require.NotContains(t, buf.String(), ld.PSK.Hex()[:8])
}
