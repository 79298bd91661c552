package transport

import (
	"log/slog"
	"strings"
	"sync"
)

// KeyStore gives the pre-shared key of a PSK identity (LWM-1). The identity is
// the device's endpoint name; Key returns ErrUnknownIdentity (possibly
// wrapped) when there is none, which fails the DTLS handshake.
type KeyStore interface {
	Key(identity string) ([]byte, error)
}

// Key is a pre-shared key. It prints as REDACTED in logs.
type Key []byte

// LogValue implements slog.LogValuer.
func (Key) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String hides the key from fmt.
func (Key) String() string { return "REDACTED" }

// MemoryKeyStore is a KeyStore in memory, safe for concurrent use. Identities
// are normalized with NormalizeEndpoint, so "urn:imei:X" and "X" share a key.
type MemoryKeyStore struct {
	mu   sync.RWMutex
	keys map[string][]byte
}

// NewMemoryKeyStore returns an empty MemoryKeyStore.
func NewMemoryKeyStore() *MemoryKeyStore { return &MemoryKeyStore{keys: make(map[string][]byte)} }

// Set stores key for identity.
func (m *MemoryKeyStore) Set(identity string, key []byte) {
	m.mu.Lock()
	m.keys[NormalizeEndpoint(identity)] = append([]byte(nil), key...)
	m.mu.Unlock()
}

// Delete removes identity.
func (m *MemoryKeyStore) Delete(identity string) {
	m.mu.Lock()
	delete(m.keys, NormalizeEndpoint(identity))
	m.mu.Unlock()
}

// Key implements KeyStore.
func (m *MemoryKeyStore) Key(identity string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.keys[NormalizeEndpoint(identity)]
	if !ok {
		return nil, ErrUnknownIdentity
	}
	return k, nil
}

// NormalizeEndpoint maps an endpoint name to the device id (LWM-2):
// "urn:imei:868333030000001" and "868333030000001" are the same device.
// The "urn:imei:" prefix is matched without regard to case.
func NormalizeEndpoint(ep string) string {
	const p = "urn:imei:"
	if len(ep) >= len(p) && strings.EqualFold(ep[:len(p)], p) {
		return ep[len(p):]
	}
	return ep
}
