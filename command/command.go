package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doze-io/doze/internal/apitime"
)

// Body is what the device is asked to do: a command of one of its product's
// services (PRF-9). Paras is a non-empty JSON object.
type Body struct {
	ServiceID string          `json:"serviceId"`
	Method    string          `json:"method"`
	Paras     json.RawMessage `json:"paras"`
}

// Command is one downlink command and everything the platform knows about
// it. Its JSON form (MarshalJSON) is the command object of the northbound
// API; the fields marked "not in the API" are kept by the Store but left out
// of that JSON.
type Command struct {
	ID            string // commandId
	AppID         string // appId of the application that created it
	DeviceID      string
	Body          Body   // command {serviceId, method, paras}
	CallbackURL   string // "" when the application gave none
	ExpireTime    int64  // seconds the command may wait in PENDING; 0 = immediate
	MaxRetransmit int    // 0..3 retransmissions while SENT without ACK
	Status        Status

	CreationTime       time.Time // created (PENDING)
	PlatformIssuedTime time.Time // last SENT (first send or a re-send)
	DeliveredTime      time.Time // DELIVERED
	ExecuteTime        time.Time // reached an end state
	IssuedTimes        int       // how many times it was sent (CMD-1, CMD-4)

	// Not in the API.

	Seq         uint64          // position in the device's queue; unique per device, never reused
	Key         string          // supersede key (CMD-10); "" for none
	TaskID      string          // batch task it belongs to (CMD-8); "" for none
	Reason      string          // why the platform ended it (encode error, unreachable, superseded, …)
	ErrCode     int             // errcode of the device's response
	Result      json.RawMessage // the device's response body, nil when none
	Deadline    time.Time       // while SENT/DELIVERED: when it becomes TIMEOUT
	NextTry     time.Time       // while PENDING at the head or SENT: next send attempt; zero = at the next wake-up
	Retransmits int             // retransmissions made since the last send from a wake-up

	// SendAttempt is set, on a PENDING head, in a write made just before
	// Sender.Send is called, and cleared in the write that records the
	// outcome. Found set later, it means the process stopped (or the
	// store refused the write) between the two: the command may have
	// left, and the engine takes it as SENT at that time (CMD-9).
	SendAttempt time.Time
}

// Mid returns the message id that matches the device's response to c
// (CMD-5): derived from Seq, 1..65535, never 0.
func (c *Command) Mid() int { return int(c.Seq%65535) + 1 }

// ExpireAt returns the instant after which c, still PENDING, becomes EXPIRED,
// and after which a SENT c is no longer re-sent on wake-up (CMD-4).
func (c *Command) ExpireAt() time.Time {
	return c.CreationTime.Add(time.Duration(c.ExpireTime) * time.Second)
}

// Due returns the next instant at which the engine must look at c without
// being told anything: expiry or the next send attempt for PENDING, the
// retransmission or timeout for SENT, the timeout for DELIVERED, and the zero
// time for end states. Stores index open commands by it.
func (c *Command) Due() time.Time {
	switch c.Status {
	case Pending:
		return earliest(c.ExpireAt(), c.NextTry)
	case Sent:
		return earliest(c.Deadline, c.NextTry)
	case Delivered:
		return c.Deadline
	}
	return time.Time{}
}

// earliest returns the earlier of a and b, a zero time counting as "never".
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// Move changes c's status to "to" at time now, stamping the time of the
// move (CMD-1), or fails with a *MoveError wrapping ErrBadMove when the
// table does not allow it. A move to SENT counts one more issuedTimes.
func (c *Command) Move(to Status, now time.Time) error {
	if !CanMove(c.Status, to) {
		return &MoveError{ID: c.ID, From: c.Status, To: to}
	}
	c.Status = to
	switch {
	case to == Sent:
		c.PlatformIssuedTime = now
		c.IssuedTimes++
	case to == Delivered:
		c.DeliveredTime = now
	case to.Final():
		c.ExecuteTime = now
		c.Deadline = time.Time{}
		c.NextTry = time.Time{}
	}
	return nil
}

