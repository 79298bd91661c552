package mqtt

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var eventBodies = []struct {
	body string
	err  string // "" when it parses; else the start of the field at fault and the rule
}{
	{`{"object_device_id":"gw","services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","event_time":"20260101T120000Z","event_id":"e1",
	  "paras":{"devices":[{"node_id":"n1","product_id":"M1","name":"one","description":"d","extension_info":{"k":1}},{"node_id":"n2","product_id":"M1","manufacturer_id":"Acme"}]}}]}`, ""},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"delete_sub_device_request","paras":{"devices":["d1","d2"]}}]}`, ""},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[{"node_id":"n1","product_id":"M"}]}},
	  {"service_id":"$sub_device_manager","event_type":"delete_sub_device_request","paras":{"devices":["d1"]}}]}`, ""},
	{`nope`, "body: must be"},
	{`{}`, "services: must be a non-empty array"},
	{`{"services":[]}`, "services: must be a non-empty array"},
	{`{"services":{}}`, "services: must be a non-empty array"},
	{`{"services":[1]}`, "services[0]: must be"},
	{`{"services":[{"service_id":"other","event_type":"add_sub_device_request","paras":{"devices":[]}}]}`, `services[0].service_id: is "other"`},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"reboot","paras":{"devices":["d"]}}]}`, `services[0].event_type: is "reboot"`},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request"}]}`, `services[0].paras: must be {"devices":[…]}`},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":{}}}]}`, `services[0].paras: must be`},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[]}}]}`, "services[0].paras.devices: is empty"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[{"product_id":"M"}]}}]}`, "services[0].paras.devices[0].node_id: is required"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[{"node_id":"n"}]}}]}`, "services[0].paras.devices[0].product_id: is required"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[{"node_id":"a\u0001b","product_id":"M"}]}}]}`, "services[0].paras.devices[0].node_id: must not hold control characters"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[{"node_id":"n","product_id":"M","extension_info":[1]}]}}]}`, "services[0].paras.devices[0].extension_info: must be a JSON object"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[{"node_id":"n","product_id":"M","extension_info":{"k":"` + strings.Repeat("x", MaxExtensionInfo) + `"}}]}}]}`, "services[0].paras.devices[0].extension_info: is 1032 bytes of JSON, at most 1024"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"devices":[{"node_id":"` + strings.Repeat("n", MaxFieldLen+1) + `","product_id":"M"}]}}]}`, "services[0].paras.devices[0].node_id: is 257 bytes, at most 256"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"delete_sub_device_request","paras":{"devices":[""]}}]}`, "services[0].paras.devices[0]: is required"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"delete_sub_device_request","paras":{"devices":[{"device_id":"d"}]}}]}`, "services[0].paras.devices: must be an array of deviceIds"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"delete_sub_device_request","event_id":"a\nb","paras":{"devices":["d"]}}]}`, "services[0].event_id: must not hold control characters"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status","event_id":"s1","paras":{"device_statuses":[{"device_id":"d1","status":"ONLINE"},{"device_id":"d2","status":"OFFLINE"}]}}]}`, ""},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status","paras":{"devices":["d1"]}}]}`, `services[0].paras: must be {"device_statuses":[`},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status","paras":{"device_statuses":[]}}]}`, "services[0].paras.device_statuses: is empty"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status","paras":{"device_statuses":["d1"]}}]}`, "services[0].paras.device_statuses: must be an array of"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status","paras":{"device_statuses":[{"status":"ONLINE"}]}}]}`, "services[0].paras.device_statuses[0].device_id: is required"},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status","paras":{"device_statuses":[{"device_id":"d1","status":"online"}]}}]}`, `services[0].paras.device_statuses[0].status: is "online"; must be "ONLINE" or "OFFLINE"`},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status","paras":{"device_statuses":[{"device_id":"d1"}]}}]}`, `services[0].paras.device_statuses[0].status: is ""`},
	{`{"services":[{"service_id":"$sub_device_manager","event_type":"add_sub_device_request","paras":{"device_statuses":[{"device_id":"d1","status":"ONLINE"}]}}]}`, `services[0].paras: must be {"devices":[…]}`},
}

func TestParseEvents(t *testing.T) {
	for _, tc := range eventBodies {
		evs, err := ParseEvents([]byte(tc.body))
		if tc.err != "" {
			var ee *EventError
			require.ErrorAs(t, err, &ee, "%s", tc.body)
			require.Contains(t, err.Error(), "mqtt: event "+tc.err, "%.120s", tc.body)
			continue
		}
		require.NoError(t, err, "%.120s", tc.body)
		require.NotEmpty(t, evs)
	}
	evs, err := ParseEvents([]byte(eventBodies[0].body))
	require.NoError(t, err)
	require.Equal(t, []Event{{ServiceID: SubDeviceManager, Type: EventAddSubDevices, Time: "20260101T120000Z", ID: "e1", Add: []SubDeviceRequest{
		{NodeID: "n1", ProductID: "M1", Name: "one", Description: "d", ExtensionInfo: json.RawMessage(`{"k":1}`)},
		{NodeID: "n2", ProductID: "M1", ManufacturerID: "Acme"},
	}}}, evs)
	evs, err = ParseEvents([]byte(eventBodies[1].body))
	require.NoError(t, err)
	require.Equal(t, []string{"d1", "d2"}, evs[0].Delete)
	for _, tc := range eventBodies {
		if strings.Contains(tc.body, `"event_id":"s1"`) {
			evs, err = ParseEvents([]byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, []Event{{ServiceID: SubDeviceManager, Type: EventUpdateSubDeviceStatus, ID: "s1",
				Statuses: []SubDeviceStatus{{DeviceID: "d1", Status: StatusOnline}, {DeviceID: "d2", Status: StatusOffline}}}}, evs)
		}
	}
}

// TestParseStatusBounds: at most MaxStatusesPerEvent devices per status
// request.
func TestParseStatusBounds(t *testing.T) {
	body := func(n int) []byte {
		sts := make([]SubDeviceStatus, n)
		for i := range sts {
			sts[i] = SubDeviceStatus{DeviceID: fmt.Sprintf("d%d", i), Status: StatusOffline}
		}
		b, _ := json.Marshal(map[string]any{"services": []any{map[string]any{"service_id": SubDeviceManager,
			"event_type": EventUpdateSubDeviceStatus, "paras": map[string]any{"device_statuses": sts}}}})
		return b
	}
	evs, err := ParseEvents(body(MaxStatusesPerEvent))
	require.NoError(t, err)
	require.Len(t, evs[0].Statuses, MaxStatusesPerEvent)
	_, err = ParseEvents(body(MaxStatusesPerEvent + 1))
	require.EqualError(t, err, "mqtt: event services[0].paras.device_statuses: names 101 devices, at most 100 per request")
}

// TestParseEventsBounds: at most MaxSubDevicesPerEvent devices per request
// and MaxEvents events per message.
func TestParseEventsBounds(t *testing.T) {
	body := func(events, devices int) []byte {
		ids := make([]string, devices)
		for i := range ids {
			ids[i] = fmt.Sprintf("d%d", i)
		}
		ev := map[string]any{"service_id": SubDeviceManager, "event_type": EventDeleteSubDevices, "paras": map[string]any{"devices": ids}}
		svcs := make([]any, events)
		for i := range svcs {
			svcs[i] = ev
		}
		b, _ := json.Marshal(map[string]any{"services": svcs})
		return b
	}
	_, err := ParseEvents(body(1, MaxSubDevicesPerEvent))
	require.NoError(t, err)
	_, err = ParseEvents(body(1, MaxSubDevicesPerEvent+1))
	require.EqualError(t, err, "mqtt: event services[0].paras.devices: names 51 devices, at most 50 per request")
	_, err = ParseEvents(body(MaxEvents, 1))
	require.NoError(t, err)
	_, err = ParseEvents(body(MaxEvents+1, 1))
	require.EqualError(t, err, "mqtt: event services: holds 11 events, at most 10 per message")
}

// TestEventResponse: the answer names the gateway and the request's
// event_id, and both lists are arrays even when empty.
func TestEventResponse(t *testing.T) {
	ev := Event{ServiceID: SubDeviceManager, Type: EventDeleteSubDevices, ID: "e9"}
	b, err := EventResponse("gw", ev, EventDeleteSubDevicesResponse, "20260101T000000Z", []string(nil), nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"object_device_id":"gw","services":[{"service_id":"$sub_device_manager","event_type":"delete_sub_device_response",
		"event_time":"20260101T000000Z","event_id":"e9","paras":{"successful_devices":[],"failed_devices":[]}}]}`, string(b))
	_, err = EventResponse("gw", ev, EventDeleteSubDevicesResponse, "", 7, nil)
	require.Error(t, err)

	ev = Event{ServiceID: SubDeviceManager, Type: EventUpdateSubDeviceStatus, ID: "e10"}
	b, err = EventResponse("gw", ev, EventUpdateSubDeviceStatusResponse, "20260101T000000Z",
		[]SubDeviceStatus{{DeviceID: "d1", Status: StatusOffline}}, []SubDeviceFailure{{DeviceID: "d2", ErrorCode: "device_not_found", ErrorMsg: "no device d2"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"object_device_id":"gw","services":[{"service_id":"$sub_device_manager","event_type":"sub_device_update_status_response",
		"event_time":"20260101T000000Z","event_id":"e10","paras":{"successful_devices":[{"device_id":"d1","status":"OFFLINE"}],
		"failed_devices":[{"device_id":"d2","error_code":"device_not_found","error_msg":"no device d2"}]}}]}`, string(b))
	b, err = EventResponse("gw", ev, EventUpdateSubDeviceStatusResponse, "", []SubDeviceStatus(nil), nil)
	require.NoError(t, err)
	require.Contains(t, string(b), `"successful_devices":[]`)
}

func FuzzParseEvents(f *testing.F) {
	for _, tc := range eventBodies {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := ParseEvents(b)
		if err != nil {
			var ee *EventError
			require.ErrorAs(t, err, &ee)
			require.NotEmpty(t, ee.Field)
			require.NotEmpty(t, ee.Rule)
			return
		}
		// What parses is within every bound, and its answer encodes.
		require.NotEmpty(t, evs)
		require.LessOrEqual(t, len(evs), MaxEvents)
		for _, ev := range evs {
			require.Equal(t, SubDeviceManager, ev.ServiceID)
			require.NoError(t, checkText("event_id", ev.ID, MaxFieldLen, false))
			switch ev.Type {
			case EventAddSubDevices:
				require.Empty(t, ev.Delete)
				require.Empty(t, ev.Statuses)
				require.NotEmpty(t, ev.Add)
				require.LessOrEqual(t, len(ev.Add), MaxSubDevicesPerEvent)
				for _, d := range ev.Add {
					require.NoError(t, checkText("node_id", d.NodeID, MaxFieldLen, true))
					require.NoError(t, checkText("product_id", d.ProductID, MaxFieldLen, true))
					require.LessOrEqual(t, len(d.Description), MaxDescriptionLen)
					require.LessOrEqual(t, len(d.ExtensionInfo), MaxExtensionInfo)
				}
			case EventUpdateSubDeviceStatus:
				require.Empty(t, ev.Add)
				require.Empty(t, ev.Delete)
				require.NotEmpty(t, ev.Statuses)
				require.LessOrEqual(t, len(ev.Statuses), MaxStatusesPerEvent)
				for _, st := range ev.Statuses {
					require.NoError(t, checkText("device_id", st.DeviceID, MaxFieldLen, true))
					require.Contains(t, []string{StatusOnline, StatusOffline}, st.Status)
				}
			case EventDeleteSubDevices:
				require.Empty(t, ev.Add)
				require.Empty(t, ev.Statuses)
				require.NotEmpty(t, ev.Delete)
				require.LessOrEqual(t, len(ev.Delete), MaxSubDevicesPerEvent)
				for _, id := range ev.Delete {
					require.NoError(t, checkText("device", id, MaxFieldLen, true))
				}
			default:
				t.Fatalf("event type %q parsed", ev.Type)
			}
			out, err := EventResponse("gw", ev, ev.Type, "", []string{}, nil)
			require.NoError(t, err)
			var back struct {
				Services []struct {
					EventID string `json:"event_id"`
				} `json:"services"`
			}
			require.NoError(t, json.Unmarshal(out, &back))
			require.Equal(t, ev.ID, back.Services[0].EventID)
		}
	})
}
