package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/store/internal/records"
	bolt "go.etcd.io/bbolt"
)

// Layout inside the forward bucket (created by the first write):
//
//	rules/<rule id>                   → records.EncodeRule
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
	r, err := records.DecodeRule(v)
	if err != nil {
		return forward.Rule{}, fmt.Errorf("%w: rule %q: %v", errForwardRecord, k, err)
	}
	return r, nil
}

// PutRule implements forward.Store.
func (f *Forward) PutRule(ctx context.Context, r forward.Rule) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.ID == "" || len(r.ID) > 256 || strings.IndexByte(r.AppID, 0) >= 0 || len(r.AppID) > 1024 {
		return fmt.Errorf("store: forwarding rule id of %d bytes or app id with a NUL byte", len(r.ID))
	}
	v, err := records.EncodeRule(r)
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

// PutMessages implements forward.Store.
func (f *Forward) PutMessages(ctx context.Context, msgs ...push.Message) error {
	return forwardOutbox.putMessages(ctx, f.db, msgs)
}

// DeleteMessages implements forward.Store. An endpoint's URL leaves the
// endpoint table with its last message.
func (f *Forward) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	return forwardOutbox.deleteMessages(f.db, msgs)
}

// Messages implements forward.Store: every stored message ordered by URL,
// then ID.
func (f *Forward) Messages(ctx context.Context) ([]push.Message, error) {
	return forwardOutbox.messages(f.db)
}
