package main

import (
	"testing"

	"github.com/doze-io/doze/codec"

	"github.com/stretchr/testify/require"
)

// mqttReports are property reports as 4G meters send them: nested values,
// escapes, non-ASCII text, large and fractional numbers, null.
var mqttReports = []string{
	`{"services":[{"service_id":"Meter","properties":{"currentReading":1234.5,"signalStrength":-87,"unit":"m³"}},` +
		`{"service_id":"Battery","properties":{"batteryLevel":97}}]}`,
	`{"services":[{"service_id":"Meter","properties":{"z":{"nested":[1,2.5,"<a&b>",true,null]},"big":9007199254740993,` +
		`"tiny":1e-300,"esc":"tab\there \"quoted\" \u00e9\ud83d\ude00","none":null,"a":[]}}]}`,
}

// TestMQTTServicesShadow: an MQTT property report's shadow values, taken
// as decoded without a second JSON round trip, are what the round trip
// (servicesOf, which encodes and decodes them) gives, and its JSON bytes
// for history and pushes are the same.
func TestMQTTServicesShadow(t *testing.T) {
	for _, raw := range mqttReports {
		r, _, err := parseProperties([]byte(raw))
		require.NoError(t, err)
		got, want := servicesOfJSON(r), servicesOf(r)
		require.Len(t, got, len(want))
		for i := range want {
			require.NoError(t, got[i].err)
			require.Equal(t, want[i].id, got[i].id)
			require.Equal(t, string(want[i].data), string(got[i].data), "JSON of service %s", want[i].id)
			require.Equal(t, want[i].shadow, got[i].shadow, "shadow of service %s", want[i].id)
		}
	}
}

// BenchmarkMQTTReportDecode is the decode and encode stages of an MQTT
// property report, with the shadow's JSON round trip (servicesOf) and
// without (servicesOfJSON), in one run.
func BenchmarkMQTTReportDecode(b *testing.B) {
	payload := []byte(mqttReports[0])
	for _, c := range []struct {
		name     string
		services func(*codec.Report) []serviceReport
	}{{"roundtrip", servicesOf}, {"decoded", servicesOfJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, _, err := parseProperties(payload)
				if err != nil {
					b.Fatal(err)
				}
				if svcs := c.services(r); len(svcs) != 2 {
					b.Fatalf("services = %+v", svcs)
				}
			}
		})
	}
}
