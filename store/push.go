package store

import (
	"bytes"
	"context"
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

// PutMessages implements push.Store. Concurrent calls share one commit
// with every other write of the file (group commit).
func (p *Push) PutMessages(ctx context.Context, msgs ...push.Message) error {
	return pushOutbox.putMessages(ctx, p.db, msgs)
}

// DeleteMessages implements push.Store. Concurrent calls share one commit
// with every other write of the file (group commit).
// An endpoint's URL leaves the endpoint table with its last message.
func (p *Push) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	return pushOutbox.deleteMessages(p.db, msgs)
}

// Messages implements push.Store. It also returns the messages still kept
// in the first layout (keyed by URL), which leave it as they are deleted.
func (p *Push) Messages(ctx context.Context) ([]push.Message, error) {
	return pushOutbox.messages(p.db)
}
