package postgres

import (
	"context"
	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/otatest"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/push/pushtest"
	"github.com/doze-io/doze/store/storetest"
	"github.com/stretchr/testify/require"
	"testing"

	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/registry/registrytest"
)

func TestRegistryConformance(t *testing.T) {
	t.Parallel()
	registrytest.Run(t, func(t *testing.T) registry.Store { return openTest(t).Registry() })
}

func TestCommandsConformance(t *testing.T) {
	t.Parallel()
	commandtest.Run(t, func(t *testing.T) command.Store { return openTest(t).Commands() })
}

// TestLwM2MOpsConformance: the LwM2M operation queue passes the
// command.Store suite, as the bbolt one does.
func TestLwM2MOpsConformance(t *testing.T) {
	t.Parallel()
	commandtest.Run(t, func(t *testing.T) command.Store { return openTest(t).LwM2MOps() })
}

func TestPushConformance(t *testing.T) {
	t.Parallel()
	pushtest.Run(t, func(t *testing.T) push.Store { return openTest(t).Push() })
}

func TestOTAConformance(t *testing.T) {
	t.Parallel()
	otatest.Run(t, func(t *testing.T) ota.Store { return openTest(t).OTA() })
}

func TestObservationsConformance(t *testing.T) {
	t.Parallel()
	lwm2mtest.RunObservationStore(t, func(t *testing.T) transport.ObservationStore { return openTest(t).Observations() })
}

func TestStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		db := openTest(t)
		return storetest.Stores{Owners: db.Owners(), History: db.History(), Shadow: db.Shadow(), Inbox: db.Inbox(), Products: db.Products(), Reporter: db,
			DeviceLog: func(max int) storetest.DeviceLog { return db.DeviceLog(max) }}
	})
}

// The views have the method sets the storetest interfaces name, so a
// platform can take bbolt or PostgreSQL behind them.
var (
	_ storetest.Owners    = (*Owners)(nil)
	_ storetest.History   = (*History)(nil)
	_ storetest.Shadow    = (*Shadow)(nil)
	_ storetest.Inbox     = (*Inbox)(nil)
	_ storetest.Products  = (*Products)(nil)
	_ storetest.Reporter  = (*DB)(nil)
	_ storetest.DeviceLog = (*DeviceLog)(nil)
)

// TestRegistryRefusesUnstorableText: a NUL byte or invalid UTF-8, which
// PostgreSQL text cannot hold, is refused with registry.ErrInvalid naming
// the field, on Create and on Update; nothing is stored.
func TestRegistryRefusesUnstorableText(t *testing.T) {
	ctx := context.Background()
	r := openTest(t).Registry()
	err := r.Create(ctx, registry.Device{ID: "d1", NodeID: "8683\x00", Status: "OFFLINE"})
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorContains(t, err, "nodeId")
	_, err = r.Get(ctx, "d1")
	require.ErrorIs(t, err, registry.ErrNotFound)

	require.NoError(t, r.Create(ctx, registry.Device{ID: "d1", NodeID: "868333030000001", Status: "OFFLINE"}))
	_, err = r.Update(ctx, "d1", func(d *registry.Device) error { d.Info.Name = "\xff\xfe"; return nil })
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorContains(t, err, "name")
}
