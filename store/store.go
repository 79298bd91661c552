package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Top-level buckets, one per package (DESIGN.md "Storage"). Each file of
// this package keeps its keys inside its own bucket.
var (
	bucketRegistry = []byte("registry")
	bucketCommands = []byte("commands")
	bucketPush     = []byte("push")
	bucketOTA      = []byte("ota")
	bucketHistory  = []byte("history")
	bucketShadow   = []byte("shadow")
	bucketProducts = []byte("products")
)

var allBuckets = [][]byte{bucketRegistry, bucketCommands, bucketPush, bucketOTA, bucketHistory, bucketShadow, bucketProducts}

// Options configures Open. The zero value (or nil) is ready to use.
type Options struct {
	// LockTimeout bounds the wait for the file lock held by another
	// process. 0 means 1s.
	LockTimeout time.Duration
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash
	// may then lose acknowledged writes.
	NoSync bool
	// ReadOnly opens the file without write access (for inspection tools).
	ReadOnly bool
}

// DB is one open bbolt file holding the data of every Doze package. It is
// safe for concurrent use. The typed stores (Registry, …) are views on it.
type DB struct {
	bolt *bolt.DB
	path string
}

// Open opens (creating when absent) the bbolt file at path and makes sure
// every package's bucket exists. A file that is not a bbolt file fails with
// ErrNotDB; a file locked by another process fails with ErrLocked after
// Options.LockTimeout.
func Open(path string, opts *Options) (*DB, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = time.Second
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        o.LockTimeout,
		NoSync:         o.NoSync,
		ReadOnly:       o.ReadOnly,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, &OpenError{Path: path, Err: ErrLocked}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, &OpenError{Path: path, Err: fmt.Errorf("%w (%v)", ErrNotDB, err)}
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, os.ErrPermission):
		return nil, &OpenError{Path: path, Err: err}
	case err != nil:
		// bbolt reports a short or garbled file in several ways
		// (mmap size, page errors); all mean "not a bbolt file".
		return nil, &OpenError{Path: path, Err: fmt.Errorf("%w (%v)", ErrNotDB, err)}
	}
	db := &DB{bolt: b, path: path}
	if !o.ReadOnly {
		err = b.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return initRegistry(tx)
		})
		if err != nil {
			b.Close()
			return nil, &OpenError{Path: path, Err: err}
		}
	}
	return db, nil
}

// Close closes the file. It is safe to call more than once.
func (db *DB) Close() error {
	if db == nil || db.bolt == nil {
		return nil
	}
	return db.bolt.Close()
}

// Path returns the file's path.
func (db *DB) Path() string { return db.path }

// Check runs bbolt's consistency check over the whole file and returns every
// problem it finds joined into one error, or nil.
func (db *DB) Check() error {
	var errs []error
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}
