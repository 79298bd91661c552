package command

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func i64(v int64) *int64 { return &v }
func iptr(v int) *int    { return &v }

func goodRequest() Request {
	return Request{DeviceID: "dev1", Command: Body{ServiceID: "Switch", Method: "SET", Paras: json.RawMessage(`{"on":1}`)}}
}

var requestCases = []struct {
	name  string
	mut   func(r *Request)
	field string // "" when valid
}{
	{"valid minimal", func(r *Request) {}, ""},
	{"valid full", func(r *Request) {
		r.CallbackURL, r.ExpireTime, r.MaxRetransmit, r.AppID = "https://10.0.0.1:8443/cb?x=1", i64(0), iptr(3), "app"
	}, ""},
	{"valid http no port", func(r *Request) { r.CallbackURL = "http://app.example/cb" }, ""},
	{"valid paras with spaces", func(r *Request) { r.Command.Paras = json.RawMessage(" {\"a\" : []} ") }, ""},
	{"no device", func(r *Request) { r.DeviceID = "" }, "deviceId"},
	{"device control char", func(r *Request) { r.DeviceID = "a\nb" }, "deviceId"},
	{"device too long", func(r *Request) { r.DeviceID = strings.Repeat("d", 257) }, "deviceId"},
	{"no serviceId", func(r *Request) { r.Command.ServiceID = "" }, "command.serviceId"},
	{"no method", func(r *Request) { r.Command.Method = "" }, "command.method"},
	{"paras absent", func(r *Request) { r.Command.Paras = nil }, "command.paras"},
	{"paras null", func(r *Request) { r.Command.Paras = json.RawMessage(`null`) }, "command.paras"},
	{"paras empty object", func(r *Request) { r.Command.Paras = json.RawMessage(`{ }`) }, "command.paras"},
	{"paras array", func(r *Request) { r.Command.Paras = json.RawMessage(`[1]`) }, "command.paras"},
	{"paras broken", func(r *Request) { r.Command.Paras = json.RawMessage(`{"a":`) }, "command.paras"},
	{"expireTime negative", func(r *Request) { r.ExpireTime = i64(-1) }, "expireTime"},
	{"expireTime above 30 days", func(r *Request) { r.ExpireTime = i64(2592001) }, "expireTime"},
	{"maxRetransmit 4", func(r *Request) { r.MaxRetransmit = iptr(4) }, "maxRetransmit"},
	{"maxRetransmit -1", func(r *Request) { r.MaxRetransmit = iptr(-1) }, "maxRetransmit"},
	{"callback not a URL", func(r *Request) { r.CallbackURL = "::nope" }, "callbackUrl"},
	{"callback ftp", func(r *Request) { r.CallbackURL = "ftp://a/b" }, "callbackUrl"},
	{"callback relative", func(r *Request) { r.CallbackURL = "/cb" }, "callbackUrl"},
	{"callback no host", func(r *Request) { r.CallbackURL = "https:///cb" }, "callbackUrl"},
	{"callback port 0", func(r *Request) { r.CallbackURL = "https://a:0/cb" }, "callbackUrl"},
	{"callback port 70000", func(r *Request) { r.CallbackURL = "https://a:70000/cb" }, "callbackUrl"},
	{"callback user info", func(r *Request) { r.CallbackURL = "https://u:p@a/cb" }, "callbackUrl"},
	{"supersede key control char", func(r *Request) { r.SupersedeKey = "\x00" }, "supersedeKey"},
}

// TestRequestValidate: CMD-2's rules, each broken once, each error naming
// the field.
func TestRequestValidate(t *testing.T) {
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			r := goodRequest()
			tc.mut(&r)
			err := r.validate(2592000)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *FieldError
			require.ErrorAs(t, err, &fe, "validate(%+v)", r)
			require.ErrorIs(t, err, ErrInvalid)
			require.Equal(t, tc.field, fe.Field, "error %q names the wrong field", err)
			require.Contains(t, err.Error(), "must be", "the error says what is allowed")
		})
	}
}

// FuzzRequest: any JSON body decoded into a Request validates without
// panicking, and a valid one has a non-empty object for paras.
func FuzzRequest(f *testing.F) {
	for _, tc := range requestCases {
		r := goodRequest()
		tc.mut(&r)
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		if json.Unmarshal(data, &r) != nil {
			return
		}
		if err := r.validate(2592000); err != nil {
			var fe *FieldError
			if !errorsAs(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(r.Command.Paras, &m) != nil || len(m) == 0 {
			t.Fatalf("accepted paras %q", r.Command.Paras)
		}
	})
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
