package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

func TestDTLSSessionsConformance(t *testing.T) {
	t.Parallel()
	lwm2mtest.RunSessionStore(t, func(t *testing.T) transport.SessionStore { return openTest(t).DTLSSessions(0) })
}

func TestRegistrationsConformance(t *testing.T) {
	t.Parallel()
	lwm2mtest.RunRegistrationStore(t, func(t *testing.T) transport.RegistrationStore { return openTest(t).Registrations() })
}

// A DTLS session is returned for the TTL after it was written; writes
// prune a few expired sessions, Prune the rest. A parked session is found
// by its Connection ID until replaced by one without.
func TestDTLSSessionsExpire(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	s := db.DTLSSessions(time.Hour)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	for i := range 20 {
		require.NoError(t, s.PutSession([]byte{byte(i)}, []byte{byte(i)}))
	}
	now = now.Add(61 * time.Minute)
	_, err := s.GetSession([]byte{1})
	require.ErrorIs(t, err, transport.ErrNotFound, "older than the TTL")
	require.NoError(t, s.PutSession([]byte{100}, []byte("new")))
	pruned, err := s.Prune(now)
	require.NoError(t, err)
	require.Equal(t, 20-pruneBatch, pruned, "the write pruned %d", pruneBatch)
	got, err := s.GetSession([]byte{100})
	require.NoError(t, err)
	require.Equal(t, "new", string(got))

	r := db.Registrations()
	cid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	require.NoError(t, r.PutParked(transport.ParkedSession{Endpoint: "ep1", CID: cid, Addr: "127.0.0.1:1", State: []byte{7}}))
	p, err := r.ParkedByCID(context.Background(), cid)
	require.NoError(t, err)
	require.Equal(t, "ep1", p.Endpoint)
	require.NoError(t, r.PutParked(transport.ParkedSession{Endpoint: "ep1", Addr: "127.0.0.1:2", State: []byte{8}}))
	_, err = r.ParkedByCID(context.Background(), cid)
	require.ErrorIs(t, err, transport.ErrNotFound)
}
