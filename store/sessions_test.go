package store

import (
	"context"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

func TestDTLSSessionsConformance(t *testing.T) {
	lwm2mtest.RunSessionStore(t, func(t *testing.T) transport.SessionStore { return openTemp(t, nil).DTLSSessions(0) })
}

func TestRegistrationsConformance(t *testing.T) {
	lwm2mtest.RunRegistrationStore(t, func(t *testing.T) transport.RegistrationStore { return openTemp(t, nil).Registrations() })
}

// A DTLS session is returned for the TTL after it was written, then not;
// each PutSession prunes a few expired ones (the bucket stays bounded
// without a sweeper) and Prune the rest. Rewriting a session renews it.
func TestDTLSSessionsExpire(t *testing.T) {
	s := openTemp(t, nil).DTLSSessions(time.Hour)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	for i := range 20 {
		require.NoError(t, s.PutSession([]byte{byte(i)}, []byte{byte(i)}))
	}
	now = now.Add(30 * time.Minute)
	require.NoError(t, s.PutSession([]byte{0}, []byte("renewed")))
	now = now.Add(31 * time.Minute) // the first 20 writes are 61 minutes old
	_, err := s.GetSession([]byte{1})
	require.ErrorIs(t, err, transport.ErrNotFound, "older than the TTL")
	got, err := s.GetSession([]byte{0})
	require.NoError(t, err, "rewritten 31 minutes ago")
	require.Equal(t, "renewed", string(got))
	n, err := s.Len()
	require.NoError(t, err)
	require.Equal(t, 20, n, "nothing pruned yet")

	require.NoError(t, s.PutSession([]byte{100}, []byte("new")))
	n, _ = s.Len()
	require.Equal(t, 21-pruneBatch, n, "a write pruned %d expired sessions, oldest first", pruneBatch)
	pruned, err := s.Prune(now)
	require.NoError(t, err)
	require.Equal(t, 19-pruneBatch, pruned)
	n, _ = s.Len()
	require.Equal(t, 2, n, "the renewed and the new session remain")
	require.NoError(t, s.DeleteSession([]byte{0}))
	pruned, err = s.Prune(now.Add(2 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, pruned)
}

// Sessions, registrations and parked sessions are kept in the file: they
// are found after Close and Open; a parked session is found by its
// Connection ID, and no longer once deleted or replaced by one without.
func TestSessionsSurviveReopen(t *testing.T) {
	path := t.TempDir() + "/doze.db"
	db, err := Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, db.DTLSSessions(0).PutSession([]byte("sid"), []byte("secret")))
	r := db.Registrations()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, r.PutRegistration(transport.RegistrationRecord{Endpoint: "ep1", Expires: t0, Data: []byte("{}")}))
	cid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	require.NoError(t, r.PutParked(transport.ParkedSession{Endpoint: "ep1", CID: cid, Addr: "127.0.0.1:1", State: []byte{7}}))
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	got, err := db.DTLSSessions(0).GetSession([]byte("sid"))
	require.NoError(t, err)
	require.Equal(t, "secret", string(got))
	r = db.Registrations()
	rs, err := r.Registrations()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	p, err := r.ParkedByCID(context.Background(), cid)
	require.NoError(t, err)
	require.Equal(t, "ep1", p.Endpoint)
	require.NoError(t, r.PutParked(transport.ParkedSession{Endpoint: "ep1", Addr: "127.0.0.1:2", State: []byte{8}}))
	_, err = r.ParkedByCID(context.Background(), cid)
	require.ErrorIs(t, err, transport.ErrNotFound, "replaced by a session without a Connection ID")
	require.NoError(t, r.DeleteParked("ep1"))
	ps, err := r.ParkedSessions()
	require.NoError(t, err)
	require.Empty(t, ps)
}
