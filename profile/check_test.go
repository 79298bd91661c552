package profile_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

func decodeMap(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m))
	return m
}

// TestCheckReport covers PRF-8 on the fixtures, with values as
// encoding/json decodes them (JSON text) and as codecs build them (Go
// values).
func TestCheckReport(t *testing.T) {
	wm := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	lock := loadFixtureDir(t, "SmartLock_DozeLabs_SL2")
	ms := loadFixtureDir(t, "MultiSensor_DozeLabs_MS3")
	cases := []struct {
		name    string
		p       *profile.Product
		service string
		json    string         // decoded with encoding/json when set
		values  map[string]any // else used as is
		full    bool
		want    []profile.Rule // nil: fits
		wantFor []string       // names of the mismatches, same order
	}{
		{name: "battery fits", p: wm, service: "Battery", json: `{"batteryLevel":60,"batteryVoltage":3.61}`},
		{name: "go ints", p: wm, service: "Battery", values: map[string]any{"batteryLevel": uint8(60)}},
		{name: "int64", p: wm, service: "Connectivity", values: map[string]any{"signalStrength": int64(-90), "cellId": int32(1234), "pci": uint16(7)}},
		{name: "json.Number", p: wm, service: "Battery", values: map[string]any{"batteryLevel": json.Number("60")}},
		{name: "above max", p: wm, service: "Battery", json: `{"batteryLevel":120}`, want: []profile.Rule{profile.RuleMax}, wantFor: []string{"batteryLevel"}},
		{name: "below min", p: wm, service: "Connectivity", values: map[string]any{"signalStrength": -150}, want: []profile.Rule{profile.RuleMin}, wantFor: []string{"signalStrength"}},
		{name: "not integer", p: wm, service: "Battery", json: `{"batteryLevel":60.5}`, want: []profile.Rule{profile.RuleType}, wantFor: []string{"batteryLevel"}},
		{name: "string for int", p: wm, service: "Battery", json: `{"batteryLevel":"60"}`, want: []profile.Rule{profile.RuleType}, wantFor: []string{"batteryLevel"}},
		{name: "null", p: wm, service: "Battery", json: `{"batteryLevel":null}`, want: []profile.Rule{profile.RuleType}, wantFor: []string{"batteryLevel"}},
		{name: "bool as int", p: lock, service: "Lock", values: map[string]any{"doorOpen": true}},
		{name: "unknown name", p: wm, service: "Battery", json: `{"batteryLvl":60}`, want: []profile.Rule{profile.RuleName}, wantFor: []string{"batteryLvl"}},
		{name: "unknown service", p: wm, service: "Valve", json: `{"x":1}`, want: []profile.Rule{profile.RuleService}, wantFor: []string{"Valve"}},
		{name: "step grid", p: wm, service: "Meter", json: `{"reportPeriod":90}`, want: []profile.Rule{profile.RuleStep}, wantFor: []string{"reportPeriod"}},
		{name: "step fits", p: wm, service: "Meter", json: `{"reportPeriod":3600,"totalFlow":12.345}`},
		{name: "decimal step", p: wm, service: "Meter", json: `{"totalFlow":12.3456}`, want: []profile.Rule{profile.RuleStep}, wantFor: []string{"totalFlow"}},
		{name: "max 0 below min is unbounded", p: wm, service: "Meter", values: map[string]any{"pulseCount": 1 << 40}},
		{name: "min still applies", p: wm, service: "Meter", values: map[string]any{"pulseCount": 0}, want: []profile.Rule{profile.RuleMin}, wantFor: []string{"pulseCount"}},
		{name: "enum", p: wm, service: "Meter", json: `{"alarmState":"LEAK"}`},
		{name: "enum miss", p: wm, service: "Meter", json: `{"alarmState":"FIRE"}`, want: []profile.Rule{profile.RuleEnum}, wantFor: []string{"alarmState"}},
		{name: "maxLength", p: lock, service: "Lock", json: `{"lockState":"UNLOCKED_BY_SOMEONE"}`, want: []profile.Rule{profile.RuleLength}, wantFor: []string{"lockState"}},
		{name: "datetime", p: wm, service: "Meter", json: `{"meterTime":"20170214T164001Z"}`},
		{name: "datetime bad", p: wm, service: "Meter", json: `{"meterTime":"2017-02-14T16:40:01Z"}`, want: []profile.Rule{profile.RuleType}, wantFor: []string{"meterTime"}},
		{name: "datetime month 13", p: wm, service: "Meter", json: `{"meterTime":"20171314T164001Z"}`, want: []profile.Rule{profile.RuleType}, wantFor: []string{"meterTime"}},
		{name: "datetime feb 30", p: wm, service: "Meter", json: `{"meterTime":"20170230T164001Z"}`, want: []profile.Rule{profile.RuleType}, wantFor: []string{"meterTime"}},
		{name: "jsonObject", p: lock, service: "Lock", json: `{"lastEvent":{"who":"alice","how":"pin"},"lockState":"LOCKED"}`},
		{name: "jsonObject text", p: lock, service: "Lock", values: map[string]any{"lastEvent": `{"who":"bob"}`}},
		{name: "jsonObject array", p: lock, service: "Lock", json: `{"lastEvent":[1,2]}`, want: []profile.Rule{profile.RuleType}, wantFor: []string{"lastEvent"}},
		{name: "serviceId not serviceType", p: ms, service: "Temperature", json: `{"temperature":20.5}`, want: []profile.Rule{profile.RuleService}, wantFor: []string{"Temperature"}},
		{name: "shared serviceType", p: ms, service: "OutdoorTemperature", json: `{"temperature":-12.5}`},
		{name: "full report lacks required", p: wm, service: "Meter", json: `{"flowRate":1.5}`, full: true, want: []profile.Rule{profile.RuleRequired}, wantFor: []string{"totalFlow"}},
		{name: "partial report", p: wm, service: "Meter", json: `{"flowRate":1.5}`},
		{name: "every problem", p: wm, service: "Battery", json: `{"batteryLevel":101,"batteryVoltage":"3.6","extra":1}`,
			want: []profile.Rule{profile.RuleMax, profile.RuleType, profile.RuleName}, wantFor: []string{"batteryLevel", "batteryVoltage", "extra"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			values := tc.values
			if tc.json != "" {
				values = decodeMap(t, tc.json)
			}
			var err error
			if tc.full {
				err = tc.p.CheckFullReport(tc.service, values)
			} else {
				err = tc.p.CheckReport(tc.service, values)
			}
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, profile.ErrMismatch)
			var ce *profile.CheckError
			require.True(t, errors.As(err, &ce))
			var rules []profile.Rule
			var names []string
			for _, m := range ce.Mismatches {
				rules = append(rules, m.Rule)
				names = append(names, m.Name)
				require.Contains(t, m.Message, m.Name, "a mismatch names its property")
			}
			require.Equal(t, tc.want, rules, "%v", err)
			require.Equal(t, tc.wantFor, names, "%v", err)
		})
	}
}

