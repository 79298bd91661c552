package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ProductFiles is what was uploaded for one product: the profile (zip or
// model JSON, as uploaded) and the codec JSON that came with it (PRF-7:
// products that ship a codec are imported together with it).
type ProductFiles struct {
	ManufacturerID string    `json:"manufacturerId"`
	Model          string    `json:"model"`
	FileName       string    `json:"fileName"`
	Profile        []byte    `json:"profile"`
	Codec          []byte    `json:"codec,omitempty"`
	Mapping        []byte    `json:"mapping,omitempty"` // LwM2M resource mapping (LWM-12)
	Added          time.Time `json:"added"`
}

// Products is the products view of a DB: the uploaded files of every
// product, keyed by manufacturerId 0x00 model, so the platform reloads its
// catalog after a restart.
type Products struct{ db *DB }

// Products returns the products view of db.
func (db *DB) Products() *Products { return &Products{db: db} }

func productKey(manufacturerID, model string) []byte {
	return []byte(manufacturerID + "\x00" + model)
}

// Put stores (or replaces) a product's files.
func (p *Products) Put(f ProductFiles) error {
	v, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("store: product %s/%s: %w", f.ManufacturerID, f.Model, err)
	}
	return p.db.commit(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProducts).Put(productKey(f.ManufacturerID, f.Model), v)
	})
}

// Delete removes a product's files; deleting an absent product is not an error.
func (p *Products) Delete(manufacturerID, model string) error {
	return p.db.commit(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProducts).Delete(productKey(manufacturerID, model))
	})
}

// All returns every stored product in key order.
func (p *Products) All() ([]ProductFiles, error) {
	var out []ProductFiles
	err := p.db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProducts).ForEach(func(k, v []byte) error {
			var f ProductFiles
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("store: product %q: %w", k, err)
			}
			out = append(out, f)
			return nil
		})
	})
	return out, err
}
