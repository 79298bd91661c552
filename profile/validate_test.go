package profile_test

import (
	"bytes"
	"errors"
	"os"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

const (
	devFile   = "profile/devicetype-capability.json"
	meterFile = "service/Meter/profile/servicetype-capability.json"
)

// brokenCases has one fixture in testdata/broken per PRF-5 rule. at is the
// text the problem must point at (its nth occurrence, 1-based; "" when the
// problem has no place in a file).
var brokenCases = []struct {
	dir  string
	name string // file name given to the loader
	code profile.Code
	file string
	at   string
	nth  int
	more int // further problems of the same code expected
}{
	{"valid", "Wrong_DozeLabs_B1.zip", profile.CodeZipName, "", "", 0, 0},
	{"bad-json", "", profile.CodeBadJSON, meterFile, "]\n    }\n  ]", 1, 0},
	{"not-array-properties", "", profile.CodeNotArray, meterFile, `"properties"`, 1, 0},
	{"not-array-commands", "", profile.CodeNotArray, meterFile, `"commands"`, 1, 0},
	{"hidden-file", "", profile.CodeHiddenFile, "", "", 0, 1}, // .DS_Store and __MACOSX/
	{"service-no-file", "", profile.CodeServiceNoFile, devFile, `"serviceId": "Valve"`, 1, 0},
	{"service-unlisted", "", profile.CodeServiceUnlisted, "service/Extra/profile/servicetype-capability.json", "", 0, 0},
	{"duplicate-service", "", profile.CodeDuplicate, devFile, `"serviceId": "Meter"`, 2, 0},
	{"duplicate-property", "", profile.CodeDuplicate, meterFile, `"propertyName": "level"`, 2, 0},
	{"duplicate-command", "", profile.CodeDuplicate, meterFile, `"commandName": "SET_LEVEL"`, 2, 0},
	{"duplicate-para", "", profile.CodeDuplicate, meterFile, `"paraName": "level"`, 2, 0},
	{"data-type", "", profile.CodeDataType, meterFile, `"dataType": "integer32"`, 1, 0},
	{"method", "", profile.CodeMethod, meterFile, `"method": "RX"`, 1, 0},
	{"enum-not-string", "", profile.CodeEnumNotString, meterFile, `"enumList": [`, 1, 0},
	{"min-max", "", profile.CodeMinMax, meterFile, `"max": 5`, 1, 0},
	{"max-length", "", profile.CodeMaxLength, meterFile, `"maxLength": -1`, 1, 0},
	{"step", "", profile.CodeStep, meterFile, `"step": -1`, 1, 0},
}

// position returns the 1-based line and character column of the nth
// occurrence of at in data.
func position(t *testing.T, data []byte, at string, nth int) (int, int) {
	t.Helper()
	off := -1
	for i := 0; i < nth; i++ {
		j := bytes.Index(data[off+1:], []byte(at))
		require.GreaterOrEqual(t, j, 0, "fixture lacks occurrence %d of %q", i+1, at)
		off += 1 + j
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := 1 + utf8.RuneCount(data[bytes.LastIndexByte(data[:off], '\n')+1:off])
	return line, col
}

// TestBrokenFixtures checks each PRF-5 rule: the loader fails with exactly
// that problem, at the right file, line and column, whether the profile
// comes as a directory or as a zip.
func TestBrokenFixtures(t *testing.T) {
	for _, tc := range brokenCases {
		t.Run(tc.dir, func(t *testing.T) {
			dir := path.Join("testdata", "broken", tc.dir)
			check := func(t *testing.T, p *profile.Product, err error) {
				require.Nil(t, p)
				require.ErrorIs(t, err, profile.ErrInvalid)
				var ve *profile.ValidationError
				require.True(t, errors.As(err, &ve), "want *ValidationError, got %T", err)
				require.Len(t, ve.Problems, 1+tc.more, "want exactly %d problem(s), got:\n%v", 1+tc.more, err)
				for _, p := range ve.Problems {
					require.Equal(t, tc.code, p.Code, "%v", p)
				}
				got := ve.Problems[0]
				require.Equal(t, tc.code, got.Code, "%v", got)
				require.Equal(t, tc.file, got.File, "%v", got)
				require.NotEmpty(t, got.Message)
				if tc.at != "" {
					data, rerr := os.ReadFile(path.Join(dir, tc.file))
					require.NoError(t, rerr)
					line, col := position(t, data, tc.at, tc.nth)
					require.Equal(t, [2]int{line, col}, [2]int{got.Line, got.Column}, "problem %v should point at %q", got, tc.at)
				} else {
					require.Zero(t, got.Line, "%v", got)
				}
			}
			name := tc.name
			if name == "" {
				name = "Broken_DozeLabs_B1.zip"
			}
			t.Run("dir", func(t *testing.T) {
				p, _, err := profile.LoadDir(os.DirFS(dir), name, nil)
				check(t, p, err)
			})
			t.Run("zip", func(t *testing.T) {
				z := zipFS(t, os.DirFS(dir), "")
				p, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), name, nil)
				check(t, p, err)
			})
		})
	}
}

