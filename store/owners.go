package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Owners records which application owns each resource that is not a
// device (a device's owner is registry.Device.AppID): groups, products,
// upgrade packages and tasks, bootstrap configurations (APP-3). A
// resource is named by a kind ("group", "product", …) and its id; both
// are opaque here.
//
// Layout: the top-level bucket "owners" (created on the first write)
// holds two sub-buckets:
//
//	res  kind | id → appId
//	app  appId | kind | id → ""    the resources of an application
//
// and "done": names of one-time migrations that have run.
type Owners struct {
	db *DB
}

// Owners returns the resource-ownership view of db.
func (db *DB) Owners() *Owners { return &Owners{db: db} }

var (
	bucketOwners = []byte("owners")
	obRes        = []byte("res")
	obApp        = []byte("app")
	obDone       = []byte("done")
)

// MaxOwnerKey bounds a kind, id or appId in bytes.
const MaxOwnerKey = 1024

func checkOwnerKey(what, s string) error {
	if s == "" || len(s) > MaxOwnerKey || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("store: owners: %s %q must be 1 to %d bytes without NUL", what, s, MaxOwnerKey)
	}
	return nil
}

func (o *Owners) view(ctx context.Context, fn func(res, app, done *bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closed(o.db.bolt.View(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketOwners)
		if top == nil {
			return nil
		}
		return fn(top.Bucket(obRes), top.Bucket(obApp), top.Bucket(obDone))
	}))
}

func (o *Owners) update(ctx context.Context, fn func(res, app, done *bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return o.db.commit(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketOwners)
		if err != nil {
			return err
		}
		var bs [3]*bolt.Bucket
		for i, name := range [][]byte{obRes, obApp, obDone} {
			if bs[i], err = top.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return fn(bs[0], bs[1], bs[2])
	})
}

// set makes app the owner of kind/id, replacing any other owner.
func setOwner(res, app *bolt.Bucket, kind, id, appID string) error {
	k := key(kind, id)
	if old := res.Get(k); old != nil {
		if err := app.Delete(key(string(old), kind, id)); err != nil {
			return err
		}
	}
	if err := res.Put(k, []byte(appID)); err != nil {
		return err
	}
	return app.Put(key(appID, kind, id), nil)
}

// Claim makes appID the owner of kind/id unless it has one, and returns
// the owner it has after the call: appID, or the application that owned
// it before.
func (o *Owners) Claim(ctx context.Context, kind, id, appID string) (string, error) {
	for _, c := range [][2]string{{"kind", kind}, {"id", id}, {"appId", appID}} {
		if err := checkOwnerKey(c[0], c[1]); err != nil {
			return "", err
		}
	}
	var owner string
	err := o.update(ctx, func(res, app, _ *bolt.Bucket) error {
		if v := res.Get(key(kind, id)); v != nil {
			owner = string(v)
			return nil
		}
		owner = appID
		return setOwner(res, app, kind, id, appID)
	})
	return owner, err
}

// Set makes appID the owner of kind/id, replacing any owner it had.
func (o *Owners) Set(ctx context.Context, kind, id, appID string) error {
	for _, c := range [][2]string{{"kind", kind}, {"id", id}, {"appId", appID}} {
		if err := checkOwnerKey(c[0], c[1]); err != nil {
			return err
		}
	}
	return o.update(ctx, func(res, app, _ *bolt.Bucket) error { return setOwner(res, app, kind, id, appID) })
}

// Owner returns the owner of kind/id, "" when it has none.
func (o *Owners) Owner(ctx context.Context, kind, id string) (string, error) {
	var owner string
	err := o.view(ctx, func(res, _, _ *bolt.Bucket) error {
		owner = string(res.Get(key(kind, id)))
		return nil
	})
	return owner, err
}

// Delete forgets the owner of kind/id; nothing happens when it has none.
func (o *Owners) Delete(ctx context.Context, kind, id string) error {
	return o.update(ctx, func(res, app, _ *bolt.Bucket) error {
		k := key(kind, id)
		old := res.Get(k)
		if old == nil {
			return nil
		}
		if err := app.Delete(key(string(old), kind, id)); err != nil {
			return err
		}
		return res.Delete(k)
	})
}

// IDs returns the ids of appID's resources of kind, in byte order.
func (o *Owners) IDs(ctx context.Context, appID, kind string) ([]string, error) {
	var out []string
	err := o.view(ctx, func(_, app, _ *bolt.Bucket) error {
		out = nil
		pre := prefix(appID, kind)
		c := app.Cursor()
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			out = append(out, string(k[len(pre):]))
		}
		return nil
	})
	return out, err
}

// Done reports whether the one-time migration name has run.
func (o *Owners) Done(ctx context.Context, name string) (bool, error) {
	done := false
	err := o.view(ctx, func(_, _, d *bolt.Bucket) error {
		done = d.Get([]byte(name)) != nil
		return nil
	})
	return done, err
}

// MarkDone records that the one-time migration name has run.
func (o *Owners) MarkDone(ctx context.Context, name string) error {
	return o.update(ctx, func(_, _, d *bolt.Bucket) error { return d.Put([]byte(name), []byte{1}) })
}
