package command

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// Request asks for a new command (CMD-2). Its JSON tags are those of the
// API's POST deviceCommands body, so the platform can decode the body into
// it directly.
type Request struct {
	// AppID is the application that creates the command (from the
	// caller's token, not from the body).
	AppID    string `json:"appId,omitempty"`
	DeviceID string `json:"deviceId"`
	Command  Body   `json:"command"`
	// CallbackURL receives the CMD-6 notifications; "" for none.
	CallbackURL string `json:"callbackUrl,omitempty"`
	// ExpireTime is how many seconds the command may wait in PENDING.
	// nil means Config.DefaultExpireTime (172800 s = 48 h, FAQ §4.7); 0
	// means deliver now or fail (CMD-2).
	ExpireTime *int64 `json:"expireTime,omitempty"`
	// MaxRetransmit is how many times a SENT command is retransmitted
	// while no ACK comes, 0..3. nil means 0.
	MaxRetransmit *int `json:"maxRetransmit,omitempty"`
	// SupersedeKey (ours, CMD-10): a newer command with the same key
	// cancels the device's PENDING commands with that key. "" for none.
	SupersedeKey string `json:"supersedeKey,omitempty"`
}

// Limits on request fields.
const (
	MaxIDLen       = 256  // deviceId, serviceId, method, supersedeKey, appId
	MaxURLLen      = 1024 // callbackUrl
	MaxParasLen    = 64 << 10
	MaxRetransmits = 3
)

func short(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

func invalid(field, value, rule string) error {
	return &FieldError{Field: field, Value: value, Rule: rule, Err: ErrInvalid}
}

func checkID(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalid(field, `""`, "present and non-empty")
	case len(v) > MaxIDLen:
		return invalid(field, short(v), "at most 256 bytes")
	case !utf8.ValidString(v):
		return invalid(field, short(v), "valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return invalid(field, short(v), "free of control characters")
		}
	}
	return nil
}

// validate checks r against CMD-2 and returns the first broken rule as a
// *FieldError. maxExpire bounds expireTime.
func (r *Request) validate(maxExpire int64) error {
	if err := checkID("appId", r.AppID, false); err != nil {
		return err
	}
	if err := checkID("deviceId", r.DeviceID, true); err != nil {
		return err
	}
	if err := checkID("command.serviceId", r.Command.ServiceID, true); err != nil {
		return err
	}
	if err := checkID("command.method", r.Command.Method, true); err != nil {
		return err
	}
	if err := checkParas(r.Command.Paras); err != nil {
		return err
	}
	if r.ExpireTime != nil && (*r.ExpireTime < 0 || *r.ExpireTime > maxExpire) {
		return invalid("expireTime", strconv.FormatInt(*r.ExpireTime, 10), "0 (deliver now) to "+strconv.FormatInt(maxExpire, 10)+" seconds")
	}
	if r.MaxRetransmit != nil && (*r.MaxRetransmit < 0 || *r.MaxRetransmit > MaxRetransmits) {
		return invalid("maxRetransmit", strconv.Itoa(*r.MaxRetransmit), "0 to 3")
	}
	if err := checkID("supersedeKey", r.SupersedeKey, false); err != nil {
		return err
	}
	return checkCallbackURL(r.CallbackURL)
}

// checkParas enforces PRF-9 / FAQ §7.1: paras is present and a non-empty
// JSON object.
func checkParas(p json.RawMessage) error {
	if len(p) > MaxParasLen {
		return invalid("command.paras", strconv.Itoa(len(p))+" bytes", "at most 65536 bytes")
	}
	t := bytes.TrimSpace(p)
	if len(t) == 0 || t[0] != '{' {
		return invalid("command.paras", short(string(p)), "a non-empty JSON object (FAQ §7.1: paras is required even when the command needs none)")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(t, &m); err != nil {
		return invalid("command.paras", short(string(p)), "valid JSON ("+err.Error()+")")
	}
	if len(m) == 0 {
		return invalid("command.paras", "{}", "a non-empty JSON object (FAQ §7.1: paras is required even when the command needs none)")
	}
	return nil
}

// checkCallbackURL checks that u, when given, is an absolute http or https
// URL with a host. Whether its host and port match the application's
// subscriptions is the platform's check (Config.CheckCallback).
func checkCallbackURL(u string) error {
	if u == "" {
		return nil
	}
	if len(u) > MaxURLLen {
		return invalid("callbackUrl", short(u), "at most 1024 bytes")
	}
	p, err := url.Parse(u)
	if err != nil {
		return invalid("callbackUrl", short(u), "a well-formed URL ("+err.Error()+")")
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return invalid("callbackUrl", short(u), "an http:// or https:// URL")
	}
	if p.Hostname() == "" {
		return invalid("callbackUrl", short(u), "a URL with a host")
	}
	if port := p.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return invalid("callbackUrl", short(u), "a URL whose port is 1..65535")
		}
	}
	if p.User != nil {
		return invalid("callbackUrl", short(u), "a URL without user information")
	}
	return nil
}
