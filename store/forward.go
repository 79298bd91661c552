package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/push"
	bolt "go.etcd.io/bbolt"
)

// Layout inside the forward bucket (created by the first write):
//
//	rules/<rule id>                   → JSON of fwdRule
//	rulesByApp/<app id> 0x00 <id>     → empty (index)
//	msgs/<sha256(url)> <message id>   → binary message record (encodeMessage, as the push outbox)
//	endpoints/<sha256(url)>           → url (rule://<rule id>/<target index>)
//
// The outbox has the push outbox's layout in a bucket of its own, so the
// push engine of webhooks never loads forwarding messages.
var (
	bucketForward    = []byte("forward")
	fwdRules         = []byte("rules")
	fwdRulesByApp    = []byte("rulesByApp")
	fwdMsgs          = []byte("msgs")
	fwdEndpoints     = []byte("endpoints")
	errForwardRecord = fmt.Errorf("store: damaged forwarding record")
)

// Forward is the bbolt implementation of forward.Store: rules and the
// forwarding outbox. DB.SaveUplink puts a report's forwarding messages
// (Uplink.Forward) in the same transaction as the rest of its effects.
type Forward struct {
	db *DB
}

var _ forward.Store = (*Forward)(nil)

// Forward returns the forward.Store view of the file.
func (db *DB) Forward() *Forward { return &Forward{db: db} }

type fwdRule struct {
	ID        string           `json:"id"`
	AppID     string           `json:"appId"`
	Name      string           `json:"name"`
	Condition string           `json:"condition"`
	Enabled   bool             `json:"enabled"`
	Targets   []forward.Target `json:"targets"`
	Created   time.Time        `json:"created"`
	Updated   time.Time        `json:"updated"`
}

// forwardBucket returns the named sub-bucket of the forward bucket:
// created in a writable transaction, nil in a read-only one before the
// first write.
func forwardBucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	if tx.Writable() {
		root, err := tx.CreateBucketIfNotExists(bucketForward)
		if err != nil {
			return nil, err
		}
		return root.CreateBucketIfNotExists(name)
	}
	root := tx.Bucket(bucketForward)
	if root == nil {
		return nil, nil
	}
	return root.Bucket(name), nil
}

func ruleIndexKey(app, id string) []byte {
	k := make([]byte, 0, len(app)+1+len(id))
	k = append(k, app...)
	k = append(k, 0)
	return append(k, id...)
}

func decodeRule(k, v []byte) (forward.Rule, error) {
	var r fwdRule
	if err := json.Unmarshal(v, &r); err != nil {
		return forward.Rule{}, fmt.Errorf("%w: rule %q: %v", errForwardRecord, k, err)
	}
	return forward.Rule{ID: r.ID, AppID: r.AppID, Name: r.Name, Condition: r.Condition, Enabled: r.Enabled,
		Targets: r.Targets, Created: r.Created, Updated: r.Updated}, nil
}

// PutRule implements forward.Store.
func (f *Forward) PutRule(ctx context.Context, r forward.Rule) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.ID == "" || len(r.ID) > 256 || strings.IndexByte(r.AppID, 0) >= 0 || len(r.AppID) > 1024 {
		return fmt.Errorf("store: forwarding rule id of %d bytes or app id with a NUL byte", len(r.ID))
	}
	v, err := json.Marshal(fwdRule{ID: r.ID, AppID: r.AppID, Name: r.Name, Condition: r.Condition, Enabled: r.Enabled,
		Targets: r.Targets, Created: r.Created, Updated: r.Updated})
	if err != nil {
		return err
	}
	return f.db.commit(func(tx *bolt.Tx) error {
		rules, err := forwardBucket(tx, fwdRules)
		if err != nil {
			return err
		}
		idx, err := forwardBucket(tx, fwdRulesByApp)
		if err != nil {
			return err
		}
		if old := rules.Get([]byte(r.ID)); old != nil {
			if o, err := decodeRule([]byte(r.ID), old); err == nil {
				if err := idx.Delete(ruleIndexKey(o.AppID, o.ID)); err != nil {
					return err
				}
			}
		}
		if err := idx.Put(ruleIndexKey(r.AppID, r.ID), nil); err != nil {
			return err
		}
		return rules.Put([]byte(r.ID), v)
	})
}

// Rule implements forward.Store.
func (f *Forward) Rule(ctx context.Context, id string) (forward.Rule, error) {
	var r forward.Rule
	err := f.db.bolt.View(func(tx *bolt.Tx) error {
		rules, _ := forwardBucket(tx, fwdRules)
		var v []byte
		if rules != nil && id != "" && len(id) <= bolt.MaxKeySize {
			v = rules.Get([]byte(id))
		}
		if v == nil {
			return forward.ErrNotFound
		}
		var err error
		r, err = decodeRule([]byte(id), v)
		return err
	})
	return r, closed(err)
}

