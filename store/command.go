package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/store/internal/records"
	bolt "go.etcd.io/bbolt"
)

// Inside bucketCommands (docs/architecture.md "Storage", rule CMD-9):
//
//	rec  devkey|seq        → command record (JSON, every field)
//	id   commandId         → devkey|seq
//	open devkey|seq        → due (8 bytes, 0 = none) for open commands
//	due  due|devkey|seq    → ""    open commands with a due time, by due time
//	last devkey            → highest seq ever written (8 bytes)
//	mode deviceId          → mode JSON
//	task taskId            → task JSON
//	up   deviceId          → last uplink (8 bytes, UnixNano), see command.Uplinks
//
// devkey is the device id with 0x00 escaped as 0x00 0xFF and terminated by
// 0x00 0x01: keys sort by device id, then by seq (big-endian), and no
// device's keys are a prefix of another's.
var (
	cmdRec  = []byte("rec")
	cmdID   = []byte("id")
	cmdOpen = []byte("open")
	cmdDue  = []byte("due")
	cmdLast = []byte("last")
	cmdMode = []byte("mode")
	cmdTask = []byte("task")
	cmdUp   = []byte("up")
)

// Commands returns the command.Store kept in db's commands bucket.
func (db *DB) Commands() *Commands { return &Commands{db: db, bucket: bucketCommands} }

// Commands is the bbolt implementation of command.Store. Every write is
// committed (and synced unless Options.NoSync) before it returns;
// concurrent writes share commits (DB.commit, see the package doc).
type Commands struct {
	db     *DB
	bucket []byte // bucketCommands, or bucketLwM2MOps for LwM2M operations
}

var (
	_ command.Store   = (*Commands)(nil)
	_ command.Pruner  = (*Commands)(nil)
	_ command.Uplinks = (*Commands)(nil)
)

func devKey(dst []byte, dev string) []byte {
	for i := 0; i < len(dev); i++ {
		if dev[i] == 0 {
			dst = append(dst, 0, 0xFF)
		} else {
			dst = append(dst, dev[i])
		}
	}
	return append(dst, 0, 1)
}

func recKey(dev string, seq uint64) []byte {
	k := devKey(make([]byte, 0, len(dev)+10), dev)
	return binary.BigEndian.AppendUint64(k, seq)
}

// dueBytes encodes a time so that byte order is time order. Times beyond
// what UnixNano holds (years 1678 and 2262) are clamped to its ends.
func dueBytes(t time.Time) uint64 {
	switch {
	case t.After(maxNano):
		t = maxNano
	case t.Before(minNano):
		t = minNano
	}
	return uint64(t.UnixNano()) ^ 1<<63
}

var (
	maxNano = time.Unix(0, math.MaxInt64)
	minNano = time.Unix(0, math.MinInt64)
)

func dueTime(v uint64) time.Time { return time.Unix(0, int64(v^1<<63)).UTC() }

// encodeCommand and decodeCommand read and write the stored form, which
// store/postgres shares (store/internal/records).
func encodeCommand(c *command.Command) ([]byte, error) { return records.EncodeCommand(c) }

func decodeCommand(key, b []byte) (command.Command, error) {
	c, err := records.DecodeCommand(b)
	if err != nil {
		return command.Command{}, fmt.Errorf("store: command record %x: %w", key, err)
	}
	return c, nil
}

// sub returns the named sub-bucket of the commands bucket, creating it in
// a writable transaction. In a read-only one it may return nil.
func (s *Commands) sub(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	top := tx.Bucket(s.bucket)
	if top == nil {
		return nil, ErrClosed
	}
	if tx.Writable() {
		return top.CreateBucketIfNotExists(name)
	}
	return top.Bucket(name), nil
}

func (s *Commands) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.bolt.View(fn)
}

