package profile_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

// TestDataTypes: every spelling of PRF-4 and PRF-10 parses, prints back as
// Profile files spell it, and unknown ones fail.
func TestDataTypes(t *testing.T) {
	for in, want := range map[string]profile.DataType{
		"int": profile.TypeInt, "decimal": profile.TypeDecimal, "double": profile.TypeDecimal,
		"string": profile.TypeString, "DateTime": profile.TypeDateTime, "jsonObject": profile.TypeJSONObject,
		"long": profile.TypeLong, "enum": profile.TypeEnum, "boolean": profile.TypeBoolean,
		"string list": profile.TypeStringList, "STRING": profile.TypeString,
	} {
		got, ok := profile.ParseDataType(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
		var u profile.DataType
		require.NoError(t, u.UnmarshalText([]byte(got.String())), in)
		require.Equal(t, want, u, in)
	}
	_, ok := profile.ParseDataType("int32")
	require.False(t, ok)
	var u profile.DataType
	require.ErrorContains(t, u.UnmarshalText([]byte("bytes")), "unknown data type")
	require.Equal(t, "DataType(200)", profile.DataType(200).String())
}

// TestAccess: method letters (PRF-4).
func TestAccess(t *testing.T) {
	for _, m := range []string{"R", "RE", "RW", "RWE", "W", "E", "WE", "ER", "ewr"} {
		a, err := profile.ParseAccess(m)
		require.NoError(t, err, m)
		b, err := profile.ParseAccess(a.String())
		require.NoError(t, err)
		require.Equal(t, a, b, m)
	}
	a, _ := profile.ParseAccess("ER")
	require.Equal(t, "RE", a.String())
	require.Equal(t, profile.AccessRead|profile.AccessEvent, a)
	for _, bad := range []string{"", "X", "RR", "RWX", "R W"} {
		_, err := profile.ParseAccess(bad)
		require.Error(t, err, bad)
	}
	var u profile.Access
	require.Error(t, u.UnmarshalText([]byte("Q")))
}

// TestNormalizedModelRoundTrip: the normalized model (the golden JSON) reads
// back into the same Product, so a platform can store products as JSON.
func TestNormalizedModelRoundTrip(t *testing.T) {
	for _, name := range fixtures {
		want := loadFixtureDir(t, name)
		data := marshal(t, want)
		var got profile.Product
		require.NoError(t, json.Unmarshal(data, &got), name)
		require.Equal(t, string(data), string(marshal(t, &got)), name)
		// Lookups and checks work on the decoded product too.
		s := want.Services[0]
		pr := s.Properties[0]
		_, ok := got.PropertyType(s.ID, pr.Name)
		require.True(t, ok)
		c := profile.NewCatalog(nil)
		require.NoError(t, c.Add(&got))
	}
}

// TestLookups: what codec adapters ask (COD-3).
func TestLookups(t *testing.T) {
	wm := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	typ, ok := wm.ResponseParaType("Meter", "SET_REPORT_PERIOD", "result")
	require.True(t, ok)
	require.Equal(t, profile.TypeInt, typ)
	_, ok = wm.ResponseParaType("Meter", "SET_REPORT_PERIOD", "period")
	require.False(t, ok, "period is a command para, not a response para")
	_, ok = wm.ParaType("Meter", "SET_REPORT_PERIOD", "result")
	require.False(t, ok)
	_, ok = wm.ParaType("Meter", "NOPE", "x")
	require.False(t, ok)
	_, ok = wm.ParaType("Nope", "SET_REPORT_PERIOD", "period")
	require.False(t, ok)
	_, ok = wm.PropertyType("Meter", "nope")
	require.False(t, ok)
	_, ok = wm.PropertyType("Nope", "totalFlow")
	require.False(t, ok)
	m, k := wm.Key()
	require.Equal(t, [2]string{"DozeLabs", "WM100"}, [2]string{m, k})
	s, _ := wm.Service("Meter")
	pr, ok := s.Property("alarmState")
	require.True(t, ok)
	require.Equal(t, profile.AccessRead|profile.AccessEvent, pr.Method)
	require.Equal(t, 16, pr.MaxLength)
}

// TestNumberKinds: every Go number kind a codec may produce is accepted,
// NaN and infinities are not.
func TestNumberKinds(t *testing.T) {
	wm := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	for _, v := range []any{int(50), int8(50), int16(50), int32(50), int64(50), uint(50), uint8(50), uint16(50), uint32(50), uint64(50), float32(50), 50.0, json.Number("50"), json.Number("5e1")} {
		require.NoError(t, wm.CheckReport("Battery", map[string]any{"batteryLevel": v}), "%T", v)
	}
	for _, v := range []any{math.NaN(), math.Inf(1), float32(math.Inf(-1)), json.Number("x"), json.Number("50.5"), float32(50.5), []any{1}, map[string]any{}} {
		require.ErrorIs(t, wm.CheckReport("Battery", map[string]any{"batteryLevel": v}), profile.ErrMismatch, "%T %v", v, v)
	}
	require.NoError(t, wm.CheckReport("Battery", map[string]any{"batteryVoltage": float32(3.5)}))
	lock := loadFixtureDir(t, "SmartLock_DozeLabs_SL2")
	require.NoError(t, lock.CheckReport("Lock", map[string]any{"lastEvent": []byte(` {"a":1}`)}))
	require.NoError(t, lock.CheckReport("Lock", map[string]any{"lastEvent": json.RawMessage(`{}`)}))
	require.Error(t, lock.CheckReport("Lock", map[string]any{"lastEvent": `{"a":`}))
	require.Error(t, lock.CheckReport("Lock", map[string]any{"lastEvent": 5}))
	require.Error(t, lock.CheckReport("Lock", map[string]any{"lockState": true}))
}

// TestGoldenUnchangedByCatalog: adding a product to a catalog does not
// change its normalized model.
func TestGoldenUnchangedByCatalog(t *testing.T) {
	p := loadFixtureDir(t, "SmartLock_DozeLabs_SL2")
	before := marshal(t, p)
	require.NoError(t, profile.NewCatalog(nil).Add(p))
	require.Equal(t, string(before), string(marshal(t, p)))
	want, err := os.ReadFile("testdata/golden/SmartLock_DozeLabs_SL2.json")
	require.NoError(t, err)
	require.Equal(t, string(want), string(before))
}
