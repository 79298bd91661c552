package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/push"
	bolt "go.etcd.io/bbolt"
)

// Layout inside the push bucket:
//
//	subs/<subscription id>                          → JSON of pushSub
//	subsByApp/<app id> 0x00 <notify type> 0x00 <id> → empty (index)
//	msgs/<sha256(url)> <message id>                 → binary message record (encodeMessage)
//	endpoints/<sha256(url)>                         → url
//
// The index makes Publish's lookup (one application, one notify type) a
// prefix scan instead of decoding every subscription.
//
// Outbox keys have a fixed-size endpoint part, so a key's size does not
// depend on the callback URL (a URL in the key once made a long URL's
// pushes unstorable); the URL is kept once per endpoint in the endpoint
// table and leaves it with the endpoint's last message. Within one
// endpoint keys sort by message id, which starts with the enqueue time.
//
// The first layout kept messages in outbox/<url> 0x00 <message id> with
// the same record. A file written by it still opens: Messages reads both,
// deletes reach both, and the old bucket is removed once it is empty (at
// most one keep time after the upgrade).
var (
	pushSubs      = []byte("subs")
	pushSubsByApp = []byte("subsByApp")
	pushMsgs      = []byte("msgs")
	pushEndpoints = []byte("endpoints")
	pushOutboxV1  = []byte("outbox")
)

// Push is the bbolt implementation of push.Store (subscriptions and the
// durable outbox, PSH-6). Outbox writes from many goroutines share commits
// with the file's other writes (group commit); DB.SaveUplink puts a
// report's pushes in the same transaction as the rest of its effects.
type Push struct {
	db *DB
}

var _ push.Store = (*Push)(nil)

// Push returns the push.Store view of the file.
func (db *DB) Push() *Push { return &Push{db: db} }

// DB returns the file p is a view of.
func (p *Push) DB() *DB { return p.db }

type pushSub struct {
	ID          string    `json:"id"`
	AppID       string    `json:"appId"`
	NotifyType  string    `json:"notifyType"`
	CallbackURL string    `json:"callbackUrl"`
	Secret      string    `json:"secret,omitempty"`
	Created     time.Time `json:"created"`
}

// pushSubsBucket returns the subs bucket, creating it in a writable
// transaction.
func pushSubsBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketPush)
	if root == nil {
		return nil, fmt.Errorf("store: bucket %q missing", bucketPush)
	}
	if tx.Writable() {
		return root.CreateBucketIfNotExists(pushSubs)
	}
	return root.Bucket(pushSubs), nil
}

// pushIndex returns the subsByApp bucket (nil in a read-only transaction
// before the first subscription).
func pushIndex(tx *bolt.Tx) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketPush)
	if tx.Writable() {
		return root.CreateBucketIfNotExists(pushSubsByApp)
	}
	return root.Bucket(pushSubsByApp), nil
}

func indexKey(app, notifyType, id string) []byte {
	k := make([]byte, 0, len(app)+len(notifyType)+len(id)+2)
	k = append(k, app...)
	k = append(k, 0)
	k = append(k, notifyType...)
	k = append(k, 0)
	return append(k, id...)
}

// PutSubscription implements push.Store.
func (p *Push) PutSubscription(ctx context.Context, s push.Subscription) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.ID == "" {
		return errors.New("store: push subscription without an ID")
	}
	v, err := json.Marshal(pushSub{ID: s.ID, AppID: s.AppID, NotifyType: string(s.NotifyType),
		CallbackURL: s.CallbackURL, Secret: string(s.Secret), Created: s.Created})
	if err != nil {
		return err
	}
	if strings.IndexByte(s.AppID, 0) >= 0 || strings.IndexByte(string(s.NotifyType), 0) >= 0 {
		return fmt.Errorf("store: push subscription %q: app id or notify type contains a NUL byte", s.ID)
	}
	return p.db.commit(func(tx *bolt.Tx) error {
		subs, err := pushSubsBucket(tx)
		if err != nil {
			return err
		}
		idx, err := pushIndex(tx)
		if err != nil {
			return err
		}
		if old := subs.Get([]byte(s.ID)); old != nil {
			o, err := decodeSub([]byte(s.ID), old)
			if err != nil {
				return err
			}
			if err := idx.Delete(indexKey(o.AppID, string(o.NotifyType), o.ID)); err != nil {
				return err
			}
		}
		if err := idx.Put(indexKey(s.AppID, string(s.NotifyType), s.ID), nil); err != nil {
			return err
		}
		return subs.Put([]byte(s.ID), v)
	})
}

func decodeSub(k, v []byte) (push.Subscription, error) {
	var ps pushSub
	if err := json.Unmarshal(v, &ps); err != nil {
		return push.Subscription{}, fmt.Errorf("store: push subscription %q is damaged: %w", k, err)
	}
	return push.Subscription{ID: ps.ID, AppID: ps.AppID, NotifyType: push.NotifyType(ps.NotifyType),
		CallbackURL: ps.CallbackURL, Secret: push.Secret(ps.Secret), Created: ps.Created}, nil
}

// Subscription implements push.Store.
func (p *Push) Subscription(ctx context.Context, id string) (push.Subscription, error) {
	var s push.Subscription
	err := p.db.bolt.View(func(tx *bolt.Tx) error {
		subs, err := pushSubsBucket(tx)
		if err != nil {
			return err
		}
		var v []byte
		if subs != nil {
			v = subs.Get([]byte(id))
		}
		if v == nil {
			return push.ErrNotFound
		}
		s, err = decodeSub([]byte(id), v)
		return err
	})
	return s, closed(err)
}

