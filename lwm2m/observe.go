package lwm2m

import (
	"encoding/hex"
	"sort"
	"sync"
	"time"
)

// Observation is one observe relationship the server holds with a device:
// the token it chose, the endpoint and the observed path. It is stored so
// that notifications arriving after a server restart are still understood
// (LWM-9).
type Observation struct {
	Token    string // hex of the CoAP token
	Endpoint string // normalized endpoint name
	Path     string // "/19/0/0", "/t/d", …
	Created  time.Time
}

// ObservationStore keeps observations by token. Implementations must be safe
// for concurrent use; lwm2mtest.RunObservationStore is the conformance suite.
type ObservationStore interface {
	// PutObservation stores o, replacing one with the same token.
	PutObservation(o Observation) error
	// Observation returns the observation with token, or ErrNotFound.
	Observation(token string) (Observation, error)
	// DeleteObservation removes the observation with token; a missing one is
	// not an error.
	DeleteObservation(token string) error
	// Observations returns the endpoint's observations, oldest first.
	Observations(endpoint string) ([]Observation, error)
}

// MemoryObservationStore is an ObservationStore in memory.
type MemoryObservationStore struct {
	mu sync.RWMutex
	m  map[string]Observation
}

// NewMemoryObservationStore returns an empty MemoryObservationStore.
func NewMemoryObservationStore() *MemoryObservationStore {
	return &MemoryObservationStore{m: make(map[string]Observation)}
}

// PutObservation implements ObservationStore.
func (s *MemoryObservationStore) PutObservation(o Observation) error {
	s.mu.Lock()
	s.m[o.Token] = o
	s.mu.Unlock()
	return nil
}

// Observation implements ObservationStore.
func (s *MemoryObservationStore) Observation(token string) (Observation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.m[token]
	if !ok {
		return Observation{}, ErrNotFound
	}
	return o, nil
}

// DeleteObservation implements ObservationStore.
func (s *MemoryObservationStore) DeleteObservation(token string) error {
	s.mu.Lock()
	delete(s.m, token)
	s.mu.Unlock()
	return nil
}

// Observations implements ObservationStore.
func (s *MemoryObservationStore) Observations(endpoint string) ([]Observation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Observation
	for _, o := range s.m {
		if o.Endpoint == endpoint {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Token < out[j].Token
	})
	return out, nil
}

func tokenKey(tok []byte) string { return hex.EncodeToString(tok) }

func hexToken(s string) ([]byte, error) { return hex.DecodeString(s) }
