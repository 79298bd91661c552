package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/push"
	bolt "go.etcd.io/bbolt"
)

// maxMessageID bounds a message id in the outbox key (the engine's ids are
// 36 bytes); with the 32-byte endpoint hash the key stays far below
// bbolt's limit whatever the caller sends.
const maxMessageID = 1024

// endpointHash is the fixed-size name of a callback URL in outbox keys.
func endpointHash(url string) [sha256.Size]byte { return sha256.Sum256([]byte(url)) }

func outboxKey(m *push.Message) ([]byte, error) {
	if m.ID == "" || len(m.ID) > maxMessageID {
		return nil, fmt.Errorf("store: push message id of %d bytes; allowed 1–%d", len(m.ID), maxMessageID)
	}
	h := endpointHash(m.URL)
	return append(h[:], m.ID...), nil
}

// legacyOutboxKey is a message's key in the first layout (URL, NUL, id), or
// nil when no such key could have been stored.
func legacyOutboxKey(m *push.Message) []byte {
	n := len(m.URL) + 1 + len(m.ID)
	if strings.IndexByte(m.URL, 0) >= 0 || strings.IndexByte(m.ID, 0) >= 0 || n > bolt.MaxKeySize {
		return nil
	}
	k := make([]byte, 0, n)
	k = append(k, m.URL...)
	k = append(k, 0)
	return append(k, m.ID...)
}

// outbox is a durable outbox of push messages inside one top-level bucket:
//
//	<msgs>/<sha256(url)> <message id> → binary message record (encodeMessage)
//	<eps>/<sha256(url)>               → url
//
// The push Store and the forward Store each have one (pushOutbox,
// forwardOutbox), in buckets of their own, so neither engine loads the
// other's messages.
type outbox struct {
	root, msgs, eps []byte
	// legacy names the sub-bucket of the first layout (<url> 0x00 <id>
	// keys, the same record), nil where there never was one. Messages reads
	// it, deletes reach it, and it is removed once it is empty.
	legacy []byte
	// lazyRoot: the root bucket is created by the first write (a read
	// before it finds nothing); otherwise Open made it and its absence is
	// an error.
	lazyRoot bool
	// damaged wraps the errors about a damaged outbox record (nil: none);
	// errShort, errNoURL and errRecord are their formats, given damaged
	// (when set) and then the key.
	damaged                       error
	errShort, errNoURL, errRecord string
}

var pushOutbox = &outbox{
	root: bucketPush, msgs: pushMsgs, eps: pushEndpoints, legacy: pushOutboxV1,
	errShort:  "store: push outbox key %x is too short",
	errNoURL:  "store: push outbox message %q has no endpoint URL",
	errRecord: "store: push outbox record %q: %w",
}

var forwardOutbox = &outbox{
	root: bucketForward, msgs: fwdMsgs, eps: fwdEndpoints, lazyRoot: true,
	damaged:   errForwardRecord,
	errShort:  "%w: outbox key %x is too short",
	errNoURL:  "%w: outbox message %q has no endpoint",
	errRecord: "store: forwarding outbox record %q: %w",
}

// damagedf formats one of the outbox's damage errors.
func (o *outbox) damagedf(format string, a ...any) error {
	if o.damaged != nil {
		a = append([]any{o.damaged}, a...)
	}
	return fmt.Errorf(format, a...)
}

// buckets returns the message and endpoint buckets (created in a writable
// transaction) and the legacy outbox, nil when it is gone. In a read-only
// transaction before the first write of a lazy root all are nil.
func (o *outbox) buckets(tx *bolt.Tx) (msgs, eps, legacy *bolt.Bucket, err error) {
	root := tx.Bucket(o.root)
	if root == nil {
		if !o.lazyRoot {
			return nil, nil, nil, fmt.Errorf("store: bucket %q missing", o.root)
		}
		if !tx.Writable() {
			return nil, nil, nil, nil
		}
		if root, err = tx.CreateBucketIfNotExists(o.root); err != nil {
			return nil, nil, nil, err
		}
	}
	if o.legacy != nil {
		legacy = root.Bucket(o.legacy)
	}
	if !tx.Writable() {
		return root.Bucket(o.msgs), root.Bucket(o.eps), legacy, nil
	}
	if msgs, err = root.CreateBucketIfNotExists(o.msgs); err != nil {
		return nil, nil, nil, err
	}
	if eps, err = root.CreateBucketIfNotExists(o.eps); err != nil {
		return nil, nil, nil, err
	}
	return msgs, eps, legacy, nil
}

// outboxWrite is a batch of messages encoded for an outbox, ready to be
// put in a transaction.
type outboxWrite struct {
	o          *outbox
	msgs       []push.Message
	keys, vals [][]byte
}

func (o *outbox) encode(msgs []push.Message) (outboxWrite, error) {
	w := outboxWrite{o: o, msgs: msgs, keys: make([][]byte, len(msgs)), vals: make([][]byte, len(msgs))}
	for i := range msgs {
		k, err := outboxKey(&msgs[i])
		if err != nil {
			return outboxWrite{}, err
		}
		w.keys[i], w.vals[i] = k, encodeMessage(nil, &msgs[i])
	}
	return w, nil
}