// TestZipNameMessage: the zip-name problem says which part differs (§8.2).
func TestZipNameMessage(t *testing.T) {
	for name, want := range map[string]string{
		"Broken_X_B1.zip": `says manufacturerId "DozeLabs": name it "Broken_DozeLabs_B1.zip"`,
		"Broken_X_B2":     `says manufacturerId "DozeLabs" and model "B1": name it`,
		"profile.zip":     `says deviceType "Broken", manufacturerId "DozeLabs", model "B1": name it`,
	} {
		_, _, err := profile.LoadDir(os.DirFS("testdata/broken/valid"), name, nil)
		require.ErrorIs(t, err, profile.ErrInvalid, name)
		require.Contains(t, err.Error(), want, name)
	}
}

// TestValidFixtureLoads shows the base of the broken fixtures is itself
// clean, so each broken one fails for its own edit only.
func TestValidFixtureLoads(t *testing.T) {
	p, warns, err := profile.LoadDir(os.DirFS("testdata/broken/valid"), "Broken_DozeLabs_B1", nil)
	require.NoError(t, err)
	require.Empty(t, warns)
	require.Equal(t, "B1", p.Model)
}

// TestNotZip: a file that is not a zip fails with not-zip (PRF-5, §8.2).
func TestNotZip(t *testing.T) {
	data, err := os.ReadFile("testdata/broken/not-zip/Broken_DozeLabs_B1.zip")
	require.NoError(t, err)
	_, _, err = profile.LoadZip(bytes.NewReader(data), int64(len(data)), "Broken_DozeLabs_B1.zip", nil)
	var ve *profile.ValidationError
	require.True(t, errors.As(err, &ve), "LoadZip(text file) = %v", err)
	require.Equal(t, profile.CodeNotZip, ve.Problems[0].Code)
	require.Contains(t, ve.Problems[0].Message, "not a zip")
}

// TestAllProblemsAtOnce: a profile with several faults in two files reports
// them all in one error (PRF-5).
func TestAllProblemsAtOnce(t *testing.T) {
	_, _, err := profile.LoadDir(os.DirFS("testdata/broken/many"), "Broken_DozeLabs_B1", nil)
	var ve *profile.ValidationError
	require.True(t, errors.As(err, &ve), "got %v", err)
	var codes []string
	for _, p := range ve.Problems {
		codes = append(codes, string(p.Code))
	}
	require.ElementsMatch(t, []string{"data-type", "method", "duplicate", "service-no-file"}, codes, "%v", err)
	msg := err.Error()
	require.Contains(t, msg, "4 problems")
	require.Contains(t, msg, meterFile+":")
}

