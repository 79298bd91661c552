package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// HistoryRecord is one service's data from one device report (STO-2).
type HistoryRecord struct {
	DeviceID  string          `json:"deviceId"`
	GatewayID string          `json:"gatewayId"`
	AppID     string          `json:"appId"`
	ServiceID string          `json:"serviceId"`
	Data      json.RawMessage `json:"data"`
	Time      time.Time       `json:"timestamp"`
}

// HistoryQuery selects history records. DeviceID is required; the other
// fields narrow the result. Records come newest first.
type HistoryQuery struct {
	DeviceID  string
	GatewayID string    // "" matches any
	ServiceID string    // "" matches any
	Since     time.Time // zero means no lower bound (inclusive)
	Until     time.Time // zero means no upper bound (inclusive)
	// Page selects page Page of PageSize records, 0 the first; a negative
	// Page returns every match (STO-2: pageNo absent means no paging).
	Page     int
	PageSize int
}

// History is the history view of a DB: a device's reported data, kept for a
// retention period, newest first. Keys are deviceID 0x00 time(8) seq(8), so
// one device's records are one contiguous range in time order.
type History struct{ db *DB }

// History returns the history view of db.
func (db *DB) History() *History { return &History{db: db} }

// ErrNoDevice means a history query named no device.
var ErrNoDevice = errors.New("store: history query needs a deviceId")

func historyKey(deviceID string, t time.Time, seq uint64) []byte {
	k := make([]byte, 0, len(deviceID)+17)
	k = append(k, deviceID...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return binary.BigEndian.AppendUint64(k, seq)
}

// Append stores records in one commit shared with other concurrent callers.
func (h *History) Append(recs ...HistoryRecord) error {
	return h.db.commit(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory)
		for _, r := range recs {
			if r.DeviceID == "" {
				return ErrNoDevice
			}
			v, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("store: history record of %s: %w", r.DeviceID, err)
			}
			seq, _ := b.NextSequence()
			if err := b.Put(historyKey(r.DeviceID, r.Time, seq), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Query returns the matching records of one page, newest first, and the
// number of matches in all.
func (h *History) Query(q HistoryQuery) ([]HistoryRecord, int, error) {
	if q.DeviceID == "" {
		return nil, 0, ErrNoDevice
	}
	if q.PageSize <= 0 {
		q.PageSize = 25
	}
	prefix := append([]byte(q.DeviceID), 0)
	var out []HistoryRecord
	total := 0
	first := q.Page * q.PageSize
	filtered := q.GatewayID != "" || q.ServiceID != ""
	err := h.db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		// Seek past the device's last key, then walk backwards.
		end := append(bytes.Clone(prefix[:len(prefix)-1]), 1)
		k, _ := c.Seek(end)
		var v []byte
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			ts := time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefix):])))
			if !q.Until.IsZero() && ts.After(q.Until) {
				continue
			}
			if !q.Since.IsZero() && ts.Before(q.Since) {
				break
			}
			inPage := q.Page < 0 || (total >= first && total < first+q.PageSize)
			var r HistoryRecord
			if filtered || inPage {
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("store: history record %x: %w", k, err)
				}
				if (q.GatewayID != "" && r.GatewayID != q.GatewayID) || (q.ServiceID != "" && r.ServiceID != q.ServiceID) {
					continue
				}
			}
			if inPage {
				out = append(out, r)
			}
			total++
		}
		return nil
	})
	return out, total, err
}

// Prune deletes records older than cutoff and returns how many it deleted.
func (h *History) Prune(cutoff time.Time) (int, error) {
	n := 0
	err := h.db.commit(func(tx *bolt.Tx) error {
		n = 0 // fn may run again (DB.commit)
		c := tx.Bucket(bucketHistory).Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) < i+17 {
				k, _ = c.Next()
				continue
			}
			ts := int64(binary.BigEndian.Uint64(k[i+1:]))
			if ts < cutoff.UnixNano() {
				k = bytes.Clone(k)
				if err := c.Delete(); err != nil {
					return err
				}
				n++
				k, _ = c.Seek(k)
				continue
			}
			// Skip the rest of this device: its records are newer.
			next := append(bytes.Clone(k[:i]), 1)
			k, _ = c.Seek(next)
		}
		return nil
	})
	return n, err
}

// DeleteDevice deletes every record of a device.
func (h *History) DeleteDevice(deviceID string) error {
	prefix := append([]byte(deviceID), 0)
	return h.db.commit(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}
