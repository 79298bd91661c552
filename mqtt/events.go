package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Gateway events (MQT-5), after the original platform's newer device
// interface: a gateway publishes on $oc/devices/{its deviceId}/sys/events/up
//
//	{"object_device_id"?, "services":[{"service_id":"$sub_device_manager",
//	  "event_type":"add_sub_device_request", "event_time"?, "event_id"?,
//	  "paras":{"devices":[{"node_id","product_id","manufacturer_id"?,
//	  "name"?,"description"?,"parent_device_id"?,"extension_info"?}]}}]}
//
// or with "event_type":"delete_sub_device_request" and
// "paras":{"devices":["{deviceId}", …]}, or with
// "event_type":"sub_device_update_status" and
// "paras":{"device_statuses":[{"device_id","status":"ONLINE"|"OFFLINE"}, …]},
// and gets the result on …/sys/events/down as an event of type
// add_sub_device_response, delete_sub_device_response or
// sub_device_update_status_response with the request's event_id and
// "paras":{"successful_devices":[…],"failed_devices":[…]}.
const (
	// SubDeviceManager is the service_id of the sub-device events.
	SubDeviceManager = "$sub_device_manager"

	EventAddSubDevices                 = "add_sub_device_request"
	EventAddSubDevicesResponse         = "add_sub_device_response"
	EventDeleteSubDevices              = "delete_sub_device_request"
	EventDeleteSubDevicesResponse      = "delete_sub_device_response"
	EventUpdateSubDeviceStatus         = "sub_device_update_status"
	EventUpdateSubDeviceStatusResponse = "sub_device_update_status_response"
)

// The statuses a gateway may give its sub-devices
// (sub_device_update_status).
const (
	StatusOnline  = "ONLINE"
	StatusOffline = "OFFLINE"
)

// Bounds of an event message (MQT-4, MQT-5). The payload itself is
// bounded by Config.MaxPayload.
const (
	// MaxEvents is how many events one message may carry.
	MaxEvents = 10
	// MaxSubDevicesPerEvent is how many sub-devices one add or delete
	// request may name (the original platform's limit).
	MaxSubDevicesPerEvent = 50
	// MaxStatusesPerEvent is how many sub-devices one
	// sub_device_update_status may name (the original platform's limit).
	MaxStatusesPerEvent = 100
	// MaxFieldLen bounds node_id, product_id, manufacturer_id, name,
	// event_id and a deviceId.
	MaxFieldLen = 256
	// MaxDescriptionLen bounds a sub-device's description.
	MaxDescriptionLen = 2048
	// MaxExtensionInfo bounds a sub-device's extension_info, in bytes of
	// JSON.
	MaxExtensionInfo = 1024
)

// Event is one event of a gateway's events/up message.
type Event struct {
	ServiceID string // SubDeviceManager for the sub-device events
	Type      string // event_type
	Time      string // event_time as sent ("" when absent); yyyyMMdd'T'HHmmss'Z'
	ID        string // event_id ("" when absent): the response carries it back

	// Add holds the devices of an add_sub_device_request.
	Add []SubDeviceRequest
	// Delete holds the deviceIds of a delete_sub_device_request.
	Delete []string
	// Statuses holds the devices of a sub_device_update_status.
	Statuses []SubDeviceStatus
}

// SubDeviceStatus is one device of a sub_device_update_status, and of the
// successful_devices of its answer.
type SubDeviceStatus struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status"` // StatusOnline or StatusOffline; in an answer, the status the device has now
}

// SubDeviceRequest is one device of an add_sub_device_request.
type SubDeviceRequest struct {
	NodeID         string          `json:"node_id"`
	ProductID      string          `json:"product_id"`                // the product's model
	ManufacturerID string          `json:"manufacturer_id,omitempty"` // ours: needed when several products share the model
	Name           string          `json:"name,omitempty"`
	Description    string          `json:"description,omitempty"`
	ParentDeviceID string          `json:"parent_device_id,omitempty"` // the gateway itself, or absent
	DeviceID       string          `json:"device_id,omitempty"`        // not accepted: the platform assigns deviceIds
	ExtensionInfo  json.RawMessage `json:"extension_info,omitempty"`
}

// EventError is an events/up message that cannot be taken: the field at
// fault and what is allowed.
type EventError struct {
	Field string // e.g. services[0].paras.devices[3].node_id
	Rule  string
}

func (e *EventError) Error() string { return fmt.Sprintf("mqtt: event %s: %s", e.Field, e.Rule) }

type rawEvent struct {
	ServiceID string          `json:"service_id"`
	EventType string          `json:"event_type"`
	EventTime string          `json:"event_time"`
	EventID   string          `json:"event_id"`
	Paras     json.RawMessage `json:"paras"`
}

