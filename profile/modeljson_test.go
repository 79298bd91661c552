package profile_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

func loadModel(t testing.TB, name string) (*profile.Product, []profile.Problem) {
	t.Helper()
	data, err := os.ReadFile("testdata/model/" + name)
	require.NoError(t, err)
	p, warns, err := profile.LoadModelJSON(data, nil)
	require.NoError(t, err, "LoadModelJSON(%s)", name)
	return p, warns
}

// TestModelJSONSameTypes: the water meter written in the newer single-file
// model loads to the same services as its Profile zip (PRF-10).
func TestModelJSONSameTypes(t *testing.T) {
	fromModel, warns := loadModel(t, "WaterMeter_DozeLabs_WM100.json")
	require.Empty(t, warns)
	fromDir := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	fromDir.OM = nil // the newer model has no omCapability
	require.Equal(t, string(marshal(t, fromDir)), string(marshal(t, fromModel)))
}

// TestModelJSONNewTypes: long, enum, boolean and string list (PRF-10), and
// the fallbacks for a file without manufacturer_id or model.
func TestModelJSONNewTypes(t *testing.T) {
	p, _ := loadModel(t, "Tracker_DozeLabs_TR1.json")
	golden(t, "Tracker_DozeLabs_TR1.json", marshal(t, p))
	require.Equal(t, "DozeLabs", p.ManufacturerID, "manufacturer_name stands in for manufacturer_id")
	require.Equal(t, "tracker-tr1", p.Model, "product_id stands in for model")
	require.Equal(t, "Tracker", p.DeviceType)
	s, ok := p.Service("Position")
	require.True(t, ok)
	require.Equal(t, "Position", s.Type, "service_type defaults to service_id")
	for name, want := range map[string]profile.DataType{
		"odometer": profile.TypeLong, "moving": profile.TypeBoolean,
		"fixQuality": profile.TypeEnum, "geofences": profile.TypeStringList,
	} {
		typ, ok := p.PropertyType("Position", name)
		require.True(t, ok, name)
		require.Equal(t, want, typ, name)
	}
	fq, _ := s.Property("fixQuality")
	require.Equal(t, `"NONE"`, fq.Default)

	fits := map[string]any{"odometer": int64(1) << 40, "moving": true, "fixQuality": "GPS", "geofences": []any{"home", "site"}}
	require.NoError(t, p.CheckFullReport("Position", fits))
	for name, v := range map[string]any{
		"odometer": 1.5, "moving": 1, "fixQuality": "GLONASS", "geofences": []any{"home", 3},
	} {
		err := p.CheckReport("Position", map[string]any{name: v})
		require.ErrorIs(t, err, profile.ErrMismatch, "%s = %v", name, v)
		require.Contains(t, err.Error(), name)
	}
	require.ErrorIs(t, p.CheckReport("Position", map[string]any{"geofences": []string{"moon"}}), profile.ErrMismatch)
	require.NoError(t, p.CheckCommand("Position", "LOCATE", map[string]any{"accuracy": "HIGH"}))
}

// TestModelJSONProblems: the PRF-5 rules apply to the newer model too,
// with places in model.json.
func TestModelJSONProblems(t *testing.T) {
	src := `{"manufacturer_id":"M","model":"X","device_type":"T","protocol_type":"CoAP",
"service_capabilities":[
 {"service_id":"Meter","properties":[
  {"property_name":"level","data_type":"int32","method":"R"},
  {"property_name":"level","data_type":"int","method":"RZ","step":-1}
 ],"commands":{}}]}`
	_, _, err := profile.LoadModelJSON([]byte(src), nil)
	var ve *profile.ValidationError
	require.True(t, errors.As(err, &ve), "got %v", err)
	var got []string
	for _, p := range ve.Problems {
		require.Equal(t, "model.json", p.File)
		got = append(got, string(p.Code))
	}
	require.ElementsMatch(t, []string{"data-type", "method", "step", "duplicate", "not-array"}, got, "%v", err)
	for _, p := range ve.Problems {
		if p.Code == profile.CodeDataType {
			require.Equal(t, [2]int{4, 28}, [2]int{p.Line, p.Column}, "%v", p)
		}
	}

	_, _, err = profile.LoadModelJSON([]byte(`{"model": }`), nil)
	require.ErrorIs(t, err, profile.ErrInvalid)
	require.Contains(t, err.Error(), "model.json:1:11")

	big := []byte(`{"x":"` + strings.Repeat("a", 2048) + `"}`)
	_, _, err = profile.LoadModelJSON(big, &profile.Options{MaxEntrySize: 1024})
	require.ErrorIs(t, err, profile.ErrTooLarge)
}

// TestModelJSONEnumNeedsList: an enum property without enum_list has no
// allowed value, which is a problem with a place.
func TestModelJSONEnumNeedsList(t *testing.T) {
	src := `{"manufacturer_id":"M","model":"X","device_type":"T","protocol_type":"CoAP",
"service_capabilities":[{"service_id":"Meter","properties":[
 {"property_name":"mode","data_type":"enum","method":"RW"}]}]}`
	_, _, err := profile.LoadModelJSON([]byte(src), nil)
	var ve *profile.ValidationError
	require.True(t, errors.As(err, &ve), "got %v", err)
	require.Len(t, ve.Problems, 1)
	require.Equal(t, profile.CodeMissingField, ve.Problems[0].Code)
	require.Contains(t, ve.Problems[0].Message, `property "mode" has data_type enum but no enum_list`)
	require.Equal(t, 3, ve.Problems[0].Line)
}
