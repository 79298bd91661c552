package forward

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/push"
)

func TestImports(t *testing.T) { deptest.Check(t) }

func TestParseConditionErrors(t *testing.T) {
	for _, tc := range []struct {
		in     string
		offset int
		msg    string
	}{
		{`model`, 5, "expected an operator"},
		{`model =`, 7, "expected a value"},
		{`colour = "red"`, 0, `unknown field "colour"`},
		{`model = 3`, 8, "model is a string"},
		{`model < "a"`, 6, "only = and != apply"},
		{`data.level < "a"`, 11, "< compares numbers"},
		{`data.level >= true`, 11, ">= compares numbers"},
		{`data. = 1`, 0, "needs a property name"},
		{`data.a.b = 1`, 0, "contains a dot"},
		{`data.1a = 1`, 0, "must start with a letter"},
		{`data.x = 1 OR data.y = 2`, 11, "expected AND"},
		{`data.x = 1 AND`, 14, "expected a field"},
		{`data.x = "abc`, 9, "no closing quote"},
		{`data.x = 1.2.3`, 9, "is not a number"},
		{`data.x = --1`, 9, "is not a number"},
		{`data.x = "\q"`, 9, "not a valid JSON string"},
		{`data.x => 1`, 8, "expected a value"},
		{`data.x = nul`, 9, "expected a value"},
		{"data.x = \"\xff\"", 10, "not valid UTF-8"},
		{strings.Repeat(" ", MaxConditionLength+1), MaxConditionLength, "at most 1024"},
		{strings.Repeat("data.x = 1 AND ", MaxTerms) + "data.x = 1", 240, "more than 16 comparisons"},
		{`data.x = "` + strings.Repeat("a", MaxLiteralLength+1) + `"`, 9, "at most 256"},
	} {
		_, err := ParseCondition(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrCondition) {
			t.Errorf("%.40q: error %v, want a *SyntaxError", tc.in, err)
			continue
		}
		if se.Offset != tc.offset || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("%.40q: at %d %q, want at %d containing %q", tc.in, se.Offset, se.Msg, tc.offset, tc.msg)
		}
	}
}

func TestParseConditionCanonical(t *testing.T) {
	for in, want := range map[string]string{
		``:    ``,
		`   `: ``,
		`serviceId="Battery" and data.batteryLevel<20`:                                                                   `serviceId = "Battery" AND data.batteryLevel < 20`,
		`data.t == -1.5e1 AND data.on != false`:                                                                          `data.t = -15 AND data.on != false`,
		"manufacturerId = \"Acme\"\tAND\nmodel != \"\\u00e9\"":                                                           `manufacturerId = "Acme" AND model != "é"`,
		`deviceType="W" AND deviceId="d" AND gatewayId="g" AND serviceType="S" AND data.a>=1 AND data.b<=2 AND data.c>3`: `deviceType = "W" AND deviceId = "d" AND gatewayId = "g" AND serviceType = "S" AND data.a >= 1 AND data.b <= 2 AND data.c > 3`,
	} {
		c, err := ParseCondition(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if c.String() != want {
			t.Errorf("%q: canonical %q, want %q", in, c.String(), want)
		}
	}
}

func TestConditionMatch(t *testing.T) {
	ev := &Event{DeviceID: "d1", GatewayID: "d1", ManufacturerID: "Acme", Model: "WM1", DeviceType: "WaterMeter"}
	svc := &push.ServiceData{ServiceID: "Battery", ServiceType: "Battery",
		Data: json.RawMessage(`{"batteryLevel":15,"mode":"eco","charging":false,"big":1e400}`)}
	s := &subject{ev: ev, svc: svc, data: decodeData(svc.Data)}
	for cond, want := range map[string]bool{
		``:                       true,
		`serviceId = "Battery"`:  true,
		`serviceId != "Battery"`: false,
		`manufacturerId = "Acme" AND model = "WM1" AND deviceType = "WaterMeter"`: true,
		`model = "WM2"`:                                    false,
		`data.batteryLevel < 20`:                           true,
		`data.batteryLevel <= 15`:                          true,
		`data.batteryLevel < 15`:                           false,
		`data.batteryLevel > 14.5`:                         true,
		`data.batteryLevel >= 16`:                          false,
		`data.batteryLevel = 15.0`:                         true,
		`data.batteryLevel != 15`:                          false,
		`data.mode = "eco"`:                                true,
		`data.mode != "eco"`:                               false,
		`data.charging = false`:                            true,
		`data.charging != true`:                            true,
		`data.missing != 1`:                                false, // a missing property never matches
		`data.mode != 1`:                                   false, // nor one of another type
		`data.mode = 1`:                                    false,
		`data.batteryLevel = "15"`:                         false,
		`data.big > 0`:                                     false, // out of float64 range: no match
		`serviceId = "Battery" AND data.batteryLevel < 10`: false,
	} {
		if got := MustParseCondition(cond).match(s); got != want {
			t.Errorf("%s: %v, want %v", cond, got, want)
		}
	}
	// Data that is not a JSON object matches no property test.
	bad := &subject{ev: ev, svc: svc, data: decodeData([]byte(`[1]`))}
	if MustParseCondition(`data.x = 1`).match(bad) {
		t.Error("a property matched in data that is not an object")
	}
}

// FuzzParseCondition: the parser never panics, errors carry an offset
// within the input, and an accepted condition's canonical form parses to
// itself.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{``, `serviceId = "Battery" AND data.batteryLevel < 20`, `data.x != true`,
		`model = "\u00e9\"" and data.y >= -1e-3`, `data.x = 1 AND`, `data.x = "abc`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCondition(in)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(in) && se.Offset != MaxConditionLength {
				t.Fatalf("%q: error %v without a sound offset", in, err)
			}
			return
		}
		c2, err := ParseCondition(c.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c.String(), in, err)
		}
		if c2.String() != c.String() {
			t.Fatalf("canonical form changed: %q → %q", c.String(), c2.String())
		}
		ev := &Event{}
		svc := &push.ServiceData{Data: json.RawMessage(`{"x":1,"y":"a","batteryLevel":3}`)}
		c.match(&subject{ev: ev, svc: svc, data: decodeData(svc.Data)})
	})
}
