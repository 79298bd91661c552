package mqtt

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A gateway's batch property report (MQT-5), after the newer platform's
// device interface: a gateway publishes on
// $oc/devices/{its deviceId}/sys/gateway/sub_devices/properties/report
//
//	{"devices":[{"device_id":"{sub-device deviceId}",
//	  "services":[{"service_id","properties":{…},"event_time"?}]}, …]}
//
// Each entry is what the sub-device's own …/sys/properties/report would
// carry. ParseSubDeviceReports reads the message: a message that cannot
// be read at all is a *BatchError; an entry that cannot be read is kept
// with its own *BatchError, so the other entries are still taken. That
// each device sits behind the gateway, and that its services fit its
// product model, are the caller's checks.
const (
	// MaxBatchDevices is how many entries one batch report may carry
	// (the original platform's limit).
	MaxBatchDevices = 100
	// DefaultMaxBatchPayload is Config.MaxBatchPayload's default.
	DefaultMaxBatchPayload = 64 << 10
)

// SubDeviceReport is one entry of a gateway's batch report.
type SubDeviceReport struct {
	Index    int    // its place in "devices", from 0
	DeviceID string // device_id as sent ("" when it could not be read)
	// Report is the entry's services as a device's own property report:
	// {"services":[…]}, the services array as sent. Nil when Err is set.
	Report []byte
	// Err says why the entry cannot be taken (its field and what is
	// allowed); the other entries are not affected.
	Err *BatchError
}

// BatchError is a batch report, or one of its entries, that cannot be
// taken: the field at fault and what is allowed.
type BatchError struct {
	Field string // e.g. devices[3].device_id
	Rule  string
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("mqtt: sub-device report %s: %s", e.Field, e.Rule)
}

// ParseSubDeviceReports reads a gateway's batch report. It refuses the
// whole message (a *BatchError) only when it is not a JSON object with a
// "devices" array of 1 to MaxBatchDevices entries; an entry without a
// device_id (at most MaxFieldLen bytes of text) or without a non-empty
// "services" array is returned with its Err set.
func ParseSubDeviceReports(b []byte) ([]SubDeviceReport, error) {
	var body struct {
		Devices json.RawMessage `json:"devices"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, &BatchError{Field: "body", Rule: `must be {"devices":[{"device_id","services":[…]}]}: ` + err.Error()}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body.Devices, &raws); err != nil || len(raws) == 0 {
		return nil, &BatchError{Field: "devices", Rule: `must be a non-empty array of {"device_id","services":[…]}`}
	}
	if len(raws) > MaxBatchDevices {
		return nil, &BatchError{Field: "devices", Rule: fmt.Sprintf("holds %d devices, at most %d per message", len(raws), MaxBatchDevices)}
	}
	out := make([]SubDeviceReport, len(raws))
	for i, r := range raws {
		out[i] = parseEntry(i, r)
	}
	return out, nil
}

func parseEntry(i int, r json.RawMessage) SubDeviceReport {
	at := fmt.Sprintf("devices[%d]", i)
	e := SubDeviceReport{Index: i}
	var raw struct {
		DeviceID json.RawMessage `json:"device_id"`
		Services json.RawMessage `json:"services"`
	}
	if err := json.Unmarshal(r, &raw); err != nil {
		e.Err = &BatchError{Field: at, Rule: `must be {"device_id","services":[…]}: ` + err.Error()}
		return e
	}
	if err := json.Unmarshal(raw.DeviceID, &e.DeviceID); err != nil && len(raw.DeviceID) > 0 {
		e.DeviceID = ""
		e.Err = &BatchError{Field: at + ".device_id", Rule: "must be a string (the sub-device's deviceId)"}
		return e
	}
	if err := checkText(at+".device_id", e.DeviceID, MaxFieldLen, true); err != nil {
		ee := err.(*EventError)
		if len(e.DeviceID) > MaxFieldLen {
			e.DeviceID = "" // not echoed back whole
		}
		e.Err = &BatchError{Field: ee.Field, Rule: ee.Rule}
		return e
	}
	var svcs []json.RawMessage
	if json.Unmarshal(raw.Services, &svcs) != nil || len(svcs) == 0 {
		e.Err = &BatchError{Field: at + ".services", Rule: `must be a non-empty array of {"service_id","properties":{…},"event_time"?}`}
		return e
	}
	var buf bytes.Buffer
	buf.Grow(len(raw.Services) + 16)
	buf.WriteString(`{"services":`)
	if err := json.Compact(&buf, raw.Services); err != nil { // cannot fail: it parsed
		e.Err = &BatchError{Field: at + ".services", Rule: err.Error()}
		return e
	}
	buf.WriteByte('}')
	e.Report = buf.Bytes()
	return e
}
