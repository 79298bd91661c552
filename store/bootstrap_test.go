package store

import (
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// A bootstrap configuration is kept under the normalized nodeId, survives
// a reopen, and Get and Delete of an absent one wrap transport.ErrNotFound.
func TestBootstrapConfigs(t *testing.T) {
	path := t.TempDir() + "/doze.db"
	db, err := Open(path, nil)
	require.NoError(t, err)
	_, err = db.Bootstrap().Get("868333030000001")
	require.ErrorIs(t, err, transport.ErrNotFound, "Get before any Put (no bucket yet)")
	require.ErrorIs(t, db.Bootstrap().Delete("868333030000001"), transport.ErrNotFound)

	c := BootstrapConfig{NodeID: "urn:imei:868333030000001", ServerURI: "coaps://platform:5684", SecurityMode: "psk",
		PSK: []byte{1, 2}, Lifetime: 300, Binding: "UQ", Updated: time.Now().UTC().Truncate(time.Second)}
	require.NoError(t, db.Bootstrap().Put(c))
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	got, err := db.Bootstrap().Get("868333030000001")
	require.NoError(t, err, "Get by the short form after a reopen")
	require.Equal(t, c, got)
	require.NoError(t, db.Bootstrap().Delete("URN:IMEI:868333030000001"))
	_, err = db.Bootstrap().Get("868333030000001")
	require.ErrorIs(t, err, transport.ErrNotFound, "Get after Delete")
}
