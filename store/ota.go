package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/doze-io/doze/ota"
	bolt "go.etcd.io/bbolt"
)

// OTA is the bbolt implementation of ota.Store, a view on the DB. Inside
// the "ota" bucket it keeps three buckets: packages (id → JSON), tasks
// (id → JSON) and subtasks (task id, 0x00, device id → JSON), so that a
// task's sub-tasks are one prefix scan ordered by device id. Sub-task
// writes, which many devices make at once, share commits (DB.commit).
type OTA struct{ db *DB }

var _ ota.Store = (*OTA)(nil)

// OTA returns the ota.Store of the file.
func (db *DB) OTA() *OTA { return &OTA{db: db} }

var (
	otaPackages = []byte("packages")
	otaTasks    = []byte("tasks")
	otaSubTasks = []byte("subtasks")
)

// otaBucket returns (creating in writable transactions) a sub-bucket of
// "ota"; in a read transaction it may return nil when nothing was written.
func otaBucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	top := tx.Bucket(bucketOTA)
	if top == nil {
		return nil, fmt.Errorf("store: bucket %q is missing", bucketOTA)
	}
	if !tx.Writable() {
		return top.Bucket(name), nil
	}
	return top.CreateBucketIfNotExists(name)
}

func subKey(taskID, deviceID string) []byte {
	k := make([]byte, 0, len(taskID)+1+len(deviceID))
	k = append(k, taskID...)
	k = append(k, 0)
	return append(k, deviceID...)
}

func (o *OTA) put(name, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s %q: %w", name, key, err)
	}
	fn := func(tx *bolt.Tx) error {
		bk, err := otaBucket(tx, name)
		if err != nil {
			return err
		}
		return bk.Put(key, b)
	}
	return o.db.commit(fn)
}

func (o *OTA) get(name, key []byte, what string, v any) error {
	return o.db.bolt.View(func(tx *bolt.Tx) error {
		bk, err := otaBucket(tx, name)
		if err != nil {
			return err
		}
		var b []byte
		if bk != nil {
			b = bk.Get(key)
		}
		if b == nil {
			return fmt.Errorf("%w: %s %q", ota.ErrNotFound, what, key)
		}
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("store: decode %s %q: %w", what, key, err)
		}
		return nil
	})
}

// list decodes every value under prefix of bucket name with each.
func (o *OTA) list(name, prefix []byte, each func([]byte) error) error {
	return o.db.bolt.View(func(tx *bolt.Tx) error {
		bk, err := otaBucket(tx, name)
		if err != nil || bk == nil {
			return err
		}
		c := bk.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := each(v); err != nil {
				return fmt.Errorf("store: decode %s %q: %w", name, k, err)
			}
		}
		return nil
	})
}

// PutPackage implements ota.Store.
func (o *OTA) PutPackage(_ context.Context, p ota.Package) error {
	return o.put(otaPackages, []byte(p.ID), p)
}

// Package implements ota.Store.
func (o *OTA) Package(_ context.Context, id string) (ota.Package, error) {
	var p ota.Package
	err := o.get(otaPackages, []byte(id), "package", &p)
	return p, err
}

// Packages implements ota.Store.
func (o *OTA) Packages(context.Context) ([]ota.Package, error) {
	var out []ota.Package
	err := o.list(otaPackages, nil, func(b []byte) error {
		var p ota.Package
		err := json.Unmarshal(b, &p)
		out = append(out, p)
		return err
	})
	return out, err
}

// DeletePackage implements ota.Store.
func (o *OTA) DeletePackage(_ context.Context, id string) error {
	return o.db.commit(func(tx *bolt.Tx) error {
		bk, err := otaBucket(tx, otaPackages)
		if err != nil {
			return err
		}
		if bk.Get([]byte(id)) == nil {
			return fmt.Errorf("%w: package %q", ota.ErrNotFound, id)
		}
		return bk.Delete([]byte(id))
	})
}

// PutTask implements ota.Store: the task and its sub-tasks in one
// transaction.
func (o *OTA) PutTask(_ context.Context, t ota.Task, subs []ota.SubTask) error {
	tb, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("store: encode task %q: %w", t.ID, err)
	}
	sbs := make([][]byte, len(subs))
	for i, s := range subs {
		if s.TaskID != t.ID {
			return fmt.Errorf("%w: sub-task %s does not belong to task %q", ota.ErrInvalid, s.ID(), t.ID)
		}
		if sbs[i], err = json.Marshal(s); err != nil {
			return fmt.Errorf("store: encode sub-task %s: %w", s.ID(), err)
		}
	}
	return o.db.commit(func(tx *bolt.Tx) error {
		tk, err := otaBucket(tx, otaTasks)
		if err != nil {
			return err
		}
		if err := tk.Put([]byte(t.ID), tb); err != nil {
			return err
		}
		sk, err := otaBucket(tx, otaSubTasks)
		if err != nil {
			return err
		}
		for i, s := range subs {
			if err := sk.Put(subKey(s.TaskID, s.DeviceID), sbs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Task implements ota.Store.
func (o *OTA) Task(_ context.Context, id string) (ota.Task, error) {
	var t ota.Task
	err := o.get(otaTasks, []byte(id), "task", &t)
	return t, err
}

// Tasks implements ota.Store.
func (o *OTA) Tasks(context.Context) ([]ota.Task, error) {
	var out []ota.Task
	err := o.list(otaTasks, nil, func(b []byte) error {
		var t ota.Task
		err := json.Unmarshal(b, &t)
		out = append(out, t)
		return err
	})
	return out, err
}

// PutSubTask implements ota.Store; concurrent calls share a commit.
func (o *OTA) PutSubTask(_ context.Context, s ota.SubTask) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("store: encode sub-task %s: %w", s.ID(), err)
	}
	return o.db.commit(func(tx *bolt.Tx) error {
		tk, err := otaBucket(tx, otaTasks)
		if err != nil {
			return err
		}
		if tk.Get([]byte(s.TaskID)) == nil {
			return fmt.Errorf("%w: task %q of sub-task %s", ota.ErrNotFound, s.TaskID, s.ID())
		}
		sk, err := otaBucket(tx, otaSubTasks)
		if err != nil {
			return err
		}
		return sk.Put(subKey(s.TaskID, s.DeviceID), b)
	})
}

// SubTask implements ota.Store.
func (o *OTA) SubTask(_ context.Context, taskID, deviceID string) (ota.SubTask, error) {
	var s ota.SubTask
	err := o.get(otaSubTasks, subKey(taskID, deviceID), "sub-task", &s)
	return s, err
}

// SubTasks implements ota.Store.
func (o *OTA) SubTasks(ctx context.Context, taskID string) ([]ota.SubTask, error) {
	if _, err := o.Task(ctx, taskID); err != nil {
		return nil, err
	}
	out := []ota.SubTask{}
	err := o.list(otaSubTasks, subKey(taskID, ""), func(b []byte) error {
		var s ota.SubTask
		err := json.Unmarshal(b, &s)
		out = append(out, s)
		return err
	})
	return out, err
}
