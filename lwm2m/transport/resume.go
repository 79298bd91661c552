package transport

import (
	"encoding/json"
	"errors"
	"sync"

	"github.com/pion/dtls/v3"
)

// SessionStore keeps DTLS sessions so that a device that dropped its DTLS
// state while asleep can resume its session by ID with an abbreviated
// handshake (RFC 5246 §7.3: one round trip less, no key exchange on the
// module) — issue 20 item 9. The server stores a session after each full
// handshake and deletes it after a fatal alert. A value holds the session's
// master secret: store it as carefully as the PSKs. A durable store lets
// sessions outlive a restart of the server. A resumed session is accepted
// only while the identity's key is the one it was made with.
//
// Implementations must be safe for concurrent use. GetSession returns
// ErrNotFound when there is none.
type SessionStore interface {
	PutSession(id, value []byte) error
	GetSession(id []byte) ([]byte, error)
	DeleteSession(id []byte) error
}

// MemorySessionStore is a SessionStore in memory holding at most a fixed
// number of sessions; the oldest goes first. Safe for concurrent use.
type MemorySessionStore struct {
	mu    sync.Mutex
	max   int
	m     map[string][]byte
	order []string
}

// NewMemorySessionStore returns an empty MemorySessionStore that holds up
// to max sessions (max ≤ 0 means 100,000).
func NewMemorySessionStore(max int) *MemorySessionStore {
	if max <= 0 {
		max = 100000
	}
	return &MemorySessionStore{max: max, m: make(map[string][]byte)}
}

// PutSession implements SessionStore.
func (s *MemorySessionStore) PutSession(id, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := string(id)
	if _, ok := s.m[k]; !ok {
		for len(s.m) >= s.max && len(s.order) > 0 {
			delete(s.m, s.order[0])
			s.order = s.order[1:]
		}
		s.order = append(s.order, k)
	}
	s.m[k] = append([]byte(nil), value...)
	return nil
}

// GetSession implements SessionStore.
func (s *MemorySessionStore) GetSession(id []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(id)]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

// DeleteSession implements SessionStore; the ID stays in the eviction
// order until its turn, which costs nothing but a string.
func (s *MemorySessionStore) DeleteSession(id []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(id))
	return nil
}

// Len returns the number of sessions held.
func (s *MemorySessionStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// pionSessions adapts a SessionStore to pion's; values are pion's Session
// in JSON.
type pionSessions struct{ st SessionStore }

func (p pionSessions) Set(key []byte, s dtls.Session) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return p.st.PutSession(key, b)
}

// Get returns the zero Session when there is none or it does not decode:
// pion then does a full handshake.
func (p pionSessions) Get(key []byte) (dtls.Session, error) {
	var s dtls.Session
	b, err := p.st.GetSession(key)
	if errors.Is(err, ErrNotFound) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if json.Unmarshal(b, &s) != nil {
		return dtls.Session{}, nil
	}
	return s, nil
}

func (p pionSessions) Del(key []byte) error { return p.st.DeleteSession(key) }