// TestCheckReportMessage shows the sentence a person reads.
func TestCheckReportMessage(t *testing.T) {
	wm := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	err := wm.CheckReport("Battery", map[string]any{"batteryLevel": 120.0})
	require.EqualError(t, err, `profile: report of service Battery: property "batteryLevel": 120 is above max 100`)
}

// TestCheckCommand covers PRF-9 and §7.1.
func TestCheckCommand(t *testing.T) {
	wm := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	lock := loadFixtureDir(t, "SmartLock_DozeLabs_SL2")
	cases := []struct {
		name            string
		p               *profile.Product
		service, method string
		paras           string // JSON; "" means nil
		want            []profile.Rule
	}{
		{"fits", wm, "Meter", "SET_REPORT_PERIOD", `{"period":3600}`, nil},
		{"nil paras", wm, "Meter", "SET_REPORT_PERIOD", "", []profile.Rule{profile.RuleParas, profile.RuleRequired}},
		{"empty paras", wm, "Meter", "SET_REPORT_PERIOD", `{}`, []profile.Rule{profile.RuleParas, profile.RuleRequired}},
		{"step", wm, "Meter", "SET_REPORT_PERIOD", `{"period":61}`, []profile.Rule{profile.RuleStep}},
		{"below min", wm, "Meter", "SET_REPORT_PERIOD", `{"period":0}`, []profile.Rule{profile.RuleMin}},
		{"unknown para", wm, "Meter", "SET_REPORT_PERIOD", `{"period":60,"mode":1}`, []profile.Rule{profile.RuleName}},
		{"unknown command", wm, "Meter", "REBOOT", `{"x":1}`, []profile.Rule{profile.RuleCommand}},
		{"unknown service", wm, "Valve", "OPEN", `{"x":1}`, []profile.Rule{profile.RuleService}},
		{"enum para", lock, "Lock", "UNLOCK", `{"reason":"REMOTE","holdSeconds":5}`, nil},
		{"enum para miss", lock, "Lock", "UNLOCK", `{"reason":"BECAUSE"}`, []profile.Rule{profile.RuleEnum}},
		{"missing required", lock, "Lock", "UNLOCK", `{"holdSeconds":5}`, []profile.Rule{profile.RuleRequired}},
		{"jsonObject para", lock, "Lock", "SET_USERS", `{"users":{"alice":"1234"}}`, nil},
		{"jsonObject para wrong", lock, "Lock", "SET_USERS", `{"users":"alice"}`, []profile.Rule{profile.RuleType}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var paras map[string]any
			if tc.paras != "" {
				paras = decodeMap(t, tc.paras)
			}
			err := tc.p.CheckCommand(tc.service, tc.method, paras)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			var ce *profile.CheckError
			require.True(t, errors.As(err, &ce), "CheckCommand = %v", err)
			var rules []profile.Rule
			for _, m := range ce.Mismatches {
				rules = append(rules, m.Rule)
			}
			require.ElementsMatch(t, tc.want, rules, "%v", err)
			require.Equal(t, tc.method, ce.Command)
		})
	}
}

