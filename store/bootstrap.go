package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	bolt "go.etcd.io/bbolt"
)

// bucketBootstrap keeps each device's bootstrap configuration (LWM-13):
// what the LwM2M bootstrap server writes to the device. It is created by
// the first Put, so files written before it existed open unchanged.
var bucketBootstrap = []byte("bootstrap")

// BootstrapConfig is one device's bootstrap configuration, keyed by its
// nodeId (normalized: "urn:imei:X" and "X" are one device).
type BootstrapConfig struct {
	NodeID       string `json:"nodeId"`
	ServerURI    string `json:"serverUri"`             // coaps://host:port or coap://host:port
	SecurityMode string `json:"securityMode"`          // "psk" or "none": how the device reaches that server
	PSKIdentity  string `json:"pskIdentity,omitempty"` // "" means the nodeId
	// PSK is the key written for that server; nil means the device's
	// own PSK in the registry, read at each bootstrap.
	PSK      []byte `json:"psk,omitempty"`
	Lifetime int64  `json:"lifetime"` // registration lifetime in seconds
	Binding  string `json:"binding"`  // "U" or "UQ"
	// BootstrapPSK is the key the device proves itself with to the
	// bootstrap server; nil means its own PSK in the registry (or plain
	// CoAP for a device registered without security).
	BootstrapPSK []byte    `json:"bootstrapPsk,omitempty"`
	Updated      time.Time `json:"updated"`
	// LastBootstrap and LastResult tell how the device's last bootstrap
	// ended: "ok", or what went wrong.
	LastBootstrap time.Time `json:"lastBootstrap,omitzero"`
	LastResult    string    `json:"lastResult,omitempty"`
}

// Bootstrap is the bootstrap view of a DB: one record per device.
type Bootstrap struct{ db *DB }

// Bootstrap returns the bootstrap view of db.
func (db *DB) Bootstrap() *Bootstrap { return &Bootstrap{db: db} }

func bootstrapKey(nodeID string) []byte { return []byte(transport.NormalizeEndpoint(nodeID)) }

// Put stores (or replaces) a device's bootstrap configuration.
func (b *Bootstrap) Put(c BootstrapConfig) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: bootstrap %s: %w", c.NodeID, err)
	}
	return b.db.commit(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketBootstrap)
		if err != nil {
			return err
		}
		return bk.Put(bootstrapKey(c.NodeID), v)
	})
}

// Get returns the bootstrap configuration of nodeID, or an error wrapping
// transport.ErrNotFound.
func (b *Bootstrap) Get(nodeID string) (BootstrapConfig, error) {
	var c BootstrapConfig
	err := b.db.bolt.View(func(tx *bolt.Tx) error {
		var v []byte
		if bk := tx.Bucket(bucketBootstrap); bk != nil {
			v = bk.Get(bootstrapKey(nodeID))
		}
		if v == nil {
			return fmt.Errorf("store: bootstrap configuration of %q: %w", nodeID, transport.ErrNotFound)
		}
		return json.Unmarshal(v, &c)
	})
	return c, closed(err)
}

// Delete removes the bootstrap configuration of nodeID; an absent one is
// an error wrapping transport.ErrNotFound.
func (b *Bootstrap) Delete(nodeID string) error {
	return b.db.commit(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketBootstrap)
		if bk == nil || bk.Get(bootstrapKey(nodeID)) == nil {
			return fmt.Errorf("store: bootstrap configuration of %q: %w", nodeID, transport.ErrNotFound)
		}
		return bk.Delete(bootstrapKey(nodeID))
	})
}
