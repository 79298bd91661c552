package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doze-io/doze/push"
	bolt "go.etcd.io/bbolt"
)

// Uplink is everything one processed device uplink causes: its history
// records, the reported values it merges into the device's shadow, the
// pushes it puts in the outbox and the inbox entry it consumes.
// SaveUplink writes it in one transaction, so an uplink is either wholly
// done (and gone from the inbox) or not at all (and still there to be
// tried again, SEC-6).
type Uplink struct {
	DeviceID string
	History  []HistoryRecord
	Reported map[string]map[string]any // serviceId → values merged into the shadow
	Time     time.Time                 // the reported values' event time
	Messages []push.Message            // pushes for the outbox (PSH-6)
	Forward  []push.Message            // messages for the forwarding outbox (DB.Forward)
	Inbox    uint64                    // the inbox entry it consumes; 0 for none
}

// SaveUplink writes u in one transaction, shared with the writes of
// concurrent callers (group commit: one fsync for a batch of uplinks).
// Values are encoded before the transaction; an error means nothing of u
// was written.
func (db *DB) SaveUplink(u Uplink) error {
	hist := make([][]byte, len(u.History))
	for i, r := range u.History {
		if r.DeviceID == "" {
			return ErrNoDevice
		}
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("store: history record of %s: %w", r.DeviceID, err)
		}
		hist[i] = v
	}
	out, err := pushOutbox.encode(u.Messages)
	if err != nil {
		return err
	}
	fwd, err := forwardOutbox.encode(u.Forward)
	if err != nil {
		return err
	}
	return db.commit(func(tx *bolt.Tx) error {
		hb := tx.Bucket(bucketHistory)
		for i, r := range u.History {
			seq, _ := hb.NextSequence()
			if err := hb.Put(historyKey(r.DeviceID, r.Time, seq), hist[i]); err != nil {
				return err
			}
		}
		if err := reportShadow(tx, u.DeviceID, u.Reported, u.Time); err != nil {
			return err
		}
		if err := out.put(tx); err != nil {
			return err
		}
		if err := fwd.put(tx); err != nil {
			return err
		}
		if u.Inbox == 0 {
			return nil
		}
		return deleteInbox(tx, u.Inbox)
	})
}

// deleteInbox removes inbox entries in tx; unknown ones are ignored.
func deleteInbox(tx *bolt.Tx, seqs ...uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketInbox)
	if err != nil {
		return err
	}
	var k [8]byte
	for _, s := range seqs {
		binary.BigEndian.PutUint64(k[:], s)
		if err := b.Delete(k[:]); err != nil {
			return err
		}
	}
	return nil
}
