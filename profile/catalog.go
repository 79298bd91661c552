package profile

import (
	"fmt"
	"sort"
	"sync"
)

// DeviceCounter tells the catalog how many devices are registered against
// a product, so that products in use are locked (PRF-7, §8.6). The device
// registry implements it (through a small adapter in the platform).
type DeviceCounter interface {
	CountDevices(manufacturerID, model string) int
}

// Catalog holds products keyed by (manufacturerId, model) (PRF-7). It is
// safe for concurrent use. Products it holds are shared read-only: do not
// modify a Product after adding it.
//
// The catalog lives in memory; a platform that must keep products across
// restarts stores the uploaded zips and loads them again at start.
type Catalog struct {
	devices DeviceCounter

	mu       sync.RWMutex
	products map[catalogKey]entryOf
}

// entryOf is a product with the codec it was imported with (§8.9).
type entryOf struct {
	product *Product
	codec   []byte
}

type catalogKey struct{ manufacturerID, model string }

// NewCatalog returns an empty catalog. devices is asked before a product
// is replaced or deleted; nil means no product is ever in use.
func NewCatalog(devices DeviceCounter) *Catalog {
	return &Catalog{devices: devices, products: map[catalogKey]entryOf{}}
}

// Add adds p. A product with the same (manufacturerId, model) fails with
// an error wrapping ErrExists (§8.4). A product built by hand or decoded
// from JSON gets its lookup index here, so add it before sharing it.
func (c *Catalog) Add(p *Product) error { return c.AddWithCodec(p, nil) }

// AddWithCodec adds p together with the codec document that ships with it
// (§8.9, PRF-7): both are added, replaced and deleted as one. The catalog
// keeps the bytes as given (it does not read codecs); Codec returns them.
func (c *Catalog) AddWithCodec(p *Product, codec []byte) error {
	if err := checkKey(p); err != nil {
		return err
	}
	p.buildIndex()
	k := catalogKey{p.ManufacturerID, p.Model}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.products[k]; ok {
		return fmt.Errorf("%w: manufacturerId %q and model %q are taken; delete that product first or change manufacturerId or model", ErrExists, p.ManufacturerID, p.Model)
	}
	c.products[k] = entryOf{p, codec}
	return nil
}

// Codec returns the codec document the product was added or replaced
// with; ok is false when the product is unknown or has none.
func (c *Catalog) Codec(manufacturerID, model string) (codec []byte, ok bool) {
	c.mu.RLock()
	e, found := c.products[catalogKey{manufacturerID, model}]
	c.mu.RUnlock()
	return e.codec, found && e.codec != nil
}

// Get returns the product with the given key, or an error wrapping
// ErrNotFound.
func (c *Catalog) Get(manufacturerID, model string) (*Product, error) {
	c.mu.RLock()
	e, ok := c.products[catalogKey{manufacturerID, model}]
	c.mu.RUnlock()
	if !ok {
		return nil, notFound(manufacturerID, model)
	}
	return e.product, nil
}

// Exists reports whether the catalog holds the product. It satisfies the
// registry's Products interface.
func (c *Catalog) Exists(manufacturerID, model string) bool {
	c.mu.RLock()
	_, ok := c.products[catalogKey{manufacturerID, model}]
	c.mu.RUnlock()
	return ok
}

// List returns every product, ordered by manufacturerId then model.
func (c *Catalog) List() []*Product {
	c.mu.RLock()
	out := make([]*Product, 0, len(c.products))
	for _, e := range c.products {
		out = append(out, e.product)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].ManufacturerID != out[j].ManufacturerID {
			return out[i].ManufacturerID < out[j].ManufacturerID
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// Replace swaps in p for the product with the same key. It fails with
// ErrNotFound when there is none, and with a *LockedError (ErrLocked) when
// devices are registered against it (§8.6).
//
// The device count is read once, under the catalog's lock; a device
// registered at that very moment is not seen. The registry should check
// Exists when it registers, and the platform may serialise both.
func (c *Catalog) Replace(p *Product) error { return c.ReplaceWithCodec(p, nil) }

// ReplaceWithCodec is Replace for a product that ships a codec: the two
// are swapped in together, under the same lock rule.
func (c *Catalog) ReplaceWithCodec(p *Product, codec []byte) error {
	if err := checkKey(p); err != nil {
		return err
	}
	p.buildIndex()
	k := catalogKey{p.ManufacturerID, p.Model}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.products[k]; !ok {
		return notFound(p.ManufacturerID, p.Model)
	}
	if err := c.locked(k); err != nil {
		return err
	}
	c.products[k] = entryOf{p, codec}
	return nil
}

// Delete removes a product and its codec. It fails with ErrNotFound when there is none
// and with a *LockedError while devices use it: delete the devices first
// (PRF-7).
func (c *Catalog) Delete(manufacturerID, model string) error {
	k := catalogKey{manufacturerID, model}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.products[k]; !ok {
		return notFound(manufacturerID, model)
	}
	if err := c.locked(k); err != nil {
		return err
	}
	delete(c.products, k)
	return nil
}

func (c *Catalog) locked(k catalogKey) error {
	if c.devices == nil {
		return nil
	}
	if n := c.devices.CountDevices(k.manufacturerID, k.model); n > 0 {
		return &LockedError{ManufacturerID: k.manufacturerID, Model: k.model, Devices: n}
	}
	return nil
}

func checkKey(p *Product) error {
	if p == nil || p.ManufacturerID == "" || p.Model == "" {
		return fmt.Errorf("%w: a product needs a manufacturerId and a model", ErrInvalid)
	}
	return nil
}

func notFound(manufacturerID, model string) error {
	return fmt.Errorf("%w: no product with manufacturerId %q and model %q", ErrNotFound, manufacturerID, model)
}
