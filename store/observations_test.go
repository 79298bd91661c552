package store

import (
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// TestObservationConformance runs lwm2m's conformance suite on bbolt.
func TestObservationConformance(t *testing.T) {
	lwm2mtest.RunObservationStore(t, func(t *testing.T) transport.ObservationStore { return openTemp(t, nil).Observations() })
}

// TestObservationsSurviveReopen: observation tokens are kept in the file
// and found after Close and Open, as a restarted server needs to
// understand notifications (LWM-9).
func TestObservationsSurviveReopen(t *testing.T) {
	path := t.TempDir() + "/doze.db"
	db, err := Open(path, nil)
	require.NoError(t, err)
	o := db.Observations()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, o.PutObservation(transport.Observation{Token: "b1", Endpoint: "ep1", Path: "/19/0/0", Created: t0.Add(time.Second)}))
	require.NoError(t, o.PutObservation(transport.Observation{Token: "a1", Endpoint: "ep1", Path: "/5/0/3", Created: t0}))
	require.NoError(t, o.PutObservation(transport.Observation{Token: "c1", Endpoint: "ep10", Path: "/t/d", Created: t0}))
	// Replacing a token moves it to its new endpoint.
	require.NoError(t, o.PutObservation(transport.Observation{Token: "d1", Endpoint: "ep1", Path: "/5/0/5", Created: t0}))
	require.NoError(t, o.PutObservation(transport.Observation{Token: "d1", Endpoint: "ep2", Path: "/5/0/5", Created: t0}))
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	o = db.Observations()
	got, err := o.Observation("b1")
	require.NoError(t, err)
	require.Equal(t, "/19/0/0", got.Path)
	list, err := o.Observations("ep1")
	require.NoError(t, err)
	require.Len(t, list, 2, "ep1 has a1 and b1; ep10 and the moved d1 are not its")
	require.Equal(t, "a1", list[0].Token, "oldest first")
	require.NoError(t, o.DeleteObservation("a1"))
	require.NoError(t, o.DeleteObservation("a1"), "deleting twice is fine")
	_, err = o.Observation("a1")
	require.ErrorIs(t, err, transport.ErrNotFound)
	list, err = o.Observations("ep1")
	require.NoError(t, err)
	require.Len(t, list, 1)
}
