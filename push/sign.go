package push

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names (PSH-5, PSH-7).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Secret is a subscription's signing key. Two forms are accepted:
// "whsec_<base64>" (the Standard Webhooks form; the key is the decoded
// bytes) and anything else, used as raw key bytes. An empty Secret means
// pushes are not signed. Secret prints and logs as REDACTED.
type Secret string

// String returns "REDACTED" (or "" for no secret), so a Secret never lands in a log.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Key returns the HMAC key: the base64-decoded part after "whsec_", or the
// raw bytes of s. A whsec_ secret that does not decode, or an empty key,
// is ErrSecret.
func (s Secret) Key() ([]byte, error) {
	if rest, ok := strings.CutPrefix(string(s), "whsec_"); ok {
		k, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: the part after whsec_ is not standard base64: %v", ErrSecret, err)
		}
		if len(k) == 0 {
			return nil, fmt.Errorf("%w: empty key after whsec_", ErrSecret)
		}
		return k, nil
	}
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrSecret)
	}
	return []byte(s), nil
}

// Sign returns the webhook-signature value for a push: "v1," followed by the
// base64 HMAC-SHA256 of "<id>.<unix seconds>.<body>" (Standard Webhooks).
func Sign(s Secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := s.Key()
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks the Standard Webhooks headers of a received push: the
// timestamp must be within tolerance of now, and one of the space-separated
// v1 signatures must match. Receivers (and tests) use it; it returns an
// error wrapping ErrSignature that says what did not match.
func Verify(s Secret, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := s.Key()
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s, %s or %s header", ErrSignature, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not unix seconds", ErrSignature, HeaderTimestamp, tsText)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %v away from now, more than %v", ErrSignature, unix, d, tolerance)
	}
	want := mac(key, id, unix, body)
	for _, sig := range strings.Fields(sigs) {
		v, b64, ok := strings.Cut(sig, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches for id %s", ErrSignature, id)
}