// ParseEvents reads a gateway's events/up message. It knows the
// sub-device events of SubDeviceManager (add, delete and status
// requests); any
// other service or event type is an *EventError, as is a missing or
// malformed field or a bound passed (MaxEvents, MaxSubDevicesPerEvent,
// MaxStatusesPerEvent, MaxFieldLen, …) or a status that is neither
// ONLINE nor OFFLINE. Checks that need the registry (the product exists, the
// device is behind this gateway) are the caller's.
func ParseEvents(b []byte) ([]Event, error) {
	var body struct {
		ObjectDeviceID string          `json:"object_device_id"`
		Services       json.RawMessage `json:"services"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, &EventError{Field: "body", Rule: `must be {"services":[{"service_id","event_type","paras":{…}}]}: ` + err.Error()}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body.Services, &raws); err != nil || len(raws) == 0 {
		return nil, &EventError{Field: "services", Rule: "must be a non-empty array of events"}
	}
	if len(raws) > MaxEvents {
		return nil, &EventError{Field: "services", Rule: fmt.Sprintf("holds %d events, at most %d per message", len(raws), MaxEvents)}
	}
	out := make([]Event, 0, len(raws))
	for i, r := range raws {
		at := fmt.Sprintf("services[%d]", i)
		var re rawEvent
		if err := json.Unmarshal(r, &re); err != nil {
			return nil, &EventError{Field: at, Rule: `must be {"service_id","event_type","event_time"?,"event_id"?,"paras":{…}}: ` + err.Error()}
		}
		if err := checkText(at+".event_id", re.EventID, MaxFieldLen, false); err != nil {
			return nil, err
		}
		if err := checkText(at+".event_time", re.EventTime, 32, false); err != nil {
			return nil, err
		}
		ev := Event{ServiceID: re.ServiceID, Type: re.EventType, Time: re.EventTime, ID: re.EventID}
		if re.ServiceID != SubDeviceManager {
			return nil, &EventError{Field: at + ".service_id", Rule: fmt.Sprintf("is %q; this platform takes only %q events", truncate(re.ServiceID, 64), SubDeviceManager)}
		}
		var paras struct {
			Devices        json.RawMessage `json:"devices"`
			DeviceStatuses json.RawMessage `json:"device_statuses"`
		}
		parasOK := len(re.Paras) > 0 && json.Unmarshal(re.Paras, &paras) == nil
		isArray := func(b json.RawMessage) bool { return bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) }
		var err error
		switch re.EventType {
		case EventAddSubDevices, EventDeleteSubDevices:
			if !parasOK || !isArray(paras.Devices) {
				return nil, &EventError{Field: at + ".paras", Rule: `must be {"devices":[…]}`}
			}
			if re.EventType == EventAddSubDevices {
				ev.Add, err = parseAdd(at+".paras.devices", paras.Devices)
			} else {
				ev.Delete, err = parseDelete(at+".paras.devices", paras.Devices)
			}
		case EventUpdateSubDeviceStatus:
			if !parasOK || !isArray(paras.DeviceStatuses) {
				return nil, &EventError{Field: at + ".paras", Rule: `must be {"device_statuses":[{"device_id","status"}, …]}`}
			}
			ev.Statuses, err = parseStatuses(at+".paras.device_statuses", paras.DeviceStatuses)
		default:
			err = &EventError{Field: at + ".event_type", Rule: fmt.Sprintf("is %q; %s takes %q, %q and %q", truncate(re.EventType, 64), SubDeviceManager,
				EventAddSubDevices, EventDeleteSubDevices, EventUpdateSubDeviceStatus)}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func parseAdd(at string, b json.RawMessage) ([]SubDeviceRequest, error) {
	var devs []SubDeviceRequest
	if err := json.Unmarshal(b, &devs); err != nil {
		return nil, &EventError{Field: at, Rule: `must be an array of {"node_id","product_id",…}: ` + err.Error()}
	}
	if err := checkCount(at, len(devs)); err != nil {
		return nil, err
	}
	for i, d := range devs {
		f := fmt.Sprintf("%s[%d].", at, i)
		for _, c := range []struct {
			name, v  string
			max      int
			required bool
		}{
			{"node_id", d.NodeID, MaxFieldLen, true}, {"product_id", d.ProductID, MaxFieldLen, true},
			{"manufacturer_id", d.ManufacturerID, MaxFieldLen, false}, {"name", d.Name, MaxFieldLen, false},
			{"description", d.Description, MaxDescriptionLen, false}, {"parent_device_id", d.ParentDeviceID, MaxFieldLen, false},
			{"device_id", d.DeviceID, MaxFieldLen, false},
		} {
			if err := checkText(f+c.name, c.v, c.max, c.required); err != nil {
				return nil, err
			}
		}
		if len(d.ExtensionInfo) > MaxExtensionInfo {
			return nil, &EventError{Field: f + "extension_info", Rule: fmt.Sprintf("is %d bytes of JSON, at most %d", len(d.ExtensionInfo), MaxExtensionInfo)}
		}
		if len(d.ExtensionInfo) > 0 && !bytes.HasPrefix(bytes.TrimSpace(d.ExtensionInfo), []byte("{")) && string(d.ExtensionInfo) != "null" {
			return nil, &EventError{Field: f + "extension_info", Rule: "must be a JSON object"}
		}
	}
	return devs, nil
}

func parseDelete(at string, b json.RawMessage) ([]string, error) {
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, &EventError{Field: at, Rule: `must be an array of deviceIds ("devices":["…"]): ` + err.Error()}
	}
	if err := checkCount(at, len(ids)); err != nil {
		return nil, err
	}
	for i, id := range ids {
		if err := checkText(fmt.Sprintf("%s[%d]", at, i), id, MaxFieldLen, true); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func parseStatuses(at string, b json.RawMessage) ([]SubDeviceStatus, error) {
	var sts []SubDeviceStatus
	if err := json.Unmarshal(b, &sts); err != nil {
		return nil, &EventError{Field: at, Rule: `must be an array of {"device_id","status":"ONLINE"|"OFFLINE"}: ` + err.Error()}
	}
	switch {
	case len(sts) == 0:
		return nil, &EventError{Field: at, Rule: "is empty: name at least one device"}
	case len(sts) > MaxStatusesPerEvent:
		return nil, &EventError{Field: at, Rule: fmt.Sprintf("names %d devices, at most %d per request", len(sts), MaxStatusesPerEvent)}
	}
	for i, st := range sts {
		f := fmt.Sprintf("%s[%d].", at, i)
		if err := checkText(f+"device_id", st.DeviceID, MaxFieldLen, true); err != nil {
			return nil, err
		}
		if st.Status != StatusOnline && st.Status != StatusOffline {
			return nil, &EventError{Field: f + "status", Rule: fmt.Sprintf("is %q; must be %q or %q", truncate(st.Status, 64), StatusOnline, StatusOffline)}
		}
	}
	return sts, nil
}

func checkCount(at string, n int) error {
	switch {
	case n == 0:
		return &EventError{Field: at, Rule: "is empty: name at least one device"}
	case n > MaxSubDevicesPerEvent:
		return &EventError{Field: at, Rule: fmt.Sprintf("names %d devices, at most %d per request", n, MaxSubDevicesPerEvent)}
	}
	return nil
}

// checkText bounds a text field: valid UTF-8, no control characters, at
// most max bytes, and present when required.
func checkText(field, v string, max int, required bool) error {
	switch {
	case v == "" && required:
		return &EventError{Field: field, Rule: "is required"}
	case len(v) > max:
		return &EventError{Field: field, Rule: fmt.Sprintf("is %d bytes, at most %d", len(v), max)}
	case !utf8.ValidString(v):
		return &EventError{Field: field, Rule: "is not valid UTF-8"}
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return &EventError{Field: field, Rule: "must not hold control characters"}
		}
	}
	return nil
}

// SubDevice is a sub-device as an add_sub_device_response lists it.
type SubDevice struct {
	DeviceID       string          `json:"device_id"`
	NodeID         string          `json:"node_id"`
	ParentDeviceID string          `json:"parent_device_id"`
	Name           string          `json:"name,omitempty"`
	Description    string          `json:"description,omitempty"`
	ManufacturerID string          `json:"manufacturer_id,omitempty"`
	Model          string          `json:"model,omitempty"`
	ProductID      string          `json:"product_id,omitempty"`
	Status         string          `json:"status,omitempty"` // INACTIVE, ONLINE, OFFLINE, ABNORMAL
	ExtensionInfo  json.RawMessage `json:"extension_info,omitempty"`
}

// SubDeviceFailure is a sub-device an add, delete or status request could
// not add, delete or update: the request's node_id and product_id (add) or
// deviceId (delete, status), a code and a message saying why.
type SubDeviceFailure struct {
	NodeID    string `json:"node_id,omitempty"`
	ProductID string `json:"product_id,omitempty"`
	DeviceID  string `json:"device_id,omitempty"`
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

// EventResponse encodes the events/down message answering a gateway's
// request ev: eventType is EventAddSubDevicesResponse,
// EventDeleteSubDevicesResponse or EventUpdateSubDeviceStatusResponse;
// successful is a []SubDevice (add), a []string of deviceIds (delete) or
// a []SubDeviceStatus (status). eventTime is yyyyMMdd'T'HHmmss'Z'.
func EventResponse(gatewayID string, ev Event, eventType, eventTime string, successful any, failed []SubDeviceFailure) ([]byte, error) {
	if failed == nil {
		failed = []SubDeviceFailure{}
	}
	switch s := successful.(type) {
	case []SubDevice:
		if s == nil {
			successful = []SubDevice{}
		}
	case []string:
		if s == nil {
			successful = []string{}
		}
	case []SubDeviceStatus:
		if s == nil {
			successful = []SubDeviceStatus{}
		}
	default:
		return nil, errors.New("mqtt: EventResponse: successful must be []SubDevice, []string or []SubDeviceStatus")
	}
	return json.Marshal(map[string]any{
		"object_device_id": gatewayID,
		"services": []map[string]any{{
			"service_id": ev.ServiceID, "event_type": eventType, "event_time": eventTime, "event_id": ev.ID,
			"paras": map[string]any{"successful_devices": successful, "failed_devices": failed},
		}},
	})
}