// Clone returns a copy of c that shares no memory with it.
func (c Command) Clone() Command {
	c.Body.Paras = bytes.Clone(c.Body.Paras)
	c.Result = bytes.Clone(c.Result)
	return c
}

// apiCommand is the JSON shape of the API's command answer.
type apiCommand struct {
	CommandID          string  `json:"commandId"`
	AppID              string  `json:"appId"`
	DeviceID           string  `json:"deviceId"`
	Command            Body    `json:"command"`
	CallbackURL        *string `json:"callbackUrl"`
	ExpireTime         int64   `json:"expireTime"`
	Status             Status  `json:"status"`
	CreationTime       *string `json:"creationTime"`
	ExecuteTime        *string `json:"executeTime"`
	PlatformIssuedTime *string `json:"platformIssuedTime"`
	DeliveredTime      *string `json:"deliveredTime"`
	IssuedTimes        int     `json:"issuedTimes"`
	MaxRetransmit      int     `json:"maxRetransmit"`
}

func apiTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := apitime.Format(t)
	return &s
}

func parseAPITime(field string, s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, nil
	}
	t, err := apitime.Parse(*s)
	if err != nil {
		return time.Time{}, &FieldError{Field: field, Value: *s, Rule: "a time yyyyMMdd'T'HHmmss'Z'", Err: ErrBadJSON}
	}
	return t, nil
}

// MarshalJSON writes c as the API's command object: commandId, appId,
// deviceId, command{serviceId, method, paras}, callbackUrl, expireTime,
// status, creationTime, executeTime, platformIssuedTime, deliveredTime,
// issuedTimes, maxRetransmit. Times are UTC yyyyMMdd'T'HHmmss'Z' (second
// precision), null when not reached; callbackUrl is null when absent.
func (c Command) MarshalJSON() ([]byte, error) {
	a := apiCommand{
		CommandID: c.ID, AppID: c.AppID, DeviceID: c.DeviceID, Command: c.Body,
		ExpireTime: c.ExpireTime, Status: c.Status,
		CreationTime: apiTime(c.CreationTime), ExecuteTime: apiTime(c.ExecuteTime),
		PlatformIssuedTime: apiTime(c.PlatformIssuedTime), DeliveredTime: apiTime(c.DeliveredTime),
		IssuedTimes: c.IssuedTimes, MaxRetransmit: c.MaxRetransmit,
	}
	if c.CallbackURL != "" {
		a.CallbackURL = &c.CallbackURL
	}
	if a.Command.Paras == nil {
		a.Command.Paras = json.RawMessage("null")
	}
	return json.Marshal(a)
}

// UnmarshalJSON reads the API's command object written by MarshalJSON. The
// fields that are not in the API stay zero.
func (c *Command) UnmarshalJSON(b []byte) error {
	var a apiCommand
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("%w: command: %v", ErrBadJSON, err)
	}
	var times [4]time.Time
	for i, f := range []struct {
		name string
		v    *string
	}{{"creationTime", a.CreationTime}, {"executeTime", a.ExecuteTime}, {"platformIssuedTime", a.PlatformIssuedTime}, {"deliveredTime", a.DeliveredTime}} {
		t, err := parseAPITime(f.name, f.v)
		if err != nil {
			return err
		}
		times[i] = t
	}
	*c = Command{
		ID: a.CommandID, AppID: a.AppID, DeviceID: a.DeviceID, Body: a.Command,
		ExpireTime: a.ExpireTime, Status: a.Status, MaxRetransmit: a.MaxRetransmit,
		IssuedTimes: a.IssuedTimes, CreationTime: times[0], ExecuteTime: times[1],
		PlatformIssuedTime: times[2], DeliveredTime: times[3],
	}
	if a.CallbackURL != nil {
		c.CallbackURL = *a.CallbackURL
	}
	return nil
}
