// Package records is what the bbolt store and store/postgres do alike,
// written once: the stored form of a command (every field, times with
// nanoseconds) and of a batch task (every field, unlike the API JSON), so
// both read and write the same bytes, the stored form of a forwarding
// rule, the checks of a device update, and the cut of a device log
// message.
package records

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/registry"
)

// cmd is a command as stored. The JSON names are the stored format: do not
// change them.
type cmd struct {
	ID            string          `json:"id"`
	AppID         string          `json:"app,omitempty"`
	DeviceID      string          `json:"dev"`
	ServiceID     string          `json:"svc"`
	Method        string          `json:"m"`
	Paras         json.RawMessage `json:"p,omitempty"`
	CallbackURL   string          `json:"cb,omitempty"`
	ExpireTime    int64           `json:"exp"`
	MaxRetransmit int             `json:"mr,omitempty"`
	Status        uint8           `json:"st"`
	Created       time.Time       `json:"ct"`
	Issued        *time.Time      `json:"it,omitempty"`
	Delivered     *time.Time      `json:"dt,omitempty"`
	Executed      *time.Time      `json:"et,omitempty"`
	IssuedTimes   int             `json:"n,omitempty"`
	Seq           uint64          `json:"seq"`
	Key           string          `json:"k,omitempty"`
	TaskID        string          `json:"task,omitempty"`
	Reason        string          `json:"why,omitempty"`
	ErrCode       int             `json:"ec,omitempty"`
	Result        json.RawMessage `json:"res,omitempty"`
	Deadline      *time.Time      `json:"dl,omitempty"`
	NextTry       *time.Time      `json:"nt,omitempty"`
	Retransmits   int             `json:"rt,omitempty"`
	SendAttempt   *time.Time      `json:"sa,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromOpt(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// EncodeCommand returns c as stored.
func EncodeCommand(c *command.Command) ([]byte, error) {
	return json.Marshal(cmd{
		ID: c.ID, AppID: c.AppID, DeviceID: c.DeviceID, ServiceID: c.Body.ServiceID, Method: c.Body.Method,
		Paras: c.Body.Paras, CallbackURL: c.CallbackURL, ExpireTime: c.ExpireTime, MaxRetransmit: c.MaxRetransmit,
		Status: uint8(c.Status), Created: c.CreationTime, Issued: optTime(c.PlatformIssuedTime),
		Delivered: optTime(c.DeliveredTime), Executed: optTime(c.ExecuteTime), IssuedTimes: c.IssuedTimes,
		Seq: c.Seq, Key: c.Key, TaskID: c.TaskID, Reason: c.Reason, ErrCode: c.ErrCode, Result: c.Result,
		Deadline: optTime(c.Deadline), NextTry: optTime(c.NextTry), Retransmits: c.Retransmits,
		SendAttempt: optTime(c.SendAttempt),
	})
}

// DecodeCommand reads a command written by EncodeCommand. Its error is
// json's; the caller says which record it was.
func DecodeCommand(b []byte) (command.Command, error) {
	var r cmd
	if err := json.Unmarshal(b, &r); err != nil {
		return command.Command{}, err
	}
	return command.Command{
		ID: r.ID, AppID: r.AppID, DeviceID: r.DeviceID,
		Body:        command.Body{ServiceID: r.ServiceID, Method: r.Method, Paras: r.Paras},
		CallbackURL: r.CallbackURL, ExpireTime: r.ExpireTime, MaxRetransmit: r.MaxRetransmit,
		Status: command.Status(r.Status), CreationTime: r.Created, PlatformIssuedTime: fromOpt(r.Issued),
		DeliveredTime: fromOpt(r.Delivered), ExecuteTime: fromOpt(r.Executed), IssuedTimes: r.IssuedTimes,
		Seq: r.Seq, Key: r.Key, TaskID: r.TaskID, Reason: r.Reason, ErrCode: r.ErrCode, Result: r.Result,
		Deadline: fromOpt(r.Deadline), NextTry: fromOpt(r.NextTry), Retransmits: r.Retransmits,
		SendAttempt: fromOpt(r.SendAttempt),
	}, nil
}

// Task is a batch task as stored: every field of command.Task, without
// the API's JSON methods.
type Task command.Task

// UpdateDevice is the part of registry.Store.Update that both stores do
// alike: fn changes a copy of old, the device stored as id; it must keep
// the id; groups come out sorted, without repeats. pkg starts the error
// for a changed id ("store", "store/postgres"); fn's own error is
// returned as it is.
func UpdateDevice(pkg, id string, old registry.Device, fn func(*registry.Device) error) (registry.Device, error) {
	d := old.Clone()
	if err := fn(&d); err != nil {
		return registry.Device{}, err
	}
	if d.ID != id {
		return registry.Device{}, fmt.Errorf("%s: Update changed deviceId %q to %q: %w", pkg, id, d.ID, registry.ErrInvalid)
	}
	d.Groups = slices.Compact(slices.Sorted(slices.Values(d.Groups)))
	return d, nil
}

// Cut shortens s to at most n bytes, at a rune boundary, ending with "…"
// (a device log message, store.MaxLogMessage).
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	i := n - len(ell)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ell
}

// rule is a forwarding rule as stored. The JSON names are the stored
// format: do not change them.
type rule struct {
	ID        string           `json:"id"`
	AppID     string           `json:"appId"`
	Name      string           `json:"name"`
	Condition string           `json:"condition"`
	Enabled   bool             `json:"enabled"`
	Targets   []forward.Target `json:"targets"`
	Created   time.Time        `json:"created"`
	Updated   time.Time        `json:"updated"`
}

// EncodeRule returns the stored form of r.
func EncodeRule(r forward.Rule) ([]byte, error) {
	return json.Marshal(rule{ID: r.ID, AppID: r.AppID, Name: r.Name, Condition: r.Condition, Enabled: r.Enabled,
		Targets: r.Targets, Created: r.Created, Updated: r.Updated})
}

// DecodeRule reads what EncodeRule wrote.
func DecodeRule(b []byte) (forward.Rule, error) {
	var r rule
	if err := json.Unmarshal(b, &r); err != nil {
		return forward.Rule{}, err
	}
	return forward.Rule{ID: r.ID, AppID: r.AppID, Name: r.Name, Condition: r.Condition, Enabled: r.Enabled,
		Targets: r.Targets, Created: r.Created, Updated: r.Updated}, nil
}
