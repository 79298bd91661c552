package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/jackc/pgx/v5"
)

// Observations is the transport.ObservationStore on PostgreSQL: one row per
// token in "observations", indexed by endpoint and creation time, so a
// device's observations are found by any node it shows up at (CLU-3).
// The interface takes no context; each call uses context.Background.
type Observations struct{ db *DB }

var _ transport.ObservationStore = (*Observations)(nil)

// Observations returns the observation store of db.
func (db *DB) Observations() *Observations { return &Observations{db: db} }

// PutObservation implements transport.ObservationStore.
func (s *Observations) PutObservation(o transport.Observation) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = s.db.pool.Exec(context.Background(), `INSERT INTO observations (token, endpoint, created, rec) VALUES ($1, $2, $3, $4)
		ON CONFLICT (token) DO UPDATE SET endpoint = excluded.endpoint, created = excluded.created, rec = excluded.rec`,
		o.Token, o.Endpoint, nanos(o.Created), b)
	return err
}

// Observation implements transport.ObservationStore.
func (s *Observations) Observation(token string) (transport.Observation, error) {
	var b []byte
	err := s.db.pool.QueryRow(context.Background(), "SELECT rec FROM observations WHERE token = $1", token).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return transport.Observation{}, fmt.Errorf("store/postgres: observation %q: %w", token, transport.ErrNotFound)
	}
	if err != nil {
		return transport.Observation{}, err
	}
	var o transport.Observation
	return o, json.Unmarshal(b, &o)
}

// DeleteObservation implements transport.ObservationStore.
func (s *Observations) DeleteObservation(token string) error {
	_, err := s.db.pool.Exec(context.Background(), "DELETE FROM observations WHERE token = $1", token)
	return err
}

// Observations implements transport.ObservationStore.
func (s *Observations) Observations(endpoint string) ([]transport.Observation, error) {
	return listRecs[transport.Observation](context.Background(), s.db,
		"SELECT rec FROM observations WHERE endpoint = $1 ORDER BY created NULLS FIRST, token", endpoint)
}
