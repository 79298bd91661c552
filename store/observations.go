package store

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/doze-io/doze/lwm2m/transport"
	bolt "go.etcd.io/bbolt"
)

// Observations is the transport.ObservationStore of a DB: observation tokens
// kept across restarts so that a notification after a restart is still
// understood (LWM-9). Keys: "t" token → observation, and "e" endpoint 0x00
// token → nothing, for the per-endpoint listing, in the top-level bucket
// "observations" (created on the first write).
type Observations struct{ db *DB }

var _ transport.ObservationStore = (*Observations)(nil)

var bucketObservations = []byte("observations")

// Observations returns the observation store of db.
func (db *DB) Observations() *Observations { return &Observations{db: db} }

// obsCacheMax bounds the observations kept in memory (a few hundred bytes
// each); beyond it a lookup reads the file.
const obsCacheMax = 250_000

// obsCache keeps the observations read by token: every notification of a
// device looks its token up, and observations change only when one is made
// or ends. A lookup that raced a change is not kept (gen).
type obsCache struct {
	mu  sync.Mutex
	gen uint64 // bumped by every change, after its commit
	m   map[string]transport.Observation
}

func (c *obsCache) get(token string) (transport.Observation, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.m[token]
	return o, c.gen, ok
}

// keep stores o read at generation gen, unless something changed since.
func (c *obsCache) keep(o transport.Observation, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || len(c.m) >= obsCacheMax {
		return
	}
	if c.m == nil {
		c.m = map[string]transport.Observation{}
	}
	c.m[o.Token] = o
}

// changed forgets token after a change to it was committed (or failed).
func (c *obsCache) changed(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, token)
}

func obsBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	if tx.Writable() {
		return tx.CreateBucketIfNotExists(bucketObservations)
	}
	if b := tx.Bucket(bucketObservations); b != nil {
		return b, nil
	}
	return nil, nil
}

func obsTokenKey(token string) []byte { return append([]byte("t"), token...) }

func obsEndpointKey(endpoint, token string) []byte {
	return append(append(append([]byte("e"), endpoint...), 0), token...)
}

// PutObservation stores o, replacing one with the same token.
func (s *Observations) PutObservation(o transport.Observation) error {
	v, err := json.Marshal(o)
	if err != nil {
		return err
	}
	defer s.db.obs.changed(o.Token)
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := obsBucket(tx)
		if err != nil {
			return err
		}
		if old := b.Get(obsTokenKey(o.Token)); old != nil {
			var prev transport.Observation
			if json.Unmarshal(old, &prev) == nil {
				b.Delete(obsEndpointKey(prev.Endpoint, prev.Token))
			}
		}
		if err := b.Put(obsTokenKey(o.Token), v); err != nil {
			return err
		}
		return b.Put(obsEndpointKey(o.Endpoint, o.Token), nil)
	})
}

// Observation returns the observation with token, or transport.ErrNotFound.
func (s *Observations) Observation(token string) (transport.Observation, error) {
	o, gen, ok := s.db.obs.get(token)
	if ok {
		return o, nil
	}
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		b, _ := obsBucket(tx)
		var v []byte
		if b != nil {
			v = b.Get(obsTokenKey(token))
		}
		if v == nil {
			return fmt.Errorf("store: observation %s: %w", token, transport.ErrNotFound)
		}
		return json.Unmarshal(v, &o)
	})
	if err == nil {
		s.db.obs.keep(o, gen)
	}
	return o, err
}

// DeleteObservation removes the observation with token.
func (s *Observations) DeleteObservation(token string) error {
	defer s.db.obs.changed(token)
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := obsBucket(tx)
		if err != nil {
			return err
		}
		v := b.Get(obsTokenKey(token))
		if v == nil {
			return nil
		}
		var o transport.Observation
		if err := json.Unmarshal(v, &o); err == nil {
			b.Delete(obsEndpointKey(o.Endpoint, o.Token))
		}
		return b.Delete(obsTokenKey(token))
	})
}

// Observations returns the endpoint's observations, oldest first.
func (s *Observations) Observations(endpoint string) ([]transport.Observation, error) {
	var out []transport.Observation
	prefix := obsEndpointKey(endpoint, "")
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		b, _ := obsBucket(tx)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			var o transport.Observation
			if err := json.Unmarshal(b.Get(obsTokenKey(string(k[len(prefix):]))), &o); err != nil {
				return fmt.Errorf("store: observation %x: %w", k, err)
			}
			out = append(out, o)
		}
		return nil
	})
	// Oldest first.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Created.Before(out[j-1].Created); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, err
}
