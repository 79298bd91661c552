// Package lease keeps what one node knows of the leases it took on rows
// of a store that several nodes share (command's due commands, ota's due
// sub-tasks): the ids it claimed, with when each lease ends by this
// node's clock, measured from before the claim was made.
package lease

import (
	"sync"
	"time"
)

// Set is a node's leases. The zero Set is empty and ready; it is safe for
// concurrent use.
type Set struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// Add records leases on ids, taken at start for d.
func (s *Set) Add(ids []string, start time.Time, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.until == nil {
		s.until = map[string]time.Time{}
	}
	end := start.Add(d)
	for _, id := range ids {
		s.until[id] = end
	}
}

// Drop forgets the leases that ended by now.
func (s *Set) Drop(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, end := range s.until {
		if !now.Before(end) {
			delete(s.until, id)
		}
	}
}

// Holds reports whether the lease on id lasts at least margin beyond now:
// time enough for the write that acts on it to land while the lease still
// stands.
func (s *Set) Holds(id string, now time.Time, margin time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	end, ok := s.until[id]
	return ok && now.Add(margin).Before(end)
}
