package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// keyFile keeps the PSKs of the devices the simulator registered, per
// platform API URL, so that a second run can connect the devices the
// platform already knows (it answers 409 and never shows a key twice).
// The file holds secrets: it is written with mode 0600.
//
//	{"http://127.0.0.1:8743": {"868333030000100": "3f…"}}
type keyFile struct {
	path string // "" keeps nothing
	api  string

	mu    sync.Mutex
	all   map[string]map[string]string // API URL → nodeId → key (hex)
	dirty bool
}

// openKeyFile reads path (a missing file is an empty one) and returns the
// keys of the platform at api.
func openKeyFile(path, api string) (*keyFile, error) {
	k := &keyFile{path: path, api: strings.TrimSuffix(api, "/"), all: map[string]map[string]string{}}
	if path == "" {
		return k, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("-keys %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &k.all); err != nil {
		return nil, fmt.Errorf("-keys %s: not the simulator's key file ({\"<api URL>\": {\"<nodeId>\": \"<hex key>\"}}): %w", path, err)
	}
	if k.all == nil {
		k.all = map[string]map[string]string{}
	}
	return k, nil
}

// key returns the kept key of nodeID, or nil.
func (k *keyFile) key(nodeID string) ([]byte, error) {
	k.mu.Lock()
	h, ok := k.all[k.api][nodeID]
	k.mu.Unlock()
	if !ok {
		return nil, nil
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("-keys %s: the key of %s is not hex: %w", k.path, nodeID, err)
	}
	return b, nil
}

// set keeps key as nodeID's.
func (k *keyFile) set(nodeID string, key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.all[k.api]
	if m == nil {
		m = map[string]string{}
		k.all[k.api] = m
	}
	h := hex.EncodeToString(key)
	if m[nodeID] != h {
		m[nodeID], k.dirty = h, true
	}
}

// save writes the file when a key changed: a new file next to it, then a
// rename, so that an interrupted run leaves the old one whole.
func (k *keyFile) save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.path == "" || !k.dirty {
		return nil
	}
	b, err := json.MarshalIndent(k.all, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(k.path), filepath.Base(k.path)+".*")
	if err != nil {
		return fmt.Errorf("-keys %s: %w", k.path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("-keys %s: %w", k.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("-keys %s: %w", k.path, err)
	}
	if err := os.Rename(tmp.Name(), k.path); err != nil {
		return fmt.Errorf("-keys %s: %w", k.path, err)
	}
	k.dirty = false
	return nil
}
