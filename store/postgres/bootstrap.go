package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/store"
	"github.com/jackc/pgx/v5"
)

// Bootstrap is the bootstrap view of a DB (LWM-13): one row of "bootstrap"
// per device, with the method set of store.Bootstrap.
type Bootstrap struct{ db *DB }

// Bootstrap returns the bootstrap view of db.
func (db *DB) Bootstrap() *Bootstrap { return &Bootstrap{db: db} }

// Put stores (or replaces) a device's bootstrap configuration.
func (b *Bootstrap) Put(c store.BootstrapConfig) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store/postgres: bootstrap %s: %w", c.NodeID, err)
	}
	_, err = b.db.pool.Exec(context.Background(), `INSERT INTO bootstrap (node_id, rec) VALUES ($1, $2)
		ON CONFLICT (node_id) DO UPDATE SET rec = excluded.rec`, transport.NormalizeEndpoint(c.NodeID), v)
	return err
}

// Get returns the bootstrap configuration of nodeID, or an error wrapping
// transport.ErrNotFound.
func (b *Bootstrap) Get(nodeID string) (store.BootstrapConfig, error) {
	var v []byte
	var c store.BootstrapConfig
	err := b.db.pool.QueryRow(context.Background(), "SELECT rec FROM bootstrap WHERE node_id = $1", transport.NormalizeEndpoint(nodeID)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("store/postgres: bootstrap configuration of %q: %w", nodeID, transport.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(v, &c)
}

// Delete removes the bootstrap configuration of nodeID; an absent one is
// an error wrapping transport.ErrNotFound.
func (b *Bootstrap) Delete(nodeID string) error {
	tag, err := b.db.pool.Exec(context.Background(), "DELETE FROM bootstrap WHERE node_id = $1", transport.NormalizeEndpoint(nodeID))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store/postgres: bootstrap configuration of %q: %w", nodeID, transport.ErrNotFound)
	}
	return nil
}
