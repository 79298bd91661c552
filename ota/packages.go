package ota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// newID returns 16 random hex digits.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AddPackage records a package whose content is already in Files under
// p.ID. It reads the content once to set Size, Digest and CheckCode; p.Size
// must be set unless the content's reader knows its size (Size() or
// Stat()). An id already used fails with ErrInvalid.
func (e *Engine) AddPackage(ctx context.Context, p Package) (Package, error) {
	if p.ID == "" {
		p.ID = newID()
	}
	if err := p.Validate(); err != nil {
		return Package{}, err
	}
	if _, err := e.st.Package(ctx, p.ID); err == nil {
		return Package{}, fieldErr("fileId", "%q is already used by another package", p.ID)
	} else if !errors.Is(err, ErrNotFound) {
		return Package{}, err
	}
	r, err := e.files.Open(p.ID)
	if err != nil {
		return Package{}, err
	}
	defer closeReader(r)
	if n := sizeOf(r); p.Size == 0 {
		p.Size = n
	} else if n > 0 && n != p.Size {
		return Package{}, fieldErr("size", "%d, but the content of package %s has %d bytes", p.Size, p.ID, n)
	}
	if p.Size <= 0 {
		return Package{}, fieldErr("size", "package %s is empty or its size is unknown; set Package.Size", p.ID)
	}
	if err := p.Validate(); err != nil {
		return Package{}, err
	}
	if p.Digest, p.CheckCode, err = Summarize(r, p.Size); err != nil {
		return Package{}, err
	}
	if p.BlockSize == 0 {
		p.BlockSize = DefaultBlockSize
	}
	if p.Created.IsZero() {
		p.Created = time.Now()
	}
	if err := e.st.PutPackage(ctx, p); err != nil {
		return Package{}, err
	}
	return p, nil
}

func sizeOf(r io.ReaderAt) int64 {
	switch v := r.(type) {
	case interface{ Size() int64 }:
		return v.Size()
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil {
			return fi.Size()
		}
	}
	return 0
}

// Package returns a package.
func (e *Engine) Package(ctx context.Context, id string) (Package, error) {
	return e.st.Package(ctx, id)
}

// Packages returns every package.
func (e *Engine) Packages(ctx context.Context) ([]Package, error) { return e.st.Packages(ctx) }

// DeletePackage removes a package's record; ErrPackageInUse while an
// unfinished task uses it. The caller removes the content from Files.
func (e *Engine) DeletePackage(ctx context.Context, id string) error {
	if err := e.ready(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tasks {
		if t.PackageID == id {
			return fmt.Errorf("%w: package %s, task %s", ErrPackageInUse, id, t.ID)
		}
	}
	if err := e.st.DeletePackage(ctx, id); err != nil {
		return err
	}
	if c := e.contents[id]; c != nil {
		closeReader(c.R)
		delete(e.contents, id)
	}
	return nil
}

// Content returns a package with its bytes, for serving blocks.
func (e *Engine) Content(ctx context.Context, pkgID string) (*Content, error) {
	return e.content(ctx, pkgID)
}

// Block2 serves block num (size exponent szx) of a package's content as
// CoAP Block2 with ETag and Size2 (OTA-7). The lwm2m server mounts it
// at Config.FirmwareURI through an adapter.
func (e *Engine) Block2(ctx context.Context, pkgID string, num uint32, szx int) (data []byte, more bool, etag []byte, size2 int64, err error) {
	c, err := e.content(ctx, pkgID)
	if err != nil {
		return nil, false, nil, 0, err
	}
	return c.Block2(num, szx)
}