// TestWarnings: naming conventions, a wrapping folder and stray files are
// warnings and do not fail loading (PRF-1, PRF-5).
func TestWarnings(t *testing.T) {
	dev := `{"devices":[{"manufacturerId":"DozeLabs","model":"W1","protocolType":"coap","deviceType":"Warn",
 "serviceTypeCapabilities":[{"serviceId":"meter_main","serviceType":"Meter","option":"Master"}]}]}`
	svc := `{"services":[{"serviceType":"Meter","commands":null,"properties":[
 {"propertyName":"Total_Flow","dataType":"decimal","required":true,"min":0,"max":1000,"step":0,"maxLength":null,"method":"RE","unit":null,"enumlist":null,"unit":"m3"}]}]}`
	z := zipFiles(t,
		"Warn_DozeLabs_W1/profile/devicetype-capability.json", dev,
		"Warn_DozeLabs_W1/service/meter_main/profile/servicetype-capability.json", svc,
		"Warn_DozeLabs_W1/README.txt", "notes")
	p, warns, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "Warn_DozeLabs_W1.zip", nil)
	require.NoError(t, err)
	require.Equal(t, "CoAP", p.ProtocolType, "protocolType is normalised")
	var codes []string
	for _, w := range warns {
		codes = append(codes, string(w.Code))
		require.NotEmpty(t, w.Message)
	}
	require.ElementsMatch(t, []string{"wrapping-folder", "naming", "naming", "unknown-entry", "unknown-key", "repeated-key"}, codes, "%v", warns)
	for _, w := range warns {
		switch w.Code {
		case profile.CodeNaming, profile.CodeUnknownKey, profile.CodeRepeatedKey:
			require.Greater(t, w.Line, 0, "%s warnings have a place: %v", w.Code, w)
		}
		if w.Code == profile.CodeUnknownKey {
			require.Contains(t, w.Message, `"enumlist"`)
		}
	}
	s, _ := p.Service("meter_main")
	require.Equal(t, "m3", s.Properties[0].Unit, "the last of repeated keys wins")
}

// TestWrappingFolderNotAlone: a folder with other entries beside it is not
// a wrapping folder, so the profile files are not found.
func TestWrappingFolderNotAlone(t *testing.T) {
	z := zipFiles(t, "x/profile/devicetype-capability.json", "{}", "other.txt", "")
	_, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", nil)
	var ve *profile.ValidationError
	require.True(t, errors.As(err, &ve), "got %v", err)
	require.Equal(t, profile.CodeMissingFile, ve.Problems[0].Code)
	require.Contains(t, ve.Problems[0].Message, `found "x/profile/devicetype-capability.json"`)
}

