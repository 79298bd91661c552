package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// products keeps the catalog, each product's compiled codec and LwM2M
// resource mapping, and the uploaded files in the store so that all come
// back after a restart.
type products struct {
	catalog *profile.Catalog
	files   productStore

	mu       sync.RWMutex
	codecs   map[[2]string]codec.Codec
	mappings map[[2]string]*profile.Mapping
}

// deviceCounter adapts the registry to profile.DeviceCounter: a product is
// locked while devices use it (PRF-7).
type deviceCounter struct{ reg func() *registry.Registry }

var _ profile.DeviceCounter = deviceCounter{}

func (c deviceCounter) CountDevices(manufacturerID, model string) int {
	r := c.reg()
	if r == nil {
		return 0
	}
	_, n, err := r.List(context.Background(), registry.Query{ManufacturerID: manufacturerID, Model: model, PageSize: 1})
	if err != nil {
		return 0
	}
	return n
}

// A codec is checked against the product it comes with (COD-3), command
// responses included.
var (
	_ codec.Model         = profile.CodecModel{}
	_ codec.ResponseModel = profile.CodecModel{}
)

func newProducts(files productStore, counter profile.DeviceCounter) *products {
	return &products{catalog: profile.NewCatalog(counter), files: files, codecs: map[[2]string]codec.Codec{},
		mappings: map[[2]string]*profile.Mapping{}}
}

// upload is what comes with a product: the profile (zip, or the JSON
// model), its optional codec and its optional LwM2M resource mapping.
type upload struct {
	name                    string
	prof, codecJSON, lwmMap []byte
}

// loaded is an upload checked and compiled.
type loaded struct {
	product  *profile.Product
	codec    codec.Codec
	mapping  *profile.Mapping
	warnings []profile.Problem
}

// loadUpload parses a profile (zip, or the JSON model when it starts with "{"),
// its optional codec and mapping, checking both against the profile. It
// stops when ctx ends (the uploading client went away, SEC-3), with an
// error wrapping ctx.Err().
func loadUpload(ctx context.Context, u upload) (loaded, error) {
	p, c, warnings, err := load(ctx, u.name, u.prof, u.codecJSON)
	if err != nil {
		return loaded{}, err
	}
	l := loaded{product: p, codec: c, warnings: warnings}
	if len(u.lwmMap) > 0 {
		m, w, err := profile.LoadMappingContext(ctx, u.lwmMap, p, lwm2mObjects{})
		if err != nil {
			return loaded{}, &mappingError{err}
		}
		l.mapping, l.warnings = m, append(l.warnings, w...)
	}
	return l, nil
}

// mappingError marks a problem of the mapping file, not of the profile.
type mappingError struct{ error }

func (e *mappingError) Unwrap() error { return e.error }

// load parses a profile and its optional codec, checking the codec
// against the profile.
func load(ctx context.Context, name string, prof, codecJSON []byte) (*profile.Product, codec.Codec, []profile.Problem, error) {
	var (
		p        *profile.Product
		warnings []profile.Problem
		err      error
	)
	if bytes.HasPrefix(bytes.TrimSpace(prof), []byte("{")) {
		p, warnings, err = profile.LoadModelJSONContext(ctx, prof, nil)
	} else {
		p, warnings, err = profile.LoadZipContext(ctx, bytes.NewReader(prof), int64(len(prof)), name, nil)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	var c codec.Codec
	if len(codecJSON) > 0 {
		d, err := codec.CompileContext(ctx, codecJSON, p.CodecModel())
		if err != nil {
			return nil, nil, nil, err
		}
		c = d
	}
	return p, c, warnings, nil
}

// Add loads, checks and stores a new product; checking stops when ctx
// ends. It fails with profile.ErrExists when the product is known.
func (ps *products) Add(ctx context.Context, name string, prof, codecJSON []byte) (*profile.Product, []profile.Problem, error) {
	return ps.AddUpload(ctx, upload{name: name, prof: prof, codecJSON: codecJSON})
}

// AddUpload is Add for a product that may come with an LwM2M resource
// mapping (LWM-12).
func (ps *products) AddUpload(ctx context.Context, u upload) (*profile.Product, []profile.Problem, error) {
	l, err := loadUpload(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	p := l.product
	if err := ps.catalog.AddWithCodec(p, u.codecJSON); err != nil {
		return nil, nil, err
	}
	mid, model := p.Key()
	if err := ps.files.Put(store.ProductFiles{ManufacturerID: mid, Model: model, FileName: u.name,
		Profile: u.prof, Codec: u.codecJSON, Mapping: u.lwmMap, Added: time.Now()}); err != nil {
		ps.catalog.Delete(mid, model)
		return nil, nil, fmt.Errorf("storing product %s/%s: %w", mid, model, err)
	}
	ps.set(mid, model, l.codec, l.mapping)
	return p, l.warnings, nil
}

// Delete removes a product no device uses.
func (ps *products) Delete(manufacturerID, model string) error {
	if err := ps.catalog.Delete(manufacturerID, model); err != nil {
		return err
	}
	ps.set(manufacturerID, model, nil, nil)
	return ps.files.Delete(manufacturerID, model)
}

// Reload loads every stored product into the catalog (at start).
func (ps *products) Reload() error {
	all, err := ps.files.All()
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range all {
		l, err := loadUpload(context.Background(), upload{name: f.FileName, prof: f.Profile, codecJSON: f.Codec, lwmMap: f.Mapping})
		if err == nil {
			err = ps.catalog.AddWithCodec(l.product, f.Codec)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stored product %s/%s: %w", f.ManufacturerID, f.Model, err))
			continue
		}
		ps.set(f.ManufacturerID, f.Model, l.codec, l.mapping)
	}
	return errors.Join(errs...)
}

func (ps *products) set(manufacturerID, model string, c codec.Codec, m *profile.Mapping) {
	k := [2]string{manufacturerID, model}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.codecs, k)
	delete(ps.mappings, k)
	if c != nil {
		ps.codecs[k] = c
	}
	if m != nil {
		ps.mappings[k] = m
	}
}

// Codec returns the codec of a product, or nil when it has none.
func (ps *products) Codec(manufacturerID, model string) codec.Codec {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.codecs[[2]string{manufacturerID, model}]
}

// Mapping returns the LwM2M resource mapping of a product, or nil when it
// has none (LWM-12).
func (ps *products) Mapping(manufacturerID, model string) *profile.Mapping {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.mappings[[2]string{manufacturerID, model}]
}
