package profile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/profile"
)

// fuzzOptions keeps fuzzed archives small.
var fuzzOptions = &profile.Options{MaxEntries: 64, MaxEntrySize: 64 << 10, MaxTotalSize: 256 << 10}

// checkLoaded holds for every loader result: a product or an error, never
// both; every problem has a code and a message; a product's services can
// be queried and checked without panicking.
func checkLoaded(t *testing.T, p *profile.Product, warns []profile.Problem, err error) {
	t.Helper()
	if (p == nil) == (err == nil) {
		t.Fatalf("got product %v and error %v", p != nil, err)
	}
	var ve *profile.ValidationError
	if errors.As(err, &ve) {
		if len(ve.Problems) == 0 {
			t.Fatal("ValidationError without problems")
		}
		for _, pr := range ve.Problems {
			if pr.Code == "" || pr.Message == "" || pr.Line < 0 || pr.Column < 0 || (pr.Line > 0) != (pr.Column > 0) {
				t.Fatalf("malformed problem %+v", pr)
			}
		}
	} else if err != nil && !errors.Is(err, profile.ErrTooLarge) {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	for _, w := range warns {
		if w.Code == "" || w.Message == "" {
			t.Fatalf("malformed warning %+v", w)
		}
	}
	if p == nil {
		return
	}
	if _, err := json.Marshal(p); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	for i := range p.Services {
		s := &p.Services[i]
		if got, ok := p.Service(s.ID); !ok || got.ID != s.ID {
			t.Fatalf("Service(%q) not found", s.ID)
		}
		for _, pr := range s.Properties {
			_ = p.CheckReport(s.ID, map[string]any{pr.Name: 1.5, "x": "y"})
			_ = p.CheckFullReport(s.ID, map[string]any{pr.Name: "20170214T164001Z"})
		}
		for _, c := range s.Commands {
			_ = p.CheckCommand(s.ID, c.Name, map[string]any{"a": nil})
		}
	}
}

// FuzzLoadZip feeds arbitrary bytes to LoadZip, seeded with the fixture
// zips and a zip of every broken fixture.
func FuzzLoadZip(f *testing.F) {
	for _, name := range fixtures {
		data, err := os.ReadFile(filepath.Join("testdata", "zip", name+".zip"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range brokenCases {
		f.Add(zipFS(f, os.DirFS(filepath.Join("testdata", "broken", tc.dir)), ""))
	}
	f.Add([]byte("PK\x05\x06"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, warns, err := profile.LoadZip(bytes.NewReader(data), int64(len(data)), "Broken_DozeLabs_B1.zip", fuzzOptions)
		checkLoaded(t, p, warns, err)
	})
}

// FuzzLoadModelJSON feeds arbitrary bytes to LoadModelJSON, seeded with the
// model fixtures and every JSON file of the fixtures.
func FuzzLoadModelJSON(f *testing.F) {
	for _, dir := range []string{"testdata/model", "testdata/profiles", "testdata/broken"} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && filepath.Ext(p) == ".json" {
				data, _ := os.ReadFile(p)
				f.Add(data)
			}
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, warns, err := profile.LoadModelJSON(data, fuzzOptions)
		checkLoaded(t, p, warns, err)
		// The same bytes as a profile's device or service file must not
		// panic the Profile loader either.
		z := zipFiles(t, "profile/devicetype-capability.json", string(data), "service/Meter/profile/servicetype-capability.json", string(data))
		p, warns, err = profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", fuzzOptions)
		checkLoaded(t, p, warns, err)
	})
}

// FuzzCheckReport checks decoded JSON reports against the water meter:
// never a panic, and a nil error only when every name is a property.
func FuzzCheckReport(f *testing.F) {
	f.Add("Battery", `{"batteryLevel":60}`)
	f.Add("Meter", `{"meterTime":"20170214T164001Z","alarmState":"LEAK","totalFlow":1e308}`)
	f.Add("Connectivity", fiveProps)
	f.Add("Meter", `{"totalFlow":-0,"pulseCount":1e400}`)
	wm := loadFixtureDir(f, "WaterMeter_DozeLabs_WM100")
	f.Fuzz(func(t *testing.T, service, report string) {
		var values map[string]any
		d := json.NewDecoder(bytes.NewReader([]byte(report)))
		if d.Decode(&values) != nil {
			return
		}
		err := wm.CheckReport(service, values)
		if err == nil {
			s, ok := wm.Service(service)
			if !ok {
				t.Fatalf("nil error for unknown service %q", service)
			}
			for name := range values {
				if _, ok := s.Property(name); !ok {
					t.Fatalf("nil error for unknown property %q", name)
				}
			}
		}
	})
}
