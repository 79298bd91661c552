package command

import (
	"encoding/json"
)

// Notification is the body pushed to a command's callbackUrl on every
// notifying move (CMD-6); it is the only definition of that body (the
// platform encodes it and hands the bytes to push's Engine.Send):
//
//	{"deviceId":"…","commandId":"…","result":{"resultCode":"DELIVERED","resultDetail":null}}
type Notification struct {
	DeviceID  string `json:"deviceId"`
	CommandID string `json:"commandId"`
	Result    Result `json:"result"`
}

// Result is the result member of a Notification.
type Result struct {
	// ResultCode is the command's new status: "SENT", "DELIVERED", …
	ResultCode string `json:"resultCode"`
	// ResultDetail is the device's response body for SUCCESSFUL and FAILED
	// results the device reported; for a command the platform ended itself
	// with a reason (encode error, unreachable, superseded) it is
	// {"reason":"…"} (our choice); otherwise null.
	ResultDetail json.RawMessage `json:"resultDetail"`
}

// Notification returns the CMD-6 body for c's current state.
func (c *Command) Notification() Notification {
	n := Notification{DeviceID: c.DeviceID, CommandID: c.ID, Result: Result{ResultCode: c.Status.String()}}
	switch {
	case c.Result != nil && (c.Status == Successful || c.Status == Failed):
		n.Result.ResultDetail = c.Result
	case c.Reason != "" && c.Status.Final():
		b, _ := json.Marshal(struct {
			Reason string `json:"reason"`
		}{c.Reason})
		n.Result.ResultDetail = b
	default:
		n.Result.ResultDetail = json.RawMessage("null")
	}
	return n
}
