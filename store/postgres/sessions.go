package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/jackc/pgx/v5"
)

// DTLSSessions is the transport.SessionStore on PostgreSQL: DTLS sessions
// for resumption by session ID, shared by every node (a device may resume
// at any of them). A session is returned for a TTL after it was written;
// every PutSession deletes a few of the oldest expired rows, Prune the
// rest. Values hold master secrets. The interface takes no context; each
// call uses context.Background.
type DTLSSessions struct {
	db  *DB
	ttl time.Duration
	now func() time.Time
}

var _ transport.SessionStore = (*DTLSSessions)(nil)

// DefaultSessionTTL is the TTL of DTLSSessions when none is given: the
// upper limit RFC 5246 §F.1.4 suggests for session IDs.
const DefaultSessionTTL = 24 * time.Hour

// pruneBatch is how many expired sessions a PutSession deletes at most.
const pruneBatch = 8

// DTLSSessions returns the DTLS session store of db; a session is
// returned for ttl after it was written (ttl ≤ 0 means DefaultSessionTTL).
func (db *DB) DTLSSessions(ttl time.Duration) *DTLSSessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &DTLSSessions{db: db, ttl: ttl, now: time.Now}
}

// PutSession implements transport.SessionStore.
func (s *DTLSSessions) PutSession(id, value []byte) error {
	now := s.now()
	ctx := context.Background()
	return s.db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO dtls_sessions (id, written, value) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET written = excluded.written, value = excluded.value`,
			id, now.UnixNano(), value); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM dtls_sessions WHERE id IN
			(SELECT id FROM dtls_sessions WHERE written < $1 ORDER BY written LIMIT $2)`,
			now.Add(-s.ttl).UnixNano(), pruneBatch)
		return err
	})
}

// GetSession implements transport.SessionStore: a session older than the TTL
// is not found.
func (s *DTLSSessions) GetSession(id []byte) ([]byte, error) {
	var v []byte
	err := s.db.pool.QueryRow(context.Background(), "SELECT value FROM dtls_sessions WHERE id = $1 AND written >= $2",
		id, s.now().Add(-s.ttl).UnixNano()).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store/postgres: DTLS session %x: %w", id, transport.ErrNotFound)
	}
	return v, err
}

// DeleteSession implements transport.SessionStore.
func (s *DTLSSessions) DeleteSession(id []byte) error {
	_, err := s.db.pool.Exec(context.Background(), "DELETE FROM dtls_sessions WHERE id = $1", id)
	return err
}

// Prune deletes every session written more than the TTL before now and
// returns how many it deleted.
func (s *DTLSSessions) Prune(now time.Time) (int, error) {
	tag, err := s.db.pool.Exec(context.Background(), "DELETE FROM dtls_sessions WHERE written < $1", now.Add(-s.ttl).UnixNano())
	return int(tag.RowsAffected()), err
}

// Registrations is the transport.RegistrationStore on PostgreSQL (LWM-14):
// registrations in "lwm2m_registrations" and parked DTLS sessions in
// "lwm2m_parked", by endpoint, the latter indexed by Connection ID.
// Parked sessions hold session keys.
type Registrations struct{ db *DB }

var _ transport.RegistrationStore = (*Registrations)(nil)

// Registrations returns the registration store of db.
func (db *DB) Registrations() *Registrations { return &Registrations{db: db} }

// PutRegistration implements transport.RegistrationStore.
func (s *Registrations) PutRegistration(r transport.RegistrationRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.db.pool.Exec(context.Background(), `INSERT INTO lwm2m_registrations (endpoint, expires, rec) VALUES ($1, $2, $3)
		ON CONFLICT (endpoint) DO UPDATE SET expires = excluded.expires, rec = excluded.rec`,
		r.Endpoint, nanos(r.Expires), b)
	return err
}