// TestFieldProblems covers the PRF-2/PRF-3 shape rules beyond the PRF-5
// list: missing keys, wrong JSON types, device and service counts,
// protocol and option values.
func TestFieldProblems(t *testing.T) {
	okSvc := `{"services":[{"serviceType":"Meter","properties":[]}]}`
	cases := []struct {
		name, dev, svc string
		want           profile.Code
		msg            string
	}{
		{"no devices", `{"devices":[]}`, okSvc, profile.CodeDeviceCount, "exactly one"},
		{"two devices", `{"devices":[{},{}]}`, okSvc, profile.CodeDeviceCount, "2 devices"},
		{"missing model", `{"devices":[{"manufacturerId":"M","protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"Meter","serviceType":"Meter","option":"Master"}]}]}`, okSvc, profile.CodeMissingField, `"model"`},
		{"number model", `{"devices":[{"manufacturerId":"M","model":7,"protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"Meter","serviceType":"Meter","option":"Master"}]}]}`, okSvc, profile.CodeFieldType, "must be a string"},
		{"protocol", `{"devices":[{"manufacturerId":"M","model":"X","protocolType":"Zigbee","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"Meter","serviceType":"Meter","option":"Master"}]}]}`, okSvc, profile.CodeProtocol, "CoAP or LWM2M"},
		{"option", `{"devices":[{"manufacturerId":"M","model":"X","protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"Meter","serviceType":"Meter","option":"Sometimes"}]}]}`, okSvc, profile.CodeOption, "Master, Mandatory or Optional"},
		{"two services", `{"devices":[{"manufacturerId":"M","model":"X","protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"Meter","serviceType":"Meter","option":"Master"}]}]}`, `{"services":[{"serviceType":"Meter"},{"serviceType":"Meter"}]}`, profile.CodeServiceCount, "exactly one"},
		{"type mismatch", `{"devices":[{"manufacturerId":"M","model":"X","protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"Meter","serviceType":"Meter","option":"Master"}]}]}`, `{"services":[{"serviceType":"Valve","properties":[]}]}`, profile.CodeServiceType, `serviceType "Meter"`},
		{"null properties", `{"devices":[{"manufacturerId":"M","model":"X","protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"Meter","serviceType":"Meter","option":"Master"}]}]}`, `{"services":[{"serviceType":"Meter","properties":null}]}`, profile.CodeNotArray, "must be an array"},
		{"deep nesting", `{"devices":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, okSvc, profile.CodeBadJSON, "deeper than 64"},
		{"trailing data", `{"devices":[]} {}`, okSvc, profile.CodeBadJSON, "after the top-level value"},
		{"truncated", `{"devices":[`, okSvc, profile.CodeBadJSON, "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z := zipFiles(t, devFile, tc.dev, meterFile, tc.svc)
			_, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", nil)
			var ve *profile.ValidationError
			require.True(t, errors.As(err, &ve), "LoadZip = %v", err)
			var found bool
			for _, p := range ve.Problems {
				if p.Code == tc.want {
					found = true
					require.Contains(t, p.Message, tc.msg)
				}
			}
			require.True(t, found, "want a %s problem, got:\n%v", tc.want, err)
		})
	}
}

// TestZipLayouts: folder entries and Windows-style separators, which real
// zip tools produce, load like the plain layout (PRF-1).
func TestZipLayouts(t *testing.T) {
	dir := "testdata/broken/valid"
	dev, err := os.ReadFile(path.Join(dir, devFile))
	require.NoError(t, err)
	svc, err := os.ReadFile(path.Join(dir, meterFile))
	require.NoError(t, err)
	want, _, err := profile.LoadDir(os.DirFS(dir), "", nil)
	require.NoError(t, err)
	for name, z := range map[string][]byte{
		"folder entries": zipFiles(t, "profile/", "", "service/", "", "service/Meter/", "", "service/Meter/profile/", "",
			devFile, string(dev), meterFile, string(svc)),
		"backslashes": zipFiles(t, strings.ReplaceAll(devFile, "/", `\`), string(dev), strings.ReplaceAll(meterFile, "/", `\`), string(svc)),
	} {
		t.Run(name, func(t *testing.T) {
			got, warns, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "Broken_DozeLabs_B1.zip", nil)
			require.NoError(t, err)
			require.Empty(t, warns)
			require.Equal(t, marshal(t, want), marshal(t, got))
		})
	}
}

// TestSharedServiceType: one servicetype file under service/<serviceType>/
// backs several serviceIds (PRF-6), and each listing must name the type
// the file declares.
func TestSharedServiceType(t *testing.T) {
	dev := `{"devices":[{"manufacturerId":"M","model":"X","protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[
 {"serviceId":"Left","serviceType":"Probe","option":"Master"},
 {"serviceId":"Right","serviceType":"Probe","option":"Optional"},
 {"serviceId":"Top","serviceType":"Sonde","option":"Optional"}]}]}`
	svc := `{"services":[{"serviceType":"Probe","properties":[{"propertyName":"t","dataType":"int","method":"R"}]}]}`
	z := zipFiles(t, devFile, dev, "service/Probe/profile/servicetype-capability.json", svc)
	_, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "T_M_X.ZIP", nil)
	var ve *profile.ValidationError
	require.True(t, errors.As(err, &ve), "got %v", err)
	require.Len(t, ve.Problems, 1, "%v", err)
	require.Equal(t, profile.CodeServiceNoFile, ve.Problems[0].Code, "Top's type Sonde has no file")
	require.Contains(t, ve.Problems[0].Message, "service/Sonde/profile/")

	z = zipFiles(t, devFile, strings.Replace(dev, `"serviceType":"Sonde"`, `"serviceType":"Probe"`, 1),
		"service/Probe/profile/servicetype-capability.json", svc,
		"service/Top/profile/servicetype-capability.json", strings.Replace(svc, "Probe", "Sonde", 1))
	_, _, err = profile.LoadZip(bytes.NewReader(z), int64(len(z)), "T_M_X.zip", nil)
	require.True(t, errors.As(err, &ve), "got %v", err)
	require.Len(t, ve.Problems, 1, "%v", err)
	require.Equal(t, profile.CodeServiceType, ve.Problems[0].Code)
	require.Equal(t, "service/Top/profile/servicetype-capability.json", ve.Problems[0].File)

	z = zipFiles(t, devFile, strings.Replace(dev, `"serviceType":"Sonde"`, `"serviceType":"Probe"`, 1),
		"service/Probe/profile/servicetype-capability.json", svc)
	p, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "T_M_X.ZIP", nil)
	require.NoError(t, err, "upper-case .ZIP is accepted")
	require.Len(t, p.Services, 3)
	for _, s := range p.Services {
		require.Equal(t, "Probe", s.Type)
	}
}

// TestBadNames: names that would break shadow and history JSON keys or
// REST paths ('.', '/', '$') and keys with a slash are problems (our
// choice, see the package doc), each naming the key and the value.
func TestBadNames(t *testing.T) {
	dev := func(manufacturer, model, serviceID string) string {
		return `{"devices":[{"manufacturerId":"` + manufacturer + `","model":"` + model + `","protocolType":"CoAP","deviceType":"T","serviceTypeCapabilities":[{"serviceId":"` + serviceID + `","serviceType":"Meter","option":"Master"}]}]}`
	}
	svc := func(property string) string {
		return `{"services":[{"serviceType":"Meter","properties":[{"propertyName":"` + property + `","dataType":"int","required":false,"method":"R"}]}]}`
	}
	cases := []struct {
		name, dev, svcDir, svc, msg string
	}{
		{"serviceId with a dot", dev("M", "X", "Me.ter"), "Meter", svc("flow"), `serviceId "Me.ter" contains '.', '/' or '$'`},
		{"property with a dollar", dev("M", "X", "Meter"), "Meter", svc("fl$ow"), `"fl$ow" contains '.', '/' or '$'`},
		{"model with a slash", dev("M", "X/Y", "Meter"), "Meter", svc("flow"), `model "X/Y" contains a slash`},
		{"manufacturerId with a backslash", dev(`M\\N`, "X", "Meter"), "Meter", svc("flow"), `manufacturerId "M\\N" contains a slash`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z := zipFiles(t, devFile, tc.dev, "service/"+tc.svcDir+"/profile/servicetype-capability.json", tc.svc)
			_, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", nil)
			var ve *profile.ValidationError
			require.True(t, errors.As(err, &ve), "LoadZip = %v", err)
			var msgs []string
			for _, p := range ve.Problems {
				if p.Code == profile.CodeBadName {
					msgs = append(msgs, p.Message)
					require.Positive(t, p.Line, "a bad name has a position: %+v", p)
				}
			}
			require.Len(t, msgs, 1, "want one %s problem, got:\n%v", profile.CodeBadName, err)
			require.Contains(t, msgs[0], tc.msg)
		})
	}
}
