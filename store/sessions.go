package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	bolt "go.etcd.io/bbolt"
)

// DTLSSessions is the transport.SessionStore of a DB: DTLS sessions kept for
// resumption by session ID (an abbreviated handshake, issue 20 item 9)
// across restarts. A session is kept for a TTL after it was written, then
// is no longer returned and is pruned: every PutSession deletes a few of
// the oldest expired sessions, so the bucket stays bounded by the number
// of full handshakes in one TTL without a sweeping goroutine; Prune
// deletes them all at once. Values hold master secrets: the file is as
// secret as the PSKs.
//
// Keys, in the top-level bucket "dtls-sessions" (created on the first
// write): "i" id → 8-byte big-endian write time (Unix ns) and value; "w"
// time id → nothing, the expiry index.
type DTLSSessions struct {
	db  *DB
	ttl time.Duration
	now func() time.Time
}

var _ transport.SessionStore = (*DTLSSessions)(nil)

var bucketDTLSSessions = []byte("dtls-sessions")

// DefaultSessionTTL is the TTL of DTLSSessions when none is given: the
// upper limit RFC 5246 §F.1.4 suggests for session IDs.
const DefaultSessionTTL = 24 * time.Hour

// pruneBatch is how many expired sessions a PutSession deletes at most:
// more than it adds, so expired sessions never pile up.
const pruneBatch = 8

// DTLSSessions returns the DTLS session store of db; a session is
// returned for ttl after it was written (ttl ≤ 0 means DefaultSessionTTL).
func (db *DB) DTLSSessions(ttl time.Duration) *DTLSSessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &DTLSSessions{db: db, ttl: ttl, now: time.Now}
}

func sessIDKey(id []byte) []byte { return append([]byte("i"), id...) }

func sessTimeKey(t uint64, id []byte) []byte {
	k := binary.BigEndian.AppendUint64([]byte("w"), t)
	return append(k, id...)
}

// PutSession implements transport.SessionStore.
func (s *DTLSSessions) PutSession(id, value []byte) error {
	now := s.now()
	at := uint64(now.UnixNano())
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), at)
	v = append(v, value...)
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDTLSSessions)
		if err != nil {
			return err
		}
		if old := b.Get(sessIDKey(id)); len(old) >= 8 {
			if err := b.Delete(sessTimeKey(binary.BigEndian.Uint64(old), id)); err != nil {
				return err
			}
		}
		if err := b.Put(sessIDKey(id), v); err != nil {
			return err
		}
		if err := b.Put(sessTimeKey(at, id), nil); err != nil {
			return err
		}
		_, err = pruneSessions(b, now.Add(-s.ttl), pruneBatch)
		return err
	})
}

// GetSession implements transport.SessionStore: a session older than the TTL
// is not found.
func (s *DTLSSessions) GetSession(id []byte) ([]byte, error) {
	var out []byte
	oldest := uint64(s.now().Add(-s.ttl).UnixNano())
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDTLSSessions)
		if b == nil {
			return nil
		}
		v := b.Get(sessIDKey(id))
		if len(v) < 8 || binary.BigEndian.Uint64(v) < oldest {
			return nil
		}
		out = append([]byte{}, v[8:]...)
		return nil
	})
	if err != nil {
		return nil, closed(err)
	}
	if out == nil {
		return nil, fmt.Errorf("store: DTLS session %x: %w", id, transport.ErrNotFound)
	}
	return out, nil
}

// DeleteSession implements transport.SessionStore.
func (s *DTLSSessions) DeleteSession(id []byte) error {
	return s.db.commit(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDTLSSessions)
		if b == nil {
			return nil
		}
		old := b.Get(sessIDKey(id))
		if old == nil {
			return nil
		}
		if len(old) >= 8 {
			if err := b.Delete(sessTimeKey(binary.BigEndian.Uint64(old), id)); err != nil {
				return err
			}
		}
		return b.Delete(sessIDKey(id))
	})
}