// Rules implements forward.Store: a prefix scan of the application's index.
func (f *Forward) Rules(ctx context.Context, appID string) ([]forward.Rule, error) {
	var out []forward.Rule
	err := f.db.bolt.View(func(tx *bolt.Tx) error {
		rules, _ := forwardBucket(tx, fwdRules)
		idx, _ := forwardBucket(tx, fwdRulesByApp)
		if rules == nil || idx == nil {
			return nil
		}
		prefix := append([]byte(appID), 0)
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := k[len(prefix):]
			v := rules.Get(id)
			if v == nil {
				return fmt.Errorf("%w: the index names rule %q, which is missing", errForwardRecord, id)
			}
			r, err := decodeRule(id, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b forward.Rule) int { return cmp.Compare(a.ID, b.ID) })
	return out, closed(err)
}

// DeleteRule implements forward.Store.
func (f *Forward) DeleteRule(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if id == "" || len(id) > bolt.MaxKeySize {
		return false, nil
	}
	found := false
	err := f.db.commit(func(tx *bolt.Tx) error {
		found = false
		rules, err := forwardBucket(tx, fwdRules)
		if err != nil {
			return err
		}
		idx, err := forwardBucket(tx, fwdRulesByApp)
		if err != nil {
			return err
		}
		v := rules.Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		if o, err := decodeRule([]byte(id), v); err == nil {
			if err := idx.Delete(ruleIndexKey(o.AppID, o.ID)); err != nil {
				return err
			}
		}
		return rules.Delete([]byte(id))
	})
	return found, closed(err)
}

// fwdOutbox is a batch of forwarding messages encoded for the outbox.
type fwdOutbox struct {
	msgs       []push.Message
	keys, vals [][]byte
}

func encodeForward(msgs []push.Message) (fwdOutbox, error) {
	w := fwdOutbox{msgs: msgs, keys: make([][]byte, len(msgs)), vals: make([][]byte, len(msgs))}
	for i := range msgs {
		k, err := outboxKey(&msgs[i])
		if err != nil {
			return fwdOutbox{}, err
		}
		w.keys[i], w.vals[i] = k, encodeMessage(nil, &msgs[i])
	}
	return w, nil
}

// put writes the messages in tx.
func (w fwdOutbox) put(tx *bolt.Tx) error {
	if len(w.msgs) == 0 {
		return nil
	}
	msgs, err := forwardBucket(tx, fwdMsgs)
	if err != nil {
		return err
	}
	eps, err := forwardBucket(tx, fwdEndpoints)
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
		if err := msgs.Put(k, w.vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// PutMessages implements forward.Store.
func (f *Forward) PutMessages(ctx context.Context, msgs ...push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := encodeForward(msgs)
	if err != nil {
		return err
	}
	return f.db.commit(w.put)
}

// DeleteMessages implements forward.Store. An endpoint's URL leaves the
// endpoint table with its last message.
func (f *Forward) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	keys := make([][]byte, 0, len(msgs))
	for i := range msgs {
		if k, err := outboxKey(&msgs[i]); err == nil {
			keys = append(keys, k)
		}
	}
	return f.db.commit(func(tx *bolt.Tx) error {
		outbox, err := forwardBucket(tx, fwdMsgs)
		if err != nil {
			return err
		}
		eps, err := forwardBucket(tx, fwdEndpoints)
		if err != nil {
			return err
		}
		touched := map[[sha256.Size]byte]struct{}{}
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
		return nil
	})
}

// Messages implements forward.Store: every stored message ordered by URL,
// then ID.
func (f *Forward) Messages(ctx context.Context) ([]push.Message, error) {
	var out []push.Message
	err := f.db.bolt.View(func(tx *bolt.Tx) error {
		outbox, _ := forwardBucket(tx, fwdMsgs)
		eps, _ := forwardBucket(tx, fwdEndpoints)
		if outbox == nil {
			return nil
		}
		return outbox.ForEach(func(k, v []byte) error {
			if len(k) <= sha256.Size {
				return fmt.Errorf("%w: outbox key %x is too short", errForwardRecord, k)
			}
			var u []byte
			if eps != nil {
				u = eps.Get(k[:sha256.Size])
			}
			if u == nil {
				return fmt.Errorf("%w: outbox message %q has no endpoint", errForwardRecord, k[sha256.Size:])
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("store: forwarding outbox record %q: %w", k[sha256.Size:], err)
			}
			m.URL, m.ID = string(u), string(k[sha256.Size:])
			out = append(out, m)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b push.Message) int {
		return cmp.Or(strings.Compare(a.URL, b.URL), strings.Compare(a.ID, b.ID))
	})
	return out, closed(err)
}
