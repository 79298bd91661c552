package registry

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Input limits (REG-1, and our choice where the rules are silent).
const (
	MaxNodeIDLen    = 256 // characters (REG-1)
	MaxFieldLen     = 256 // characters, for verifyCode and every deviceInfo field (our choice)
	MaxGroupNameLen = 64  // characters (our choice)
)

// checkText checks a text field: at most max characters, valid UTF-8, no
// control characters; required fields must not be empty; ids (nodeId,
// verifyCode) must not contain spaces either. secret keeps the value out of
// the error.
func checkText(field, v string, max int, required, id, secret bool) error {
	shown := v
	if secret {
		shown = ""
	}
	n := utf8.RuneCountInString(v)
	switch {
	case n == 0 && required:
		return invalid(field, "", "must not be empty")
	case n > max:
		return invalid(field, shown, fmt.Sprintf("must be at most %d characters; got %d", max, n))
	case !utf8.ValidString(v):
		return invalid(field, "", fmt.Sprintf("must be valid UTF-8; found an invalid byte at byte %d", invalidAt(v)))
	}
	for i, c := range v {
		if !unicode.IsPrint(c) || id && unicode.IsSpace(c) {
			what := "control or unprintable characters"
			if id {
				what = "spaces, control or unprintable characters"
			}
			return invalid(field, shown, fmt.Sprintf("must not contain %s; found %U at byte %d", what, c, i))
		}
	}
	return nil
}

// invalidAt returns the offset of the first byte of v that does not start
// a valid UTF-8 sequence, or -1.
func invalidAt(v string) int {
	for i, c := range v {
		if c == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(v[i:]); size == 1 {
				return i
			}
		}
	}
	return -1
}

func checkNodeID(nodeID string) error {
	if err := checkText("nodeId", nodeID, MaxNodeIDLen, true, true, false); err != nil {
		return err
	}
	key := NodeKey(nodeID)
	if key == "" {
		return invalid("nodeId", nodeID, `must have something after "urn:imei:"`)
	}
	if NodeKey(key) != key {
		// "urn:imei:urn:imei:X" would be stored under "urn:imei:X", which
		// GetByNodeID reads as "X": the device could not be found.
		return invalid("nodeId", nodeID, `must not repeat the "urn:imei:" prefix`)
	}
	return nil
}

func checkTimeout(t time.Duration) error {
	if t < 0 || t > MaxTimeout {
		// The API gives seconds: repeat the value in seconds, not as
		// a Duration ("596523h14m8s" for 2147483648).
		return invalid("timeout", strconv.FormatFloat(t.Seconds(), 'f', -1, 64), "must be 0 (never expires) to 2147483647 seconds")
	}
	return nil
}

// checkInfo checks deviceInfo: required fields, lengths, and that the
// product exists.
func (r *Registry) checkInfo(in *Info) error {
	var errs []error
	fields := []struct {
		name     string
		v        string
		required bool
	}{
		{"deviceInfo.manufacturerId", in.ManufacturerID, true},
		{"deviceInfo.manufacturerName", in.ManufacturerName, false},
		{"deviceInfo.deviceType", in.DeviceType, true},
		{"deviceInfo.model", in.Model, true},
		{"deviceInfo.protocolType", in.ProtocolType, true},
		{"deviceInfo.name", in.Name, false},
		{"deviceInfo.swVersion", in.SWVersion, false},
		{"deviceInfo.fwVersion", in.FWVersion, false},
		{"deviceInfo.mode", in.Mode, false},
	}
	for _, f := range fields {
		if err := checkText(f.name, f.v, MaxFieldLen, f.required, false, false); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && !r.products.Exists(in.ManufacturerID, in.Model) {
		errs = append(errs, &FieldError{
			Field: "deviceInfo", Value: in.ManufacturerID + "/" + in.Model,
			Rule: "manufacturerId/model must name a product of the catalog", Err: ErrUnknownProduct,
		})
	}
	return joinErrs(errs)
}

func checkNodeType(t NodeType) error {
	if t != Endpoint && t != Gateway {
		return invalid("nodeType", string(t), "must be ENDPOINT or GATEWAY")
	}
	return nil
}

func checkQuery(q *Query) error {
	var errs []error
	if q.Status != "" && !q.Status.Valid() {
		errs = append(errs, invalid("status", string(q.Status), "must be INACTIVE, ONLINE, OFFLINE or ABNORMAL"))
	}
	if q.NodeType != "" {
		if err := checkNodeType(q.NodeType); err != nil {
			errs = append(errs, err)
		}
	}
	if q.PageNo < 0 {
		errs = append(errs, invalid("pageNo", fmt.Sprint(q.PageNo), "must be 0 (the first page) or more"))
	}
	if q.PageSize < 0 {
		errs = append(errs, invalid("pageSize", fmt.Sprint(q.PageSize), "must be 0 (no paging) or more"))
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		errs = append(errs, invalid("startTime/endTime", q.From.Format(time.RFC3339)+"/"+q.To.Format(time.RFC3339), "the start must be before the end"))
	}
	return joinErrs(errs)
}

// joinErrs returns nil, the one error, or all of them joined.
func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}
