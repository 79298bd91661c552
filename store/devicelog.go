package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doze-io/doze/store/internal/records"
	bolt "go.etcd.io/bbolt"
)

// DeviceLog keeps the most recent events of each device (decode errors,
// registrations, command moves…) that an application reads to find out
// why a device misbehaves (APP-2). It is bounded: each device keeps
// its last Max entries, older ones are pruned in the write that adds new
// ones, and each message is cut at MaxLogMessage bytes.
//
// Layout: the top-level bucket "devicelog" (created on the first write)
// holds one bucket per deviceId; its keys are big-endian uint64 sequence
// numbers (the bucket's NextSequence), its values JSON entries. Pruning
// deletes the keys below sequence−Max, so it costs what it deletes.
type DeviceLog struct {
	db  *DB
	max int
}

var bucketDeviceLog = []byte("devicelog")

// DefaultDeviceLogMax is how many entries a device keeps when DeviceLog
// is given 0.
const DefaultDeviceLogMax = 200

// MaxLogMessage bounds one entry's message in bytes; a longer one is cut
// (at a rune boundary) and ends with "…".
const MaxLogMessage = 2048

// DeviceLog returns the device log view of db, keeping max entries per
// device (0 means DefaultDeviceLogMax).
func (db *DB) DeviceLog(max int) *DeviceLog {
	if max <= 0 {
		max = DefaultDeviceLogMax
	}
	return &DeviceLog{db: db, max: max}
}

// LogEntry is one event in a device's log.
type LogEntry struct {
	DeviceID string    `json:"-"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Message  string    `json:"message"`
}

// Append stores entries, of any devices, in one commit (shared with
// concurrent writers), and prunes each device's log to its last Max
// entries. Entries of one device keep their order.
func (l *DeviceLog) Append(ctx context.Context, entries ...LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	vals := make([][]byte, len(entries))
	for i, e := range entries {
		if e.DeviceID == "" {
			return fmt.Errorf("store: device log: entry %d has no deviceId", i)
		}
		e.Message = records.Cut(e.Message, MaxLogMessage)
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		vals[i] = v
	}
	err := l.db.commit(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketDeviceLog)
		if err != nil {
			return err
		}
		last := map[string]uint64{}
		for i, e := range entries {
			b, err := top.CreateBucketIfNotExists([]byte(e.DeviceID))
			if err != nil {
				return err
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), vals[i]); err != nil {
				return err
			}
			last[e.DeviceID] = seq
		}
		for id, seq := range last {
			if seq <= uint64(l.max) {
				continue
			}
			if err := prune(top.Bucket([]byte(id)), seq-uint64(l.max)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: device log: appending %d entries: %w", len(entries), err)
	}
	return nil
}

// prune deletes the keys of b up to and including seq.
func prune(b *bolt.Bucket, seq uint64) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Recent returns up to limit entries of the device, newest first.
func (l *DeviceLog) Recent(deviceID string, limit int) ([]LogEntry, error) {
	var out []LogEntry
	err := l.db.bolt.View(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketDeviceLog)
		if top == nil {
			return nil
		}
		b := top.Bucket([]byte(deviceID))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			e := LogEntry{DeviceID: deviceID}
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("store: device log of %s: entry %x: %w", deviceID, k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, closed(err)
}

// Delete removes the log of a device (it was deleted).
func (l *DeviceLog) Delete(deviceID string) error {
	return l.db.commit(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketDeviceLog)
		if top == nil || top.Bucket([]byte(deviceID)) == nil {
			return nil
		}
		return top.DeleteBucket([]byte(deviceID))
	})
}