// Subscriptions implements push.Store. For one application it scans the
// index under the application (and notify type); with Filter.AnyApp it
// scans every subscription.
func (p *Push) Subscriptions(ctx context.Context, f push.Filter) ([]push.Subscription, error) {
	var out []push.Subscription
	err := p.db.bolt.View(func(tx *bolt.Tx) error {
		subs, err := pushSubsBucket(tx)
		if err != nil || subs == nil {
			return err
		}
		if !f.AnyApp {
			idx, _ := pushIndex(tx)
			if idx == nil {
				return nil
			}
			prefix := append([]byte(f.AppID), 0)
			if f.NotifyType != "" {
				prefix = append(append(prefix, f.NotifyType...), 0)
			}
			c := idx.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				id := k[bytes.LastIndexByte(k, 0)+1:]
				v := subs.Get(id)
				if v == nil {
					return fmt.Errorf("store: push index names subscription %q, which is missing", id)
				}
				s, err := decodeSub(id, v)
				if err != nil {
					return err
				}
				if f.Match(s) {
					out = append(out, s)
				}
			}
			slices.SortFunc(out, func(a, b push.Subscription) int { return strings.Compare(a.ID, b.ID) })
			return nil
		}
		return subs.ForEach(func(k, v []byte) error {
			s, err := decodeSub(k, v)
			if err != nil {
				return err
			}
			if f.Match(s) {
				out = append(out, s)
			}
			return nil
		})
	})
	return out, closed(err)
}

// DeleteSubscriptions implements push.Store.
func (p *Push) DeleteSubscriptions(ctx context.Context, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := p.db.commit(func(tx *bolt.Tx) error {
		n = 0 // fn may run again (DB.commit)
		subs, err := pushSubsBucket(tx)
		if err != nil {
			return err
		}
		idx, err := pushIndex(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			v := subs.Get([]byte(id))
			if v == nil {
				continue
			}
			if o, err := decodeSub([]byte(id), v); err == nil {
				if err := idx.Delete(indexKey(o.AppID, string(o.NotifyType), o.ID)); err != nil {
					return err
				}
			}
			if err := subs.Delete([]byte(id)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, closed(err)
}

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

// outboxBuckets returns the message and endpoint buckets (created in a
// writable transaction) and the legacy outbox, nil when it is gone.
func outboxBuckets(tx *bolt.Tx) (msgs, eps, legacy *bolt.Bucket, err error) {
	root := tx.Bucket(bucketPush)
	if root == nil {
		return nil, nil, nil, fmt.Errorf("store: bucket %q missing", bucketPush)
	}
	legacy = root.Bucket(pushOutboxV1)
	if !tx.Writable() {
		return root.Bucket(pushMsgs), root.Bucket(pushEndpoints), legacy, nil
	}
	if msgs, err = root.CreateBucketIfNotExists(pushMsgs); err != nil {
		return nil, nil, nil, err
	}
	if eps, err = root.CreateBucketIfNotExists(pushEndpoints); err != nil {
		return nil, nil, nil, err
	}
	return msgs, eps, legacy, nil
}

// PutMessages implements push.Store. Concurrent calls share one commit
// with every other write of the file (group commit).
func (p *Push) PutMessages(ctx context.Context, msgs ...push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	out, err := encodeOutbox(msgs)
	if err != nil {
		return err
	}
	return p.db.commit(out.put)
}

// outboxWrite is a batch of messages encoded for the outbox, ready to be
// put in a transaction.
type outboxWrite struct {
	msgs       []push.Message
	keys, vals [][]byte
}

func encodeOutbox(msgs []push.Message) (outboxWrite, error) {
	w := outboxWrite{msgs: msgs, keys: make([][]byte, len(msgs)), vals: make([][]byte, len(msgs))}
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
	outbox, eps, legacy, err := outboxBuckets(tx)
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

// DeleteMessages implements push.Store. Concurrent calls share one commit
// with every other write of the file (group commit).
// An endpoint's URL leaves the endpoint table with its last message.
func (p *Push) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	keys := make([][]byte, 0, len(msgs))
	var legacyKeys [][]byte
	for i := range msgs {
		if k, err := outboxKey(&msgs[i]); err == nil {
			keys = append(keys, k)
		}
		if lk := legacyOutboxKey(&msgs[i]); lk != nil {
			legacyKeys = append(legacyKeys, lk)
		}
	}
	return p.db.commit(func(tx *bolt.Tx) error {
		outbox, eps, legacy, err := outboxBuckets(tx)
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
			return tx.Bucket(bucketPush).DeleteBucket(pushOutboxV1)
		}
		return nil
	})
}

// Messages implements push.Store. It also returns the messages still kept
// in the first layout (keyed by URL), which leave it as they are deleted.
func (p *Push) Messages(ctx context.Context) ([]push.Message, error) {
	var out []push.Message
	err := p.db.bolt.View(func(tx *bolt.Tx) error {
		outbox, eps, legacy, err := outboxBuckets(tx)
		if err != nil {
			return err
		}
		if outbox != nil {
			err := outbox.ForEach(func(k, v []byte) error {
				if len(k) <= sha256.Size {
					return fmt.Errorf("store: push outbox key %x is too short", k)
				}
				var u []byte
				if eps != nil {
					u = eps.Get(k[:sha256.Size])
				}
				if u == nil {
					return fmt.Errorf("store: push outbox message %q has no endpoint URL", k[sha256.Size:])
				}
				m, err := decodeMessage(v)
				if err != nil {
					return fmt.Errorf("store: push outbox record %q: %w", k[sha256.Size:], err)
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
