package mqtt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

var batchBodies = []struct {
	body string
	err  string // the whole message's error, "" when it parses
}{
	{`{"devices":[{"device_id":"s1","services":[{"service_id":"Battery","properties":{"batteryLevel":1},"event_time":"20260101T120000Z"}]},
		{"device_id":"s2","services":[{"service_id":"Meter","properties":{"reading":2}}, {"service_id":"Battery","properties":{"batteryLevel":3}}]}]}`, ""},
	{`{"devices":[{"services":[{"service_id":"Battery","properties":{}}]}, {"device_id":"s2","services":[]}, {"device_id":7,"services":[{}]},
		{"device_id":"s\u0001","services":[{}]}, "text", {"device_id":"s5","services":{"service_id":"x"}}, {"device_id":"s6","services":[{}]}]}`, ""},
	{`{"devices":[]}`, "devices: must be a non-empty array"},
	{`{"devices":{"device_id":"s1"}}`, "devices: must be a non-empty array"},
	{`{}`, "devices: must be a non-empty array"},
	{`[1,2]`, "body: must be"},
	{`not json`, "body: must be"},
}

// TestParseSubDeviceReports: each entry becomes the sub-device's own
// property report; an entry that cannot be read carries its own error and
// the others are still taken; a message that cannot be read at all is
// refused whole.
func TestParseSubDeviceReports(t *testing.T) {
	for _, tc := range batchBodies {
		rs, err := ParseSubDeviceReports([]byte(tc.body))
		if tc.err != "" {
			var be *BatchError
			require.ErrorAs(t, err, &be, "%s", tc.body)
			require.ErrorContains(t, err, "mqtt: sub-device report "+tc.err, "%s", tc.body)
			continue
		}
		require.NoError(t, err, "%s", tc.body)
		require.NotEmpty(t, rs)
	}

	rs, err := ParseSubDeviceReports([]byte(batchBodies[0].body))
	require.NoError(t, err)
	require.Len(t, rs, 2)
	require.Equal(t, 0, rs[0].Index)
	require.Equal(t, "s1", rs[0].DeviceID)
	require.Nil(t, rs[0].Err)
	require.JSONEq(t, `{"services":[{"service_id":"Battery","properties":{"batteryLevel":1},"event_time":"20260101T120000Z"}]}`, string(rs[0].Report))
	require.Equal(t, "s2", rs[1].DeviceID)
	require.JSONEq(t, `{"services":[{"service_id":"Meter","properties":{"reading":2}},{"service_id":"Battery","properties":{"batteryLevel":3}}]}`, string(rs[1].Report))

	rs, err = ParseSubDeviceReports([]byte(batchBodies[1].body))
	require.NoError(t, err)
	require.Len(t, rs, 7)
	want := []struct{ id, field, rule string }{
		{"", "devices[0].device_id", "is required"},
		{"s2", "devices[1].services", "must be a non-empty array"},
		{"", "devices[2].device_id", "must be a string"},
		{"s\x01", "devices[3].device_id", "must not hold control characters"},
		{"", "devices[4]", "must be {"},
		{"s5", "devices[5].services", "must be a non-empty array"},
	}
	for i, w := range want {
		require.Equal(t, i, rs[i].Index)
		require.Equal(t, w.id, rs[i].DeviceID, "entry %d", i)
		require.NotNil(t, rs[i].Err, "entry %d", i)
		require.Equal(t, w.field, rs[i].Err.Field, "entry %d", i)
		require.Contains(t, rs[i].Err.Rule, w.rule, "entry %d", i)
		require.Nil(t, rs[i].Report)
	}
	require.Nil(t, rs[6].Err, "an entry after bad ones is still read")
	require.Equal(t, "s6", rs[6].DeviceID)
	require.JSONEq(t, `{"services":[{}]}`, string(rs[6].Report), "its services are the caller's to check")
}

// TestParseSubDeviceReportsBounds: at most MaxBatchDevices entries; a
// device_id over MaxFieldLen is an entry's error and is not echoed back.
func TestParseSubDeviceReportsBounds(t *testing.T) {
	body := func(n int) []byte {
		devs := make([]any, n)
		for i := range devs {
			devs[i] = map[string]any{"device_id": fmt.Sprintf("s%d", i), "services": []any{map[string]any{"service_id": "S", "properties": map[string]any{}}}}
		}
		b, _ := json.Marshal(map[string]any{"devices": devs})
		return b
	}
	rs, err := ParseSubDeviceReports(body(MaxBatchDevices))
	require.NoError(t, err)
	require.Len(t, rs, MaxBatchDevices)
	_, err = ParseSubDeviceReports(body(MaxBatchDevices + 1))
	require.EqualError(t, err, "mqtt: sub-device report devices: holds 101 devices, at most 100 per message")

	long := strings.Repeat("x", MaxFieldLen+1)
	rs, err = ParseSubDeviceReports([]byte(`{"devices":[{"device_id":"` + long + `","services":[{}]}]}`))
	require.NoError(t, err)
	require.Equal(t, "devices[0].device_id", rs[0].Err.Field)
	require.Equal(t, "is 257 bytes, at most 256", rs[0].Err.Rule)
	require.Empty(t, rs[0].DeviceID)
}

