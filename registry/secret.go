package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// SecretHash is what the registry keeps of an MQTT device's secret (MQT-1,
// §3.8): a random salt followed by SHA-256(salt ‖ secret). The secret
// itself is never stored; it is shown once, to the registering
// application. Like PSK, a SecretHash never prints.
//
// SHA-256 rather than a slow password hash: the secrets the registry
// makes (NewSecret) carry 128 random bits, beyond the reach of a guessing
// attack on a leaked hash, and a slow hash would make every reconnect of
// a fleet of devices cost CPU an attacker could multiply by connecting.
// An application that chooses its own secrets must make them as random.
type SecretHash []byte

// Secret length limits (MQT-1).
const (
	MinSecretLen = 8  // characters
	MaxSecretLen = 64 // characters
	saltLen      = 16
)

// NewSecret returns a secret of 32 hex digits (128 random bits) from
// crypto/rand, for a registration that gives none.
func NewSecret() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

// HashSecret returns the salted hash of secret with a new random salt.
func HashSecret(secret string) SecretHash {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	return hashWithSalt(salt, secret)
}

func hashWithSalt(salt []byte, secret string) SecretHash {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(append(SecretHash(nil), salt...))
}

// Matches reports, in constant time, whether secret is the one h was made
// from. An empty or malformed h matches nothing.
func (h SecretHash) Matches(secret string) bool {
	if len(h) != saltLen+sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(hashWithSalt(h[:saltLen], secret), h) == 1
}

// validSecret checks a secret an application gave: MinSecretLen to
// MaxSecretLen printable ASCII characters, no spaces. Errors never repeat
// the secret.
func validSecret(s string) error {
	if len(s) < MinSecretLen || len(s) > MaxSecretLen {
		return invalid("secret", "", fmt.Sprintf("must be %d to %d characters; got %d", MinSecretLen, MaxSecretLen, len(s)))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return invalid("secret", "", fmt.Sprintf("must be printable ASCII without spaces; character %d is not", i+1))
		}
	}
	return nil
}

// String returns "REDACTED".
func (h SecretHash) String() string { return redacted }

// Format prints "REDACTED" for every verb.
func (h SecretHash) Format(f fmt.State, verb rune) { f.Write([]byte(redacted)) }

// LogValue makes slog print "REDACTED".
func (h SecretHash) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON writes "REDACTED".
func (h SecretHash) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
