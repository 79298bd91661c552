package mqtt

import (
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/stretchr/testify/require"
)

func TestImports(t *testing.T) { deptest.Check(t) }

var uplinkTopics = []struct {
	topic string
	id    string
	kind  Kind
	req   string // request id, or the start of the error
}{
	{"$oc/devices/d1/sys/properties/report", "d1", KindProperties, ""},
	{"$oc/devices/d1/sys/messages/up", "d1", KindMessage, ""},
	{"$oc/devices/gw/sys/events/up", "gw", KindEvent, ""},
	{"$oc/devices/gw/sys/events/down", "", 0, "a device publishes only on"},
	{"$oc/devices/gw/sys/gateway/sub_devices/properties/report", "gw", KindSubDeviceReports, ""},
	{"$oc/devices/gw/sys/gateway/sub_devices/properties/report/x", "", 0, "a device publishes only on"},
	{"$oc/devices/d1/sys/commands/response/request_id=c-7", "d1", KindCommandResponse, "c-7"},
	{"$oc/devices/d1/sys/commands/response/request_id=", "", 0, "request_id is empty"},
	{"$oc/devices//sys/properties/report", "", 0, "deviceId is empty"},
	{"$oc/devices/+/sys/properties/report", "", 0, "deviceId must not hold"},
	{"$oc/devices/d1/sys/messages/down", "", 0, "a device publishes only on"},
	{"$oc/devices/d1/sys/commands/request_id=1", "", 0, "a device publishes only on"},
	{"devices/d1/sys/properties/report", "", 0, "device topics start with"},
	{"$oc/devices/" + strings.Repeat("x", MaxIDLen+1) + "/sys/messages/up", "", 0, "deviceId is 257 bytes"},
}

func TestParseUplink(t *testing.T) {
	for _, tc := range uplinkTopics {
		id, k, req, err := ParseUplink(tc.topic)
		if tc.kind == 0 {
			require.ErrorContains(t, err, tc.req, "ParseUplink(%q)", tc.topic)
			continue
		}
		require.NoError(t, err, "ParseUplink(%q)", tc.topic)
		require.Equal(t, tc.id, id, "ParseUplink(%q) deviceId", tc.topic)
		require.Equal(t, tc.kind, k, "ParseUplink(%q) kind", tc.topic)
		require.Equal(t, tc.req, req, "ParseUplink(%q) request id", tc.topic)
	}
}

func FuzzParseUplink(f *testing.F) {
	for _, tc := range uplinkTopics {
		f.Add(tc.topic)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		id, k, req, err := ParseUplink(topic)
		if err != nil {
			return
		}
		// A topic that parses names one device and is rebuilt from it.
		require.NoError(t, checkID(id))
		switch k {
		case KindProperties:
			require.Equal(t, topicPrefix+id+propertiesTopic, topic)
		case KindMessage:
			require.Equal(t, topicPrefix+id+messagesUpTopic, topic)
		case KindCommandResponse:
			require.Equal(t, topicPrefix+id+responseTopic+req, topic)
		case KindEvent:
			require.Equal(t, topicPrefix+id+eventsUpTopic, topic)
		case KindSubDeviceReports:
			require.Equal(t, topicPrefix+id+batchTopic, topic)
		default:
			t.Fatalf("ParseUplink(%q) gave kind %v and no error", topic, k)
		}
	})
}

func TestFilterDevice(t *testing.T) {
	for _, tc := range []struct{ filter, id, err string }{
		{"$oc/devices/d1/sys/commands/#", "d1", ""},
		{"$oc/devices/d1/sys/#", "d1", ""},
		{"$oc/devices/+/sys/commands/#", "", "deviceId must not hold"},
		{"$oc/devices/#", "", "deviceId must not hold"},
		{"#", "", "device topics start with"},
		{"$oc/devices/d1/#", "", "subscribes only under"},
	} {
		id, err := FilterDevice(tc.filter)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, "FilterDevice(%q)", tc.filter)
			continue
		}
		require.NoError(t, err, "FilterDevice(%q)", tc.filter)
		require.Equal(t, tc.id, id)
	}
}

func TestMatches(t *testing.T) {
	cmd := CommandTopic("d1", "x")
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"$oc/devices/d1/sys/commands/#", true},
		{"$oc/devices/d1/sys/#", true},
		{"$oc/devices/d1/sys/commands/+", true},
		{"$oc/devices/d1/sys/messages/down", false},
		{"$oc/devices/d2/sys/commands/#", false},
	} {
		require.Equal(t, tc.want, matches(tc.filter, cmd), "matches(%q, %q)", tc.filter, cmd)
	}
}

// TestBucket: at most rate messages in any second, a burst of rate after
// quiet, refilled at rate per second (MQT-4).
func TestBucket(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var b bucket
	n := 0
	for i := 0; i < 400; i++ { // 400 messages within one millisecond
		if b.take(t0.Add(time.Duration(i)*time.Microsecond), 300) {
			n++
		}
	}
	require.Equal(t, 300, n, "a burst is cut at the rate")
	require.False(t, b.take(t0.Add(time.Millisecond), 300), "the bucket is empty")
	require.True(t, b.take(t0.Add(time.Millisecond+4*time.Millisecond), 300), "after 1/300 s one token is back")
	require.False(t, b.take(t0.Add(5*time.Millisecond), 300))

	// Steady 300/s passes for ever; 301/s does not.
	var steady, over bucket
	okSteady, okOver := 0, 0
	for i := 0; i < 3000; i++ {
		if steady.take(t0.Add(time.Duration(i)*time.Second/300), 300) {
			okSteady++
		}
		if over.take(t0.Add(time.Duration(i)*time.Second/400), 300) {
			okOver++
		}
	}
	require.Equal(t, 3000, okSteady, "300 messages a second are all within the limit")
	require.Less(t, okOver, 3000, "400 messages a second are not")
	require.InDelta(t, 300+float64(3000)/400*300, okOver, 3, "what passes at 400/s is the burst plus 300 a second")
}
