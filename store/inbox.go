package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doze-io/doze/lwm2m"
	bolt "go.etcd.io/bbolt"
)

// Inbox keeps device uplinks between their acknowledgement and their
// processing: a platform puts an uplink here, synced, before the lwm2m
// server acknowledges it to the device, and deletes it once it has been
// decoded, stored and pushed. After a crash, Pending returns what was
// acknowledged but not processed, for the platform to process again (at
// least once: an uplink processed just before the crash, whose deletion
// was lost, comes again). Keys: big-endian uint64 sequence numbers in the
// top-level bucket "inbox" (created on the first write).
type Inbox struct{ db *DB }

var bucketInbox = []byte("inbox")

// Inbox returns the uplink inbox of db.
func (db *DB) Inbox() *Inbox { return &Inbox{db: db} }

// InboxEntry is one acknowledged uplink awaiting processing.
type InboxEntry struct {
	Seq           uint64       `json:"-"`
	Endpoint      string       `json:"endpoint"`
	Path          string       `json:"path"`
	Payload       []byte       `json:"payload"`
	ContentFormat lwm2m.Format `json:"contentFormat"`
	Time          time.Time    `json:"time"`
	// Node is the platform node that acknowledged the uplink (its
	// -node-id), so that with a shared store each node replays only its
	// own entries; "" for none.
	Node string `json:"node,omitempty"`
}

// Put stores e durably and returns its sequence number. Concurrent Puts
// share one commit (group commit).
func (in *Inbox) Put(ctx context.Context, e InboxEntry) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = in.db.commit(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInbox)
		if err != nil {
			return err
		}
		if seq, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), v)
	})
	if err != nil {
		return 0, fmt.Errorf("store: inbox: keeping an uplink of %s: %w", e.Endpoint, err)
	}
	return seq, nil
}

// Delete removes processed entries; unknown sequence numbers are ignored.
func (in *Inbox) Delete(ctx context.Context, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return in.db.commit(func(tx *bolt.Tx) error { return deleteInbox(tx, seqs...) })
}

// Pending returns every entry not deleted yet, oldest first.
func (in *Inbox) Pending(ctx context.Context) ([]InboxEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []InboxEntry
	err := in.db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var e InboxEntry
			if len(k) != 8 {
				return fmt.Errorf("store: inbox: key %x is not a sequence number", k)
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("store: inbox: entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			e.Seq = binary.BigEndian.Uint64(k)
			out = append(out, e)
			return nil
		})
	})
	return out, err
}