// TestCheckCommandNoParas: a command that defines no paras still needs a
// non-empty paras object (§7.1), whose names are then not checked.
func TestCheckCommandNoParas(t *testing.T) {
	p := &profile.Product{ManufacturerID: "M", Model: "X", Services: []profile.Service{{
		ID: "Valve", Type: "Valve", Commands: []profile.Command{{Name: "OPEN"}},
	}}}
	require.NoError(t, p.CheckCommand("Valve", "OPEN", map[string]any{"value": 1}))
	err := p.CheckCommand("Valve", "OPEN", map[string]any{})
	require.ErrorIs(t, err, profile.ErrMismatch)
	require.Contains(t, err.Error(), "non-empty JSON object")
}

// TestCheckReportAllocs asserts the claim of the package doc: a fitting
// 5-property report is checked without allocating.
func TestCheckReportAllocs(t *testing.T) {
	wm := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	values := decodeMap(t, fiveProps)
	require.NoError(t, wm.CheckReport("Connectivity", values))
	allocs := testing.AllocsPerRun(200, func() {
		if err := wm.CheckReport("Connectivity", values); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, allocs, 0.0, "CheckReport allocated")
}

const fiveProps = `{"signalStrength":-87,"linkQuality":12,"cellId":21457,"pci":301,"ecl":0}`

// TestDateTime covers the layout yyyyMMdd'T'HHmmss'Z' (PRF-4).
func TestDateTime(t *testing.T) {
	tm, err := profile.ParseDateTime("20170214T164001Z")
	require.NoError(t, err)
	require.Equal(t, "2017-02-14T16:40:01Z", tm.Format("2006-01-02T15:04:05Z07:00"))
	require.Equal(t, "20170214T164001Z", profile.FormatDateTime(tm))
	for _, bad := range []string{"", "20170214T164001", "20170214 164001Z", "2017021AT164001Z", "20170230T164001Z", "20170214T246001Z"} {
		_, err := profile.ParseDateTime(bad)
		require.Error(t, err, "ParseDateTime(%q)", bad)
		require.Contains(t, err.Error(), "yyyyMMdd'T'HHmmss'Z'")
	}
}

// TestCheckBoundsEdges covers the edges of PRF-4/PRF-8 bounds on a
// hand-built product: maxLength and a string's min/max length are
// inclusive and count characters, not bytes; max 0 below min means no
// upper bound; 0/0 leaves a string unbounded but bounds a number to 0.
func TestCheckBoundsEdges(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	p := &profile.Product{ManufacturerID: "M", Model: "X", Services: []profile.Service{{ID: "S", Type: "S", Properties: []profile.Property{
		{Para: profile.Para{Name: "code", DataType: profile.TypeString, Min: f(4), Max: f(8), MaxLength: 6}},
		{Para: profile.Para{Name: "tag", DataType: profile.TypeString, Min: f(3), Max: f(0)}},
		{Para: profile.Para{Name: "note", DataType: profile.TypeString, Min: f(0), Max: f(0)}},
		{Para: profile.Para{Name: "zero", DataType: profile.TypeDecimal, Min: f(0), Max: f(0)}},
		{Para: profile.Para{Name: "level", DataType: profile.TypeInt, Min: f(-10), Max: f(10), Step: 5}},
	}}}}
	cases := []struct {
		name string
		v    any
		want profile.Rule // "" fits
	}{
		{"code", "abc", profile.RuleLength},
		{"code", "abcd", ""},
		{"code", "éééééé", ""}, // 6 characters, 12 bytes
		{"code", "abcdefg", profile.RuleLength},
		{"tag", "ab", profile.RuleLength},
		{"tag", strings.Repeat("t", 300), ""},
		{"note", "", ""},
		{"note", strings.Repeat("n", 300), ""},
		{"zero", 0.0, ""},
		{"zero", 0.5, profile.RuleMax},
		{"zero", -0.5, profile.RuleMin},
		{"level", -10, ""},
		{"level", 10, ""},
		{"level", -5, ""},
		{"level", 11, profile.RuleMax},
		{"level", -11, profile.RuleMin},
		{"level", 3, profile.RuleStep},
	}
	for _, c := range cases {
		err := p.CheckReport("S", map[string]any{c.name: c.v})
		if c.want == "" {
			require.NoError(t, err, "%s = %v", c.name, c.v)
			continue
		}
		var ce *profile.CheckError
		require.True(t, errors.As(err, &ce), "%s = %v: CheckReport = %v, want a %s mismatch", c.name, c.v, err, c.want)
		require.Len(t, ce.Mismatches, 1)
		require.Equal(t, c.want, ce.Mismatches[0].Rule, "%s = %v: %v", c.name, c.v, err)
	}
}