// Prune deletes every session written more than the TTL before now and
// returns how many it deleted.
func (s *DTLSSessions) Prune(now time.Time) (int, error) {
	var n int
	err := s.db.commit(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketDTLSSessions)
		if b == nil {
			return nil
		}
		var err error
		n, err = pruneSessions(b, now.Add(-s.ttl), -1)
		return err
	})
	return n, err
}

// Len returns the number of sessions held, expired ones included until
// they are pruned.
func (s *DTLSSessions) Len() (int, error) {
	n := 0
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDTLSSessions)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek([]byte("i")); k != nil && k[0] == 'i'; k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, closed(err)
}

// pruneSessions deletes up to limit (< 0: all) sessions written before
// cutoff, oldest first.
func pruneSessions(b *bolt.Bucket, cutoff time.Time, limit int) (int, error) {
	end := sessTimeKey(uint64(max(cutoff.UnixNano(), 0)), nil)
	var gone [][]byte
	c := b.Cursor()
	for k, _ := c.Seek([]byte("w")); k != nil && bytes.Compare(k, end) < 0 && (limit < 0 || len(gone) < limit); k, _ = c.Next() {
		gone = append(gone, append([]byte(nil), k...))
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
		if err := b.Delete(sessIDKey(k[9:])); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// Registrations is the transport.RegistrationStore of a DB: LwM2M
// registrations and parked DTLS sessions kept across restarts and crashes
// (LWM-14). Keys, in the top-level bucket "lwm2m-registrations" (created
// on the first write): "r" endpoint → registration, "p" endpoint → parked
// session (JSON), "c" Connection ID → endpoint and "a" address →
// endpoint, so that a session can be found by the Connection ID a record
// carries (ParkedByCID) or by its source address (ParkedByAddr; the
// session parked last there). Parked
// sessions hold session keys: the file is as secret as the PSKs.
type Registrations struct{ db *DB }

var _ transport.RegistrationStore = (*Registrations)(nil)

var bucketRegistrations = []byte("lwm2m-registrations")

// Registrations returns the registration store of db.
func (db *DB) Registrations() *Registrations { return &Registrations{db: db} }

func regBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	if tx.Writable() {
		return tx.CreateBucketIfNotExists(bucketRegistrations)
	}
	return tx.Bucket(bucketRegistrations), nil
}

func regKey(kind byte, s []byte) []byte { return append([]byte{kind}, s...) }

// PutRegistration implements transport.RegistrationStore.
func (s *Registrations) PutRegistration(r transport.RegistrationRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := regBucket(tx)
		if err != nil {
			return err
		}
		return b.Put(regKey('r', []byte(r.Endpoint)), v)
	})
}

// DeleteRegistration implements transport.RegistrationStore.
func (s *Registrations) DeleteRegistration(endpoint string) error {
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := regBucket(tx)
		if err != nil {
			return err
		}
		return b.Delete(regKey('r', []byte(endpoint)))
	})
}

// Registrations implements transport.RegistrationStore.
func (s *Registrations) Registrations() ([]transport.RegistrationRecord, error) {
	return listJSON[transport.RegistrationRecord](s.db, 'r')
}

// PutParked implements transport.RegistrationStore.
func (s *Registrations) PutParked(p transport.ParkedSession) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := regBucket(tx)
		if err != nil {
			return err
		}
		if err := deleteParked(b, p.Endpoint); err != nil {
			return err
		}
		if len(p.CID) > 0 {
			if err := b.Put(regKey('c', p.CID), []byte(p.Endpoint)); err != nil {
				return err
			}
		}
		if p.Addr != "" {
			if err := b.Put(regKey('a', []byte(p.Addr)), []byte(p.Endpoint)); err != nil {
				return err
			}
		}
		return b.Put(regKey('p', []byte(p.Endpoint)), v)
	})
}