// DeleteRegistration implements transport.RegistrationStore.
func (s *Registrations) DeleteRegistration(endpoint string) error {
	_, err := s.db.pool.Exec(context.Background(), "DELETE FROM lwm2m_registrations WHERE endpoint = $1", endpoint)
	return err
}

// Registrations implements transport.RegistrationStore.
func (s *Registrations) Registrations() ([]transport.RegistrationRecord, error) {
	return listRecs[transport.RegistrationRecord](context.Background(), s.db, "SELECT rec FROM lwm2m_registrations ORDER BY endpoint")
}

// PutParked implements transport.RegistrationStore.
func (s *Registrations) PutParked(p transport.ParkedSession) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	var cid any
	if len(p.CID) > 0 {
		cid = p.CID
	}
	var addr any
	if p.Addr != "" {
		addr = p.Addr
	}
	_, err = s.db.pool.Exec(context.Background(), `INSERT INTO lwm2m_parked (endpoint, cid, addr, parked, rec) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (endpoint) DO UPDATE SET cid = excluded.cid, addr = excluded.addr, parked = excluded.parked, rec = excluded.rec`,
		p.Endpoint, cid, addr, nanos(p.Parked), b)
	return err
}

// DeleteParked implements transport.RegistrationStore.
func (s *Registrations) DeleteParked(endpoint string) error {
	_, err := s.db.pool.Exec(context.Background(), "DELETE FROM lwm2m_parked WHERE endpoint = $1", endpoint)
	return err
}

// ParkedSessions implements transport.RegistrationStore.
func (s *Registrations) ParkedSessions() ([]transport.ParkedSession, error) {
	return listRecs[transport.ParkedSession](context.Background(), s.db, "SELECT rec FROM lwm2m_parked ORDER BY endpoint")
}

// Registration implements transport.RegistrationStore.
func (s *Registrations) Registration(ctx context.Context, endpoint string) (transport.RegistrationRecord, error) {
	var r transport.RegistrationRecord
	err := s.getJSON(ctx, &r, "registration of "+strconv.Quote(endpoint), "SELECT rec FROM lwm2m_registrations WHERE endpoint = $1", endpoint)
	return r, err
}

// Parked implements transport.RegistrationStore.
func (s *Registrations) Parked(ctx context.Context, endpoint string) (transport.ParkedSession, error) {
	var p transport.ParkedSession
	err := s.getJSON(ctx, &p, "parked DTLS session of "+strconv.Quote(endpoint), "SELECT rec FROM lwm2m_parked WHERE endpoint = $1", endpoint)
	return p, err
}

// ParkedByCID implements transport.RegistrationStore (by the index on cid).
func (s *Registrations) ParkedByCID(ctx context.Context, cid []byte) (transport.ParkedSession, error) {
	var p transport.ParkedSession
	if len(cid) == 0 {
		return p, fmt.Errorf("store/postgres: parked DTLS session without a Connection ID: %w", transport.ErrNotFound)
	}
	err := s.getJSON(ctx, &p, fmt.Sprintf("parked DTLS session with Connection ID %x", cid), "SELECT rec FROM lwm2m_parked WHERE cid = $1 LIMIT 1", cid)
	return p, err
}

// ParkedByAddr implements transport.RegistrationStore (by the index on
// addr, the session parked last there).
func (s *Registrations) ParkedByAddr(ctx context.Context, addr string) (transport.ParkedSession, error) {
	var p transport.ParkedSession
	err := s.getJSON(ctx, &p, "parked DTLS session at "+addr,
		"SELECT rec FROM lwm2m_parked WHERE addr = $1 ORDER BY parked DESC NULLS LAST LIMIT 1", addr)
	return p, err
}

// getJSON decodes the one rec the query returns into v, or reports
// transport.ErrNotFound.
func (s *Registrations) getJSON(ctx context.Context, v any, what, query string, args ...any) error {
	var b []byte
	err := s.db.pool.QueryRow(ctx, query, args...).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store/postgres: %s: %w", what, transport.ErrNotFound)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