func FuzzParseSubDeviceReports(f *testing.F) {
	for _, tc := range batchBodies {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseSubDeviceReports(b)
		if err != nil {
			var be *BatchError
			require.ErrorAs(t, err, &be)
			require.NotEmpty(t, be.Field)
			require.NotEmpty(t, be.Rule)
			return
		}
		require.NotEmpty(t, rs)
		require.LessOrEqual(t, len(rs), MaxBatchDevices)
		for i, r := range rs {
			require.Equal(t, i, r.Index)
			require.LessOrEqual(t, len(r.DeviceID), MaxFieldLen)
			if r.Err != nil {
				require.True(t, strings.HasPrefix(r.Err.Field, fmt.Sprintf("devices[%d]", i)), r.Err.Field)
				require.NotEmpty(t, r.Err.Rule)
				require.Nil(t, r.Report)
				continue
			}
			// A taken entry names a device and is a property report
			// with at least one service.
			require.NoError(t, checkText("device_id", r.DeviceID, MaxFieldLen, true))
			var rep struct {
				Services []json.RawMessage `json:"services"`
			}
			require.NoError(t, json.Unmarshal(r.Report, &rep), "%s", r.Report)
			require.NotEmpty(t, rep.Services)
		}
	})
}

// publish sends a QoS 1 PUBLISH; the broker's answer, if any, is read by
// the caller.
func (c *rawClient) publish(topic string, payload []byte) {
	c.t.Helper()
	c.pid++
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4, PacketID: c.pid,
		TopicName: topic, Payload: payload}
	var buf bytes.Buffer
	require.NoError(c.t, pk.PublishEncode(&buf))
	c.write(buf.Bytes())
}

// TestBatchPayloadLimit: a gateway's batch report may be up to
// MaxBatchPayload bytes; every other topic stays bounded by MaxPayload.
func TestBatchPayloadLimit(t *testing.T) {
	rec := newRecorder()
	s, err := New(testDevices{gw: map[string]bool{"gw": true}}, rec, Config{Addr: "127.0.0.1:0", TLSAddr: "off", MaxPayload: 1024, MaxBatchPayload: 8192})
	require.NoError(t, err)
	runServer(t, s)

	c, code, _ := dialRaw(t, s.Addr("tcp"), "gw", "gw", "secret", true)
	require.Zero(t, code)
	batch := "$oc/devices/gw/sys/gateway/sub_devices/properties/report"
	big := bytes.Repeat([]byte("x"), 4096)
	c.publish(batch, big)
	require.Equal(t, packets.Puback, c.read().FixedHeader.Type, "4 KiB is within MaxBatchPayload")
	select {
	case m := <-rec.msgs:
		require.Equal(t, KindSubDeviceReports, m.Kind)
		require.Equal(t, "gw", m.DeviceID)
		require.Len(t, m.Payload, 4096)
	case <-time.After(10 * time.Second):
		t.Fatal("the batch report did not reach the handler")
	}

	// The same payload on the gateway's own report topic is over
	// MaxPayload, and 8 KiB + 1 over MaxBatchPayload: each dropped
	// unacknowledged (MQTT 3.1.1: the PINGRESP comes, no PUBACK before
	// it) and counted.
	c.publish("$oc/devices/gw/sys/properties/report", big)
	c.ping()
	require.EqualValues(t, 1, s.Stats().TooLarge)
	c.publish(batch, bytes.Repeat([]byte("x"), 8193))
	c.ping()
	require.EqualValues(t, 2, s.Stats().TooLarge)
	require.Empty(t, rec.msgs, "nothing over a bound reached the handler")

	_, err = New(testDevices{}, rec, Config{Addr: "off", TLSAddr: "off", MaxPayload: 1024, MaxBatchPayload: 512})
	require.ErrorContains(t, err, "MaxBatchPayload 512: must be at least MaxPayload (1024)")
}