// deleteParked deletes endpoint's parked session and its CID index entry.
func deleteParked(b *bolt.Bucket, endpoint string) error {
	old := b.Get(regKey('p', []byte(endpoint)))
	if old == nil {
		return nil
	}
	var p transport.ParkedSession
	if json.Unmarshal(old, &p) == nil && len(p.CID) > 0 && string(b.Get(regKey('c', p.CID))) == endpoint {
		if err := b.Delete(regKey('c', p.CID)); err != nil {
			return err
		}
	}
	if p.Addr != "" && string(b.Get(regKey('a', []byte(p.Addr)))) == endpoint {
		if err := b.Delete(regKey('a', []byte(p.Addr))); err != nil {
			return err
		}
	}
	return b.Delete(regKey('p', []byte(endpoint)))
}

// DeleteParked implements transport.RegistrationStore.
func (s *Registrations) DeleteParked(endpoint string) error {
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := regBucket(tx)
		if err != nil {
			return err
		}
		return deleteParked(b, endpoint)
	})
}

// ParkedSessions implements transport.RegistrationStore.
func (s *Registrations) ParkedSessions() ([]transport.ParkedSession, error) {
	return listJSON[transport.ParkedSession](s.db, 'p')
}

// Registration implements transport.RegistrationStore.
func (s *Registrations) Registration(_ context.Context, endpoint string) (transport.RegistrationRecord, error) {
	var r transport.RegistrationRecord
	err := s.getJSON(regKey('r', []byte(endpoint)), &r, "registration of "+strconv.Quote(endpoint))
	return r, err
}

// Parked implements transport.RegistrationStore.
func (s *Registrations) Parked(_ context.Context, endpoint string) (transport.ParkedSession, error) {
	var p transport.ParkedSession
	err := s.getJSON(regKey('p', []byte(endpoint)), &p, "parked DTLS session of "+strconv.Quote(endpoint))
	return p, err
}

// ParkedByCID implements transport.RegistrationStore.
func (s *Registrations) ParkedByCID(_ context.Context, cid []byte) (transport.ParkedSession, error) {
	return s.parkedBy(regKey('c', cid), fmt.Sprintf("with Connection ID %x", cid))
}

// ParkedByAddr implements transport.RegistrationStore.
func (s *Registrations) ParkedByAddr(_ context.Context, addr string) (transport.ParkedSession, error) {
	return s.parkedBy(regKey('a', []byte(addr)), "at "+addr)
}

// parkedBy returns the parked session of the endpoint the index key names.
func (s *Registrations) parkedBy(index []byte, what string) (transport.ParkedSession, error) {
	var p transport.ParkedSession
	found := false
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		b, _ := regBucket(tx)
		if b == nil {
			return nil
		}
		ep := b.Get(index)
		if ep == nil {
			return nil
		}
		v := b.Get(regKey('p', ep))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &p)
	})
	if err == nil && !found {
		err = fmt.Errorf("store: parked DTLS session %s: %w", what, transport.ErrNotFound)
	}
	return p, closed(err)
}

// getJSON decodes the value at key into v, or reports transport.ErrNotFound.
func (s *Registrations) getJSON(key []byte, v any, what string) error {
	found := false
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		b, _ := regBucket(tx)
		if b == nil {
			return nil
		}
		x := b.Get(key)
		if x == nil {
			return nil
		}
		found = true
		return json.Unmarshal(x, v)
	})
	if err == nil && !found {
		err = fmt.Errorf("store: %s: %w", what, transport.ErrNotFound)
	}
	return closed(err)
}

// listJSON decodes every value under keys starting with kind.
func listJSON[T any](db *DB, kind byte) ([]T, error) {
	var out []T
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b, _ := regBucket(tx)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte{kind}); k != nil && k[0] == kind; k, v = c.Next() {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("store: %s record %q: %w", bucketRegistrations, k[1:], err)
			}
			out = append(out, x)
		}
		return nil
	})
	return out, closed(err)
}
