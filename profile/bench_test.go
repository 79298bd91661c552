package profile_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/doze-io/doze/profile"
)

// BenchmarkCheckReport checks a fitting 5-property Connectivity report of
// the water meter, as encoding/json decodes it (the figure in doc.go).
func BenchmarkCheckReport(b *testing.B) {
	wm := loadFixtureDir(b, "WaterMeter_DozeLabs_WM100")
	values := decodeMap(b, fiveProps)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if err := wm.CheckReport("Connectivity", values); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckReportCodecValues is the same report with Go integers, as
// a codec builds it.
func BenchmarkCheckReportCodecValues(b *testing.B) {
	wm := loadFixtureDir(b, "WaterMeter_DozeLabs_WM100")
	values := map[string]any{"signalStrength": int32(-87), "linkQuality": int8(12), "cellId": uint32(21457), "pci": uint16(301), "ecl": uint8(0)}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if err := wm.CheckReport("Connectivity", values); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckReportBaselineNaive is a baseline: what a first attempt
// would do — index the service's properties into a fresh map per report
// and check each value with a JSON round trip into float64.
func BenchmarkCheckReportBaselineNaive(b *testing.B) {
	wm := loadFixtureDir(b, "WaterMeter_DozeLabs_WM100")
	values := decodeMap(b, fiveProps)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if err := naiveCheck(wm, "Connectivity", values); err != nil {
			b.Fatal(err)
		}
	}
}

func naiveCheck(p *profile.Product, serviceID string, values map[string]any) error {
	s, ok := p.Service(serviceID)
	if !ok {
		return fmt.Errorf("no service %s", serviceID)
	}
	byName := map[string]profile.Property{}
	for _, pr := range s.Properties {
		byName[pr.Name] = pr
	}
	raw, err := json.Marshal(values)
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return err
	}
	for name, r := range fields {
		pr, ok := byName[name]
		if !ok {
			return fmt.Errorf("unknown property %s", name)
		}
		var f float64
		if err := json.Unmarshal(r, &f); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if pr.Min != nil && f < *pr.Min || pr.Max != nil && f > *pr.Max {
			return fmt.Errorf("%s out of range", name)
		}
	}
	return nil
}

// BenchmarkCheckReportMismatch measures the failing path, which allocates
// to describe each mismatch.
func BenchmarkCheckReportMismatch(b *testing.B) {
	wm := loadFixtureDir(b, "WaterMeter_DozeLabs_WM100")
	values := decodeMap(b, `{"signalStrength":-170,"linkQuality":12,"cellId":21457,"pci":301,"ecl":0}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := wm.CheckReport("Connectivity", values); err == nil {
			b.Fatal("want a mismatch")
		}
	}
}

// BenchmarkLoadZip loads the water meter's Profile zip.
func BenchmarkLoadZip(b *testing.B) {
	z := fixtureZip(b, "WaterMeter_DozeLabs_WM100")
	b.ReportAllocs()
	b.SetBytes(int64(len(z)))
	for b.Loop() {
		if _, _, err := profile.LoadZip(bytesReader(z), int64(len(z)), "", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU adds a cpu-ns/op metric: process CPU time per operation, which
// a busy shared machine inflates far less than wall time (ns/op). Call as
// defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if start == 0 || b.N == 0 {
			return
		}
		b.ReportMetric(float64(time.Duration(cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
