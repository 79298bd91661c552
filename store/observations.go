package store

import (
	"encoding/json"
	"fmt"

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
	var o transport.Observation
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
	return o, err
}

// DeleteObservation removes the observation with token.
func (s *Observations) DeleteObservation(token string) error {
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
