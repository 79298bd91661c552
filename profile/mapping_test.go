package profile_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

// omaObjects is the slice of the OMA object definitions the tests check
// mappings against: IPSO Temperature (3303) as its DDF
// (LwM2M Registry, 3303.xml) declares it, and two resources of Device (3).
type omaObjects map[[2]uint16][2]string

func (o omaObjects) LwM2MResource(obj, res uint16) (string, string, bool) {
	r, ok := o[[2]uint16{obj, res}]
	return r[0], r[1], ok
}

var ddf = omaObjects{
	{3303, 5601}: {"Float", "R"}, {3303, 5602}: {"Float", "R"}, {3303, 5603}: {"Float", "R"},
	{3303, 5604}: {"Float", "R"}, {3303, 5605}: {"", "E"}, {3303, 5700}: {"Float", "R"},
	{3303, 5701}: {"String", "R"}, {3303, 5750}: {"String", "RW"},
	{3, 4}: {"", "E"}, {3, 13}: {"Time", "RW"},
}

func temperatureProduct(t testing.TB) *profile.Product {
	t.Helper()
	data, err := os.ReadFile("testdata/mapping/TemperatureSensor_DozeLabs_TS3303.json")
	require.NoError(t, err)
	p, _, err := profile.LoadModelJSON(data, nil)
	require.NoError(t, err)
	return p
}

func TestLoadMapping(t *testing.T) {
	p := temperatureProduct(t)
	data, err := os.ReadFile("testdata/mapping/TemperatureSensor_DozeLabs_TS3303.mapping.json")
	require.NoError(t, err)
	m, warns, err := profile.LoadMapping(data, p, ddf)
	require.NoError(t, err)
	require.Empty(t, warns)

	pm, ok := m.Property("/3303/0/5700")
	require.True(t, ok, "Property(/3303/0/5700)")
	require.Equal(t, profile.PropertyMap{ServiceID: "Temperature", Property: "temperature", Resource: "/3303/0/5700",
		Type: "Float", DataType: profile.TypeDecimal, Observe: true}, pm)
	units, _ := m.Property("/3303/0/5701")
	require.False(t, units.Observe, `"observe": false is kept`)
	_, ok = m.Property("/3303/1/5700")
	require.False(t, ok, "instance 1 is not mapped")
	require.Equal(t, []string{"/3303/0/5700", "/3303/0/5601", "/3303/0/5602"}, m.Observed())

	ex, ok := m.Command("Temperature", "RESET_MIN_MAX")
	require.True(t, ok)
	require.Equal(t, "/3303/0/5605", ex.Execute)
	wr, ok := m.Command("Temperature", "SET_APPLICATION_TYPE")
	require.True(t, ok)
	require.Equal(t, []profile.ParaMap{{Para: "applicationType", Resource: "/3303/0/5750", Type: "String", DataType: profile.TypeString}}, wr.Write)
	_, ok = m.Command("Temperature", "NOPE")
	require.False(t, ok)
}

