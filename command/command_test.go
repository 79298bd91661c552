package command

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sample() Command {
	return Command{
		ID: "c0ffee", AppID: "app1", DeviceID: "dev1",
		Body:        Body{ServiceID: "Switch", Method: "SET", Paras: json.RawMessage(`{"on":1}`)},
		CallbackURL: "https://app.example:8443/cb", ExpireTime: 172800, MaxRetransmit: 3,
		Status: Delivered, CreationTime: base, PlatformIssuedTime: at(61 * s), DeliveredTime: at(62 * s),
		IssuedTimes: 2, Seq: 9, Key: "k", Reason: "not in JSON",
	}
}

// TestCommandJSON: the API's command answer, field for field (docs/api.md).
func TestCommandJSON(t *testing.T) {
	b, err := json.Marshal(sample())
	require.NoError(t, err)
	require.JSONEq(t, `{"commandId":"c0ffee","appId":"app1","deviceId":"dev1",
		"command":{"serviceId":"Switch","method":"SET","paras":{"on":1}},
		"callbackUrl":"https://app.example:8443/cb","expireTime":172800,"status":"DELIVERED",
		"creationTime":"20261125T120000Z","executeTime":null,"platformIssuedTime":"20261125T120101Z",
		"deliveredTime":"20261125T120102Z","issuedTimes":2,"maxRetransmit":3}`, string(b))

	var back Command
	require.NoError(t, json.Unmarshal(b, &back))
	want := sample()
	want.Seq, want.Key, want.Reason = 0, "", ""
	require.Equal(t, want, back, "API fields survive a round trip")

	c := Command{ID: "x", DeviceID: "d", Status: Pending}
	b, err = json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, `{"commandId":"x","appId":"","deviceId":"d","command":{"serviceId":"","method":"","paras":null},
		"callbackUrl":null,"expireTime":0,"status":"PENDING","creationTime":null,"executeTime":null,
		"platformIssuedTime":null,"deliveredTime":null,"issuedTimes":0,"maxRetransmit":0}`, string(b))

	var bad Command
	err = json.Unmarshal([]byte(`{"creationTime":"2026-11-25"}`), &bad)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "creationTime", fe.Field)
	require.ErrorIs(t, json.Unmarshal([]byte(`{"status":"DONE"}`), &bad), ErrBadJSON)
}

// TestNotificationJSON: the CMD-6 body, exactly.
func TestNotificationJSON(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Command)
		want string
	}{
		{"delivered", func(c *Command) {}, `{"deviceId":"dev1","commandId":"c0ffee","result":{"resultCode":"DELIVERED","resultDetail":null}}`},
		{"success with device body", func(c *Command) {
			c.Status, c.Result = Successful, json.RawMessage(`{"result":0,"level":3}`)
		}, `{"deviceId":"dev1","commandId":"c0ffee","result":{"resultCode":"SUCCESSFUL","resultDetail":{"result":0,"level":3}}}`},
		{"failed by device", func(c *Command) {
			c.Status, c.Result, c.Reason = Failed, json.RawMessage(`{"errcode":5}`), "device reported errcode 5"
		}, `{"deviceId":"dev1","commandId":"c0ffee","result":{"resultCode":"FAILED","resultDetail":{"errcode":5}}}`},
		{"failed by encoder", func(c *Command) {
			c.Status, c.Reason = Failed, `command: encode failed: field "on"`
		}, `{"deviceId":"dev1","commandId":"c0ffee","result":{"resultCode":"FAILED","resultDetail":{"reason":"command: encode failed: field \"on\""}}}`},
		{"expired", func(c *Command) {
			c.Status, c.Reason = Expired, "not sent within expireTime 172800 s"
		}, `{"deviceId":"dev1","commandId":"c0ffee","result":{"resultCode":"EXPIRED","resultDetail":{"reason":"not sent within expireTime 172800 s"}}}`},
		{"sent", func(c *Command) { c.Status = Sent }, `{"deviceId":"dev1","commandId":"c0ffee","result":{"resultCode":"SENT","resultDetail":null}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := sample()
			tc.mut(&c)
			b, err := json.Marshal(c.Notification())
			require.NoError(t, err)
			require.Equal(t, tc.want, string(b))
		})
	}
}

// TestNotificationValueJSON: a Notification built directly (as the
// platform or a test would) encodes the CMD-6 shape; a nil ResultDetail is
// null. (These cases were push.CommandResult's, which repeated this type.)
func TestNotificationValueJSON(t *testing.T) {
	tests := []struct {
		name string
		n    Notification
		want string
	}{
		{"command callback (CMD-6)", Notification{DeviceID: "d1", CommandID: "c1", Result: Result{ResultCode: "SUCCESSFUL", ResultDetail: json.RawMessage(`{"result":0}`)}},
			`{"deviceId":"d1","commandId":"c1","result":{"resultCode":"SUCCESSFUL","resultDetail":{"result":0}}}`},
		{"command callback null detail", Notification{DeviceID: "d1", CommandID: "c1", Result: Result{ResultCode: "SENT"}},
			`{"deviceId":"d1","commandId":"c1","result":{"resultCode":"SENT","resultDetail":null}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.n)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
			require.True(t, json.Valid(got))
		})
	}
}

func TestDue(t *testing.T) {
	c := sample()
	c.ExpireTime = 3600
	tests := []struct {
		name string
		mut  func(*Command)
		want time.Time
	}{
		{"pending waits for expiry", func(c *Command) { c.Status = Pending }, at(3600 * s)},
		{"pending head tried earlier", func(c *Command) { c.Status, c.NextTry = Pending, at(5*s) }, at(5 * s)},
		{"pending next try after expiry", func(c *Command) { c.Status, c.NextTry = Pending, at(9000*s) }, at(3600 * s)},
		{"sent: retransmission first", func(c *Command) { c.Status, c.Deadline, c.NextTry = Sent, at(300*s), at(10*s) }, at(10 * s)},
		{"sent: deadline", func(c *Command) { c.Status, c.Deadline = Sent, at(300*s) }, at(300 * s)},
		{"delivered: deadline only", func(c *Command) { c.Status, c.Deadline, c.NextTry = Delivered, at(300*s), at(1*s) }, at(300 * s)},
		{"ended: never", func(c *Command) { c.Status = Successful }, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c
			tc.mut(&c)
			require.Equal(t, tc.want, c.Due())
		})
	}
	c.Seq = 65535
	require.Equal(t, 1, c.Mid(), "mids wrap to 1, never 0")
	c.Seq = 1
	require.Equal(t, 2, c.Mid())
}

// FuzzCommandJSON: reading any bytes as a command never panics, and what
// was read is written back and read again unchanged.
func FuzzCommandJSON(f *testing.F) {
	b, _ := json.Marshal(sample())
	f.Add(b)
	f.Add([]byte(`{"commandId":"x","status":"PENDING","creationTime":null}`))
	f.Add([]byte(`{"creationTime":"20260101T000000Z","command":{"paras":[1]}}`))
	f.Add([]byte(`{"status":"DONE"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Command
		if err := json.Unmarshal(data, &c); err != nil {
			return
		}
		if c.Status != 0 && !c.Status.Valid() {
			t.Fatalf("read invalid status %v", c.Status)
		}
		if c.Status == 0 {
			c.Status = Pending
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", c, err)
		}
		var again Command
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("Unmarshal(%s): %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if string(out) != string(out2) {
			t.Fatalf("round trip changed\n%s\n%s", out, out2)
		}
	})
}
