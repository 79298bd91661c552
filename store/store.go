package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Top-level buckets, one per package (docs/architecture.md "Storage"). Each file of
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

var allBuckets = [][]byte{bucketRegistry, bucketCommands, bucketPush, bucketOTA, bucketHistory, bucketShadow, bucketProducts, bucketLwM2MOps}

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

	group groupCommit // see DB.commit
	obs   obsCache    // observations by token (observations.go)
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
		err = db.commit(func(tx *bolt.Tx) error {
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

// Synced reports whether every commit is synced to disk before it
// returns: true unless the file was opened with Options.NoSync.
func (db *DB) Synced() bool { return !db.bolt.NoSync }

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
		return closed(err)
	}
	return errors.Join(errs...)
}

// commit runs fn in a write transaction shared with the writes that queue
// up while another commit is on its way to disk: group commit without a
// timer. Every write of this package goes through it (the package doc
// says why). A writer that finds no commit running commits at once (no
// MaxBatchDelay wait, unlike bolt.Batch); writers arriving meanwhile
// queue, and the first of them leads the next commit, carrying all of them
// in one transaction and one fsync. If one fn fails, the transaction is
// rolled back, that fn runs alone to get its own error, and the others
// are committed without it. So fn may run more than once and must not
// have effects outside tx (or must reset them when it starts).
func (db *DB) commit(fn func(*bolt.Tx) error) error {
	return db.group.do(db.bolt, fn)
}

type groupCommit struct {
	mu    sync.Mutex
	busy  bool
	queue []*groupCall
}

type groupCall struct {
	fn   func(*bolt.Tx) error
	err  chan error    // the result
	lead chan struct{} // "you lead the next commit"
}

func (g *groupCommit) do(b *bolt.DB, fn func(*bolt.Tx) error) error {
	c := &groupCall{fn: fn, err: make(chan error, 1), lead: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.busy {
		g.mu.Unlock()
		select {
		case err := <-c.err:
			return result(err)
		case <-c.lead:
		}
		g.mu.Lock()
	}
	g.busy = true
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()

	runBatch(b, batch)

	g.mu.Lock()
	if len(g.queue) > 0 {
		g.queue[0].lead <- struct{}{}
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return result(<-c.err)
}

// result returns a write's error, or panics again, in the goroutine whose
// fn panicked (as bolt.Batch does), whether or not it led the commit. It
// reports a closed file as ErrClosed.
func result(err error) error {
	if p, ok := err.(panicked); ok {
		panic(p.reason)
	}
	return closed(err)
}

// closed turns bbolt's "database not open" into ErrClosed.
func closed(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w (%v)", ErrClosed, err)
	}
	return err
}

// panicked carries a panic of a write's fn back to its caller.
type panicked struct{ reason any }

func (p panicked) Error() string { return fmt.Sprintf("store: write panicked: %v", p.reason) }

func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicked{p}
		}
	}()
	return fn(tx)
}

// runBatch commits the calls together, taking out (and running alone) any
// call whose fn fails.
func runBatch(b *bolt.DB, batch []*groupCall) {
	for len(batch) > 0 {
		failed := -1
		err := b.Update(func(tx *bolt.Tx) error {
			for i, c := range batch {
				if err := safely(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range batch {
				c.err <- err // nil, or the commit's own error for all
			}
			return
		}
		c := batch[failed]
		c.err <- b.Update(func(tx *bolt.Tx) error { return safely(c.fn, tx) })
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}