// badMappings are mapping files that must be refused, each with the code
// and a part of the message of the problem that says why.
var badMappings = []struct {
	name, file string
	code       profile.Code
	msg        string
	line       int
}{
	{"not JSON", `{"properties": [}`, profile.CodeBadJSON, "not valid JSON", 1},
	{"empty", `{}`, profile.CodeMissingField, "maps nothing", 1},
	{"unknown service", `{"properties":[{"serviceId":"Humidity","property":"x","resource":"/3303/0/5700"}]}`,
		profile.CodeMissingField, `no service "Humidity"`, 1},
	{"unknown property", `{"properties":[{"serviceId":"Temperature","property":"humidity","resource":"/3303/0/5700"}]}`,
		profile.CodeMissingField, `no property "humidity"`, 1},
	{"path without slash", `{"properties":[{"serviceId":"Temperature","property":"temperature","resource":"3303/0/5700"}]}`,
		profile.CodeFieldType, "must start with /", 1},
	{"object path", `{"properties":[{"serviceId":"Temperature","property":"temperature","resource":"/3303/0"}]}`,
		profile.CodeFieldType, "has 2 ids", 1},
	{"id out of range", `{"properties":[{"serviceId":"Temperature","property":"temperature","resource":"/3303/0/65535"}]}`,
		profile.CodeFieldType, "0..65534", 1},
	{"leading zero", `{"properties":[{"serviceId":"Temperature","property":"temperature","resource":"/3303/00/5700"}]}`,
		profile.CodeFieldType, "without leading zeros", 1},
	{"Float into string", `{"properties":[{"serviceId":"Temperature","property":"units","resource":"/3303/0/5700"}]}`,
		profile.CodeDataType, "dataType string, which an LwM2M Float resource (/3303/0/5700) cannot hold; a string is held by: Corelnk, Objlnk, Opaque, String", 1},
	{"String into decimal", "{\"properties\":[\n{\"serviceId\":\"Temperature\",\"property\":\"temperature\",\"resource\":\"/3303/0/5701\"}]}",
		profile.CodeDataType, "an LwM2M String resource (/3303/0/5701) cannot hold", 2},
	{"unknown resource without type", `{"properties":[{"serviceId":"Temperature","property":"temperature","resource":"/3400/0/1"}]}`,
		profile.CodeDataType, `not in the object model the platform knows; add "type"`, 1},
	{"bad type", `{"properties":[{"serviceId":"Temperature","property":"temperature","resource":"/3400/0/1","type":"Double"}]}`,
		profile.CodeDataType, `"Double" is not an LwM2M data type`, 1},
	{"type against the model", `{"properties":[{"serviceId":"Temperature","property":"temperature","resource":"/3303/0/5700","type":"Integer"}]}`,
		profile.CodeDataType, "contradicts the object model", 1},
	{"execute resource as property", `{"properties":[{"serviceId":"Temperature","property":"units","resource":"/3303/0/5605"}]}`,
		profile.CodeMethod, `cannot be read: its operations are "E"`, 1},
	{"path twice", `{"properties":[{"serviceId":"Temperature","property":"minMeasured","resource":"/3303/0/5700"},{"serviceId":"Temperature","property":"maxMeasured","resource":"/3303/0/5700"}]}`,
		profile.CodeDuplicate, "/3303/0/5700 is mapped twice", 1},
	{"property twice", `{"properties":[{"serviceId":"Temperature","property":"minMeasured","resource":"/3303/0/5601"},{"serviceId":"Temperature","property":"minMeasured","resource":"/3303/0/5602"}]}`,
		profile.CodeDuplicate, "property minMeasured of service Temperature is mapped twice", 1},
	{"write to a read-only resource", `{"commands":[{"serviceId":"Temperature","command":"SET_APPLICATION_TYPE","write":{"applicationType":"/3303/0/5701"}}]}`,
		profile.CodeMethod, `cannot be written: its operations are "R"`, 1},
	{"para written nowhere", `{"commands":[{"serviceId":"Temperature","command":"SET_APPLICATION_TYPE","write":{"other":"/3303/0/5750"}}]}`,
		profile.CodeMissingField, "para applicationType of command SET_APPLICATION_TYPE is written nowhere", 1},
	{"execute and write", `{"commands":[{"serviceId":"Temperature","command":"RESET_MIN_MAX","execute":"/3303/0/5605","write":{}}]}`,
		profile.CodeMissingField, "exactly one of", 1},
	{"execute a readable resource", `{"commands":[{"serviceId":"Temperature","command":"RESET_MIN_MAX","execute":"/3303/0/5700"}]}`,
		profile.CodeMethod, "cannot be executed", 1},
	{"execute drops a para", `{"commands":[{"serviceId":"Temperature","command":"SET_APPLICATION_TYPE","execute":"/3303/0/5605"}]}`,
		profile.CodeMissingField, "goes nowhere: an execute carries only its arguments", 1},
	{"unknown command", `{"commands":[{"serviceId":"Temperature","command":"REBOOT","execute":"/3/0/4"}]}`,
		profile.CodeMissingField, `no command "REBOOT"`, 1},
	{"write across instances", `{"commands":[{"serviceId":"Temperature","command":"SET_APPLICATION_TYPE","write":{"applicationType":"/3303/1/5750","x":"/3303/0/5750"}}]}`,
		profile.CodeFieldType, "one object instance in one request", 1},
}