// Write implements command.Store.
func (s *Commands) Write(ctx context.Context, w command.Write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type enc struct {
		key, val []byte
		c        *command.Command
	}
	encs := make([]enc, len(w.Commands))
	for i := range w.Commands {
		c := &w.Commands[i]
		if err := command.CheckRecord(c); err != nil {
			return err
		}
		b, err := encodeCommand(c)
		if err != nil {
			return err
		}
		encs[i] = enc{recKey(c.DeviceID, c.Seq), b, c}
	}
	for _, n := range w.Counts {
		if err := command.CheckCount(n); err != nil {
			return err
		}
	}
	return s.db.commit(func(tx *bolt.Tx) error {
		var bk [7]*bolt.Bucket
		for i, name := range [][]byte{cmdRec, cmdID, cmdOpen, cmdDue, cmdLast, cmdTask} {
			b, err := s.sub(tx, name)
			if err != nil {
				return err
			}
			bk[i] = b
		}
		rec, ids, open, due, last, tasks := bk[0], bk[1], bk[2], bk[3], bk[4], bk[5]
		for _, n := range w.Counts {
			v := tasks.Get([]byte(n.TaskID))
			if v == nil {
				return fmt.Errorf("store: %w", &command.NotFoundError{What: "task", ID: n.TaskID})
			}
			var t command.Task
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("store: task %q: %w", n.TaskID, err)
			}
			t.Count(n.Status)
			b, err := json.Marshal(records.Task(t))
			if err != nil {
				return err
			}
			if err := tasks.Put([]byte(n.TaskID), b); err != nil {
				return err
			}
		}
		for _, e := range encs {
			c := e.c
			// Replace: drop the old id and due entries.
			if old := rec.Get(e.key); old != nil {
				var prev struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(old, &prev); err == nil && prev.ID != c.ID {
					if err := ids.Delete([]byte(prev.ID)); err != nil {
						return err
					}
				}
			}
			if v := open.Get(e.key); len(v) == 8 {
				if d := binary.BigEndian.Uint64(v); d != 0 {
					if err := due.Delete(append(binary.BigEndian.AppendUint64(nil, d), e.key...)); err != nil {
						return err
					}
				}
			}
			if err := rec.Put(e.key, e.val); err != nil {
				return err
			}
			if err := ids.Put([]byte(c.ID), e.key); err != nil {
				return err
			}
			if c.Status.Open() {
				var d uint64
				if t := c.Due(); !t.IsZero() {
					d = dueBytes(t)
					if err := due.Put(append(binary.BigEndian.AppendUint64(nil, d), e.key...), nil); err != nil {
						return err
					}
				}
				if err := open.Put(e.key, binary.BigEndian.AppendUint64(nil, d)); err != nil {
					return err
				}
			} else if err := open.Delete(e.key); err != nil {
				return err
			}
			dk := e.key[:len(e.key)-8]
			if v := last.Get(dk); len(v) != 8 || binary.BigEndian.Uint64(v) < c.Seq {
				if err := last.Put(dk, binary.BigEndian.AppendUint64(nil, c.Seq)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Get implements command.Store.
func (s *Commands) Get(ctx context.Context, id string) (command.Command, error) {
	var c command.Command
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ids, _ := s.sub(tx, cmdID)
		rec, _ := s.sub(tx, cmdRec)
		if ids == nil || rec == nil {
			return &command.NotFoundError{What: "command", ID: id}
		}
		k := ids.Get([]byte(id))
		v := rec.Get(k)
		if k == nil || v == nil {
			return &command.NotFoundError{What: "command", ID: id}
		}
		var err error
		c, err = decodeCommand(k, v)
		return err
	})
	return c, err
}

// LastSeq implements command.Store.
func (s *Commands) LastSeq(ctx context.Context, deviceID string) (uint64, error) {
	var n uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		last, _ := s.sub(tx, cmdLast)
		if last == nil {
			return nil
		}
		if v := last.Get(devKey(nil, deviceID)); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return n, err
}

// Queue implements command.Store.
func (s *Commands) Queue(ctx context.Context, deviceID string) ([]command.Command, error) {
	var out []command.Command
	err := s.eachOpen(ctx, deviceID, func(c command.Command) { out = append(out, c) })
	return out, err
}

// Front implements command.Store. It decodes the device's open commands
// one by one and keeps the first n and the due ones; on bbolt the cost of
// serving a device is its writes' fsync, not this read.
func (s *Commands) Front(ctx context.Context, deviceID string, n int, t time.Time) ([]command.Command, error) {
	var out []command.Command
	i := 0
	err := s.eachOpen(ctx, deviceID, func(c command.Command) {
		if due := c.Due(); i < n || !t.IsZero() && !due.IsZero() && !due.After(t) {
			out = append(out, c)
		}
		i++
	})
	return out, err
}

// eachOpen calls fn with each open command of the device, in queue order.
func (s *Commands) eachOpen(ctx context.Context, deviceID string, fn func(command.Command)) error {
	prefix := devKey(nil, deviceID)
	return s.view(ctx, func(tx *bolt.Tx) error {
		open, _ := s.sub(tx, cmdOpen)
		rec, _ := s.sub(tx, cmdRec)
		if open == nil || rec == nil {
			return nil
		}
		cur := open.Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			c, err := decodeCommand(k, rec.Get(k))
			if err != nil {
				return err
			}
			fn(c)
		}
		return nil
	})
}

// List implements command.Store.
func (s *Commands) List(ctx context.Context, deviceID string, after uint64, limit int) ([]command.Command, error) {
	var out []command.Command
	if limit <= 0 || after == ^uint64(0) {
		return nil, nil
	}
	prefix := devKey(nil, deviceID)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, _ := s.sub(tx, cmdRec)
		if rec == nil {
			return nil
		}
		cur := rec.Cursor()
		for k, v := cur.Seek(binary.BigEndian.AppendUint64(bytes.Clone(prefix), after+1)); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = cur.Next() {
			c, err := decodeCommand(k, v)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// Due implements command.Store.
func (s *Commands) Due(ctx context.Context, t time.Time, limit int) ([]command.Command, error) {
	var out []command.Command
	if limit <= 0 {
		return nil, nil
	}
	bound := dueBytes(t)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		due, _ := s.sub(tx, cmdDue)
		rec, _ := s.sub(tx, cmdRec)
		if due == nil || rec == nil {
			return nil
		}
		cur := due.Cursor()
		for k, _ := cur.First(); k != nil && len(out) < limit; k, _ = cur.Next() {
			if len(k) < 8 || binary.BigEndian.Uint64(k) > bound {
				break
			}
			c, err := decodeCommand(k[8:], rec.Get(k[8:]))
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// NextDue implements command.Store.
func (s *Commands) NextDue(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.view(ctx, func(tx *bolt.Tx) error {
		due, _ := s.sub(tx, cmdDue)
		if due == nil {
			return nil
		}
		if k, _ := due.Cursor().First(); len(k) >= 8 {
			t = dueTime(binary.BigEndian.Uint64(k))
		}
		return nil
	})
	return t, err
}

// PutMode implements command.Store.
func (s *Commands) PutMode(ctx context.Context, deviceID string, m command.Mode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.db.commit(func(tx *bolt.Tx) error {
		modes, err := s.sub(tx, cmdMode)
		if err != nil {
			return err
		}
		return modes.Put([]byte(deviceID), b)
	})
}

// Mode implements command.Store.
func (s *Commands) Mode(ctx context.Context, deviceID string) (command.Mode, bool, error) {
	var m command.Mode
	var ok bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		modes, _ := s.sub(tx, cmdMode)
		if modes == nil {
			return nil
		}
		v := modes.Get([]byte(deviceID))
		if v == nil {
			return nil
		}
		ok = true
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("store: mode of %q: %w", deviceID, err)
		}
		return nil
	})
	return m, ok, err
}

// PutTask implements command.Store.
func (s *Commands) PutTask(ctx context.Context, t command.Task) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := json.Marshal(records.Task(t))
	if err != nil {
		return err
	}
	return s.db.commit(func(tx *bolt.Tx) error {
		tasks, err := s.sub(tx, cmdTask)
		if err != nil {
			return err
		}
		return tasks.Put([]byte(t.ID), b)
	})
}

// Task implements command.Store.
func (s *Commands) Task(ctx context.Context, id string) (command.Task, error) {
	var t command.Task
	err := s.view(ctx, func(tx *bolt.Tx) error {
		tasks, _ := s.sub(tx, cmdTask)
		var v []byte
		if tasks != nil {
			v = tasks.Get([]byte(id))
		}
		if v == nil {
			return &command.NotFoundError{What: "task", ID: id}
		}
		var r records.Task
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("store: task %q: %w", id, err)
		}
		t = command.Task(r)
		return nil
	})
	return t, err
}

// Prune implements command.Pruner. It walks every record in one
// transaction, so it costs O(total); the engine calls it hourly.
func (s *Commands) Prune(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.commit(func(tx *bolt.Tx) error {
		n = 0 // fn may run again (DB.commit)
		rec, err := s.sub(tx, cmdRec)
		if err != nil {
			return err
		}
		ids, err := s.sub(tx, cmdID)
		if err != nil {
			return err
		}
		cur := rec.Cursor()
		for k, v := cur.First(); k != nil && n < limit; {
			var r struct {
				ID       string     `json:"id"`
				Status   uint8      `json:"st"`
				Executed *time.Time `json:"et"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("store: command record %x: %w", k, err)
			}
			if command.Status(r.Status).Final() && r.Executed != nil && r.Executed.Before(before) {
				key := bytes.Clone(k)
				if err := ids.Delete([]byte(r.ID)); err != nil {
					return err
				}
				if err := cur.Delete(); err != nil {
					return err
				}
				n++
				// Next after Delete may skip an item; seek past the
				// deleted key instead.
				k, v = cur.Seek(key)
				continue
			}
			k, v = cur.Next()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PutUplinks implements command.Uplinks: one commit for every device.
func (s *Commands) PutUplinks(ctx context.Context, last map[string]time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.commit(func(tx *bolt.Tx) error {
		up, err := s.sub(tx, cmdUp)
		if err != nil {
			return err
		}
		for id, t := range last {
			if err := up.Put([]byte(id), binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))); err != nil {
				return err
			}
		}
		return nil
	})
}

// Uplink implements command.Uplinks.
func (s *Commands) Uplink(ctx context.Context, deviceID string) (time.Time, error) {
	var t time.Time
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if up, _ := s.sub(tx, cmdUp); up != nil {
			if v := up.Get([]byte(deviceID)); len(v) == 8 {
				t = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			}
		}
		return nil
	})
	return t, err
}