// put writes the messages in tx; a message with the URL and ID of a
// stored one replaces it.
func (w outboxWrite) put(tx *bolt.Tx) error {
	if len(w.msgs) == 0 {
		return nil
	}
	outbox, eps, legacy, err := w.o.buckets(tx)
	if err != nil {
		return err
	}
	for i, k := range w.keys {
		h := k[:sha256.Size]
		if u := eps.Get(h); u == nil || string(u) != w.msgs[i].URL {
			if err := eps.Put(h, []byte(w.msgs[i].URL)); err != nil {
				return err
			}
		}
		if err := outbox.Put(k, w.vals[i]); err != nil {
			return err
		}
		if legacy != nil {
			// The same URL and id stored by the first layout is replaced.
			if lk := legacyOutboxKey(&w.msgs[i]); lk != nil {
				if err := legacy.Delete(lk); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// putMessages stores msgs in one commit shared with the file's other
// writes (group commit).
func (o *outbox) putMessages(ctx context.Context, db *DB, msgs []push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := o.encode(msgs)
	if err != nil {
		return err
	}
	return db.commit(w.put)
}

// deleteMessages removes msgs (unknown ones are ignored) in one commit
// shared with the file's other writes. An endpoint's URL leaves the
// endpoint table with its last message.
func (o *outbox) deleteMessages(db *DB, msgs []push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	keys := make([][]byte, 0, len(msgs))
	var legacyKeys [][]byte
	for i := range msgs {
		if k, err := outboxKey(&msgs[i]); err == nil {
			keys = append(keys, k)
		}
		if o.legacy == nil {
			continue
		}
		if lk := legacyOutboxKey(&msgs[i]); lk != nil {
			legacyKeys = append(legacyKeys, lk)
		}
	}
	return db.commit(func(tx *bolt.Tx) error {
		outbox, eps, legacy, err := o.buckets(tx)
		if err != nil {
			return err
		}
		touched := make(map[[sha256.Size]byte]struct{})
		for _, k := range keys {
			if err := outbox.Delete(k); err != nil {
				return err
			}
			touched[[sha256.Size]byte(k[:sha256.Size])] = struct{}{}
		}
		c := outbox.Cursor()
		for h := range touched {
			if k, _ := c.Seek(h[:]); k == nil || !bytes.HasPrefix(k, h[:]) {
				if err := eps.Delete(h[:]); err != nil {
					return err
				}
			}
		}
		if legacy == nil {
			return nil
		}
		for _, k := range legacyKeys {
			if err := legacy.Delete(k); err != nil {
				return err
			}
		}
		if k, _ := legacy.Cursor().First(); k == nil {
			// The last message of the first layout is gone.
			return tx.Bucket(o.root).DeleteBucket(o.legacy)
		}
		return nil
	})
}

// messages returns every stored message (those of the first layout too)
// ordered by URL, then ID.
func (o *outbox) messages(db *DB) ([]push.Message, error) {
	var out []push.Message
	err := db.bolt.View(func(tx *bolt.Tx) error {
		outbox, eps, legacy, err := o.buckets(tx)
		if err != nil {
			return err
		}
		if outbox != nil {
			err := outbox.ForEach(func(k, v []byte) error {
				if len(k) <= sha256.Size {
					return o.damagedf(o.errShort, k)
				}
				var u []byte
				if eps != nil {
					u = eps.Get(k[:sha256.Size])
				}
				if u == nil {
					return o.damagedf(o.errNoURL, k[sha256.Size:])
				}
				m, err := decodeMessage(v)
				if err != nil {
					return fmt.Errorf(o.errRecord, k[sha256.Size:], err)
				}
				m.URL, m.ID = string(u), string(k[sha256.Size:])
				out = append(out, m)
				return nil
			})
			if err != nil {
				return err
			}
		}
		if legacy == nil {
			return nil
		}
		return legacy.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("store: push outbox key %q has no separator", k)
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("store: push outbox record %q: %w", k, err)
			}
			m.URL, m.ID = string(k[:i]), string(k[i+1:])
			out = append(out, m)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b push.Message) int {
		return cmp.Or(strings.Compare(a.URL, b.URL), strings.Compare(a.ID, b.ID))
	})
	return out, closed(err)
}

// Message record: version 1, then uvarint-length-prefixed Body, Secret,
// NotifyType, SubscriptionID, then Created and Expires as varint Unix
// nanoseconds. The ID lives in the key, the URL in the endpoint table
// (in the first layout, both in the key).
const pushRecordV1 = 1

func encodeMessage(dst []byte, m *push.Message) []byte {
	dst = append(dst, pushRecordV1)
	for _, f := range [][]byte{m.Body, []byte(m.Secret), []byte(m.NotifyType), []byte(m.SubscriptionID)} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	dst = binary.AppendVarint(dst, m.Created.UnixNano())
	return binary.AppendVarint(dst, m.Expires.UnixNano())
}

var errPushRecord = errors.New("damaged message record")

func decodeMessage(b []byte) (push.Message, error) {
	var m push.Message
	if len(b) == 0 || b[0] != pushRecordV1 {
		return m, fmt.Errorf("%w: unknown version", errPushRecord)
	}
	b = b[1:]
	var fields [4][]byte
	for i := range fields {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return m, fmt.Errorf("%w: field %d length", errPushRecord, i)
		}
		fields[i] = bytes.Clone(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	created, w := binary.Varint(b)
	if w <= 0 {
		return m, fmt.Errorf("%w: created time", errPushRecord)
	}
	b = b[w:]
	expires, w := binary.Varint(b)
	if w <= 0 || w != len(b) {
		return m, fmt.Errorf("%w: expiry time", errPushRecord)
	}
	m.Body = fields[0]
	m.Secret = push.Secret(fields[1])
	m.NotifyType = push.NotifyType(fields[2])
	m.SubscriptionID = string(fields[3])
	m.Created = time.Unix(0, created)
	m.Expires = time.Unix(0, expires)
	return m, nil
}