func TestLoadMappingProblems(t *testing.T) {
	p := temperatureProduct(t)
	for _, tc := range badMappings {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := profile.LoadMapping([]byte(tc.file), p, ddf)
			require.Nil(t, m)
			var ve *profile.ValidationError
			require.ErrorAs(t, err, &ve, "LoadMapping(%s)", tc.file)
			require.ErrorIs(t, err, profile.ErrInvalid)
			var found []string
			for _, pr := range ve.Problems {
				found = append(found, pr.String())
				if pr.Code == tc.code && strings.Contains(pr.Message, tc.msg) {
					require.Equal(t, "mapping.json", pr.File)
					require.Equal(t, tc.line, pr.Line, "line of %s", pr)
					require.Positive(t, pr.Column)
					return
				}
			}
			t.Fatalf("LoadMapping(%s): no %s problem saying %q; got %q", tc.file, tc.code, tc.msg, found)
		})
	}
}

// TestLoadMappingUnknownObject: a vendor object's resources are mapped with
// their "type", also for a write; a Time resource fills a DateTime.
func TestLoadMappingUnknownObject(t *testing.T) {
	p := temperatureProduct(t)
	m, _, err := profile.LoadMapping([]byte(`{"properties":[
		{"serviceId":"Temperature","property":"temperature","resource":"/26241/0/1","type":"float"},
		{"serviceId":"Temperature","property":"applicationType","resource":"/26241/0/2/0","type":"string"}],
	 "commands":[{"serviceId":"Temperature","command":"SET_APPLICATION_TYPE","write":{"applicationType":{"resource":"/26241/0/2","type":"String"}}}]}`), p, nil)
	require.NoError(t, err)
	pm, ok := m.Property("/26241/0/2/0")
	require.True(t, ok)
	require.Equal(t, "String", pm.Type, "type names are read in any case and kept in OMA spelling")
	cm, _ := m.Command("Temperature", "SET_APPLICATION_TYPE")
	require.Equal(t, "/26241/0/2", cm.Write[0].Resource)
}

func TestLoadMappingLimits(t *testing.T) {
	p := temperatureProduct(t)
	_, _, err := profile.LoadMapping(make([]byte, 1<<20+1), p, ddf)
	require.ErrorIs(t, err, profile.ErrTooLarge)
	_, _, err = profile.LoadMapping([]byte(`{}`), nil, ddf)
	require.ErrorIs(t, err, profile.ErrInvalid)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = profile.LoadMappingContext(ctx, []byte(`{"properties":[]}`), p, ddf)
	require.True(t, errors.Is(err, context.Canceled), "a cancelled load says so: %v", err)
}

// FuzzLoadMapping: any input gives a mapping or a ValidationError whose
// problems are well formed; a mapping's lookups agree with its lists.
func FuzzLoadMapping(f *testing.F) {
	good, err := os.ReadFile("testdata/mapping/TemperatureSensor_DozeLabs_TS3303.mapping.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, tc := range badMappings {
		f.Add([]byte(tc.file))
	}
	p := temperatureProduct(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, err := profile.LoadMapping(data, p, ddf)
		checkLoaded(t, func() *profile.Product {
			if m != nil {
				return p
			}
			return nil
		}(), nil, err)
		if m == nil {
			return
		}
		for _, pm := range m.Properties {
			got, ok := m.Property(pm.Resource)
			if !ok || got != pm {
				t.Fatalf("Property(%s) = %+v, %v; want %+v", pm.Resource, got, ok, pm)
			}
			if _, _, err := profile.ParseResourcePath(pm.Resource); err != nil {
				t.Fatalf("mapped path %q does not parse: %v", pm.Resource, err)
			}
		}
		for _, cm := range m.Commands {
			if _, ok := m.Command(cm.ServiceID, cm.Command); !ok || (cm.Execute == "") == (len(cm.Write) == 0) {
				t.Fatalf("command mapping %+v", cm)
			}
		}
	})
}
