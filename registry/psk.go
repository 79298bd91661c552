package registry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// PSK is a DTLS pre-shared key. It never prints: String, fmt verbs, slog
// and JSON all show "REDACTED". Use Hex for the one place that must show
// it (the answer to the registering application).
type PSK []byte

// PSK length limits for keys given by the caller (REG-1).
const (
	MinPSKLen = 8  // bytes
	MaxPSKLen = 64 // bytes
	// GeneratedPSKLen is the length of a key the registry makes when the
	// registration gives none.
	GeneratedPSKLen = 16
)

const redacted = "REDACTED"

// NewPSK returns GeneratedPSKLen random bytes from crypto/rand.
func NewPSK() PSK {
	k := make(PSK, GeneratedPSKLen)
	rand.Read(k) // never fails (crypto/rand since Go 1.24)
	return k
}

// ParsePSK parses a key given as hex digits (either case). The key must be
// MinPSKLen to MaxPSKLen bytes. Errors never repeat the input.
func ParsePSK(s string) (PSK, error) {
	const rule = "must be 16 to 128 hex digits (8 to 64 bytes)"
	if len(s)%2 != 0 || len(s) < 2*MinPSKLen || len(s) > 2*MaxPSKLen {
		return nil, invalid("psk", "", fmt.Sprintf("%s; got %d characters", rule, len(s)))
	}
	k := make(PSK, len(s)/2)
	if _, err := hex.Decode(k, []byte(s)); err != nil {
		return nil, invalid("psk", "", rule+"; found a character that is not a hex digit")
	}
	return k, nil
}

func validPSK(k PSK) error {
	if len(k) < MinPSKLen || len(k) > MaxPSKLen {
		return invalid("psk", "", fmt.Sprintf("must be %d to %d bytes; got %d", MinPSKLen, MaxPSKLen, len(k)))
	}
	return nil
}

// Hex returns the key as lower-case hex digits. It is the only way the key
// leaves a PSK as text.
func (k PSK) Hex() string { return hex.EncodeToString(k) }

// String returns "REDACTED".
func (k PSK) String() string { return redacted }

// Format prints "REDACTED" for every verb (%x, %d and %#v included).
func (k PSK) Format(f fmt.State, verb rune) { f.Write([]byte(redacted)) }

// LogValue makes slog print "REDACTED".
func (k PSK) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON writes "REDACTED", so a Device marshalled by accident does
// not leak its key. Build the API answer with Hex.
func (k PSK) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
