package profile_test

import (
	"strings"
	"testing"

	"github.com/doze-io/doze/profile"
)

var dateTimeSeeds = []string{
	"20170214T164001Z", "20000229T000000Z", "19000229T000000Z", "00000101T000000Z",
	"99991231T235959Z", "20170230T164001Z", "20171314T164001Z", "20170214T246001Z",
	"20170214T166001Z", "20170214T164060Z", "20170214T164001", "2017-02-14T16:40:01Z", "",
}

// FuzzDateTime: ParseDateTime and CheckReport (which checks DateTime
// values without allocating, by its own code) agree on every string, and a
// parsed value formats back to the same text (PRF-4).
func FuzzDateTime(f *testing.F) {
	for _, s := range dateTimeSeeds {
		f.Add(s)
	}
	wm := loadFixtureDir(f, "WaterMeter_DozeLabs_WM100")
	f.Fuzz(func(t *testing.T, s string) {
		tm, perr := profile.ParseDateTime(s)
		cerr := wm.CheckReport("Meter", map[string]any{"meterTime": s})
		if (perr == nil) != (cerr == nil) {
			t.Fatalf("%q: ParseDateTime says %v, CheckReport says %v", s, perr, cerr)
		}
		if perr != nil {
			if !strings.Contains(perr.Error(), "yyyyMMdd'T'HHmmss'Z'") {
				t.Fatalf("ParseDateTime(%q) error does not say the layout: %v", s, perr)
			}
			return
		}
		if got := profile.FormatDateTime(tm); got != s {
			t.Fatalf("FormatDateTime(ParseDateTime(%q)) = %q", s, got)
		}
	})
}

// FuzzParseAccess: any method string parses to letters R, W, E only, and
// the canonical spelling parses back to the same Access (PRF-4).
func FuzzParseAccess(f *testing.F) {
	for _, s := range []string{"R", "RE", "RW", "RWE", "W", "E", "WE", "ER", "ewr", "", "X", "RR", "R W"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := profile.ParseAccess(s)
		if err != nil {
			return
		}
		if strings.Trim(strings.ToUpper(s), "RWE") != "" {
			t.Fatalf("ParseAccess(%q) accepted letters other than R, W, E", s)
		}
		b, err := profile.ParseAccess(a.String())
		if err != nil || b != a {
			t.Fatalf("ParseAccess(%q) = %v; its String %q parses to %v, %v", s, a, a.String(), b, err)
		}
	})
}
