package ota

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Files holds package contents by package id. The engine reads blocks
// through the io.ReaderAt it returns and closes it (when it is an
// io.Closer) once the package is deleted or the engine closes.
type Files interface {
	Open(id string) (io.ReaderAt, error)
}

// Dir keeps package contents as files in a directory, one file per package
// named after its id. It is safe for concurrent use.
type Dir string

// Put writes r to the file of id, through a temporary file renamed into
// place, and returns the size written.
func (d Dir) Put(id string, r io.Reader) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(string(d), ".upload-*")
	if err != nil {
		return 0, fmt.Errorf("ota: store package %s: %w", id, err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(string(d), id))
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, fmt.Errorf("ota: store package %s: %w", id, err)
	}
	return n, nil
}

// Open opens the file of id.
func (d Dir) Open(id string) (io.ReaderAt, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(string(d), id))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("%w: content of package %s", ErrNotFound, id)
	}
	return f, err
}

// Remove deletes the file of id.
func (d Dir) Remove(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return os.Remove(filepath.Join(string(d), id))
}

func checkID(id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id || id[0] == '.' {
		return fieldErr("fileId", "%q cannot name a file: allowed a non-empty name without slashes or a leading dot", id)
	}
	return nil
}

// MemFiles keeps package contents in memory, for tests and examples.
type MemFiles struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Put stores b as the content of id.
func (m *MemFiles) Put(id string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string][]byte{}
	}
	m.m[id] = b
}

// Open returns the content of id.
func (m *MemFiles) Open(id string) (io.ReaderAt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.m[id]
	if !ok {
		return nil, fmt.Errorf("%w: content of package %s", ErrNotFound, id)
	}
	return bytes.NewReader(b), nil
}
