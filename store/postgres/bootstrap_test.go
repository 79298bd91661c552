package postgres

import (
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// The bootstrap view behaves as store.Bootstrap: keyed by the normalized
// nodeId, absent records wrap transport.ErrNotFound.
func TestBootstrapConfigs(t *testing.T) {
	db := openTest(t)
	b := db.Bootstrap()
	_, err := b.Get("868333030000001")
	require.ErrorIs(t, err, transport.ErrNotFound)
	require.ErrorIs(t, b.Delete("868333030000001"), transport.ErrNotFound)
	c := store.BootstrapConfig{NodeID: "urn:imei:868333030000001", ServerURI: "coaps://platform:5684", SecurityMode: "psk",
		PSK: []byte{1, 2}, Lifetime: 300, Binding: "UQ", Updated: time.Now().UTC().Truncate(time.Second)}
	require.NoError(t, b.Put(c))
	got, err := b.Get("868333030000001")
	require.NoError(t, err)
	require.Equal(t, c, got)
	require.NoError(t, b.Delete("URN:IMEI:868333030000001"))
	_, err = b.Get("868333030000001")
	require.ErrorIs(t, err, transport.ErrNotFound)
}
