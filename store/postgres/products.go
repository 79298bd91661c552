package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/doze-io/doze/store"
)

// Products is the products view of a DB: the uploaded files of every
// product, one row of "products" per manufacturer id and model, so every
// node loads the same catalog.
type Products struct{ db *DB }

// Products returns the products view of db.
func (db *DB) Products() *Products { return &Products{db: db} }

// Put stores (or replaces) a product's files.
func (p *Products) Put(f store.ProductFiles) error {
	v, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("store/postgres: product %s/%s: %w", f.ManufacturerID, f.Model, err)
	}
	_, err = p.db.pool.Exec(context.Background(), `INSERT INTO products (manufacturer_id, model, rec) VALUES ($1, $2, $3)
		ON CONFLICT (manufacturer_id, model) DO UPDATE SET rec = excluded.rec`, f.ManufacturerID, f.Model, v)
	return err
}

// Delete removes a product's files; deleting an absent product is not an error.
func (p *Products) Delete(manufacturerID, model string) error {
	_, err := p.db.pool.Exec(context.Background(), "DELETE FROM products WHERE manufacturer_id = $1 AND model = $2", manufacturerID, model)
	return err
}

// All returns every stored product ordered by manufacturer id, then model.
func (p *Products) All() ([]store.ProductFiles, error) {
	return listRecs[store.ProductFiles](context.Background(), p.db, "SELECT rec FROM products ORDER BY manufacturer_id, model")
}
