package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/stretchr/testify/require"
)

// The LwM2M operation queue passes the command.Store conformance suite.
func TestLwM2MOpsConformance(t *testing.T) {
	commandtest.Run(t, func(t *testing.T) command.Store { return openTemp(t, nil).LwM2MOps() })
}

// Operations and commands live in separate buckets: the same device's
// queues never see each other's entries, and both survive a reopen.
func TestLwM2MOpsSeparateFromCommands(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/doze.db"
	db, err := Open(path, nil)
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Second)
	op := command.Command{ID: "op1", DeviceID: "dev", Seq: 1, Status: command.Pending, CreationTime: now, ExpireTime: 60,
		Body: command.Body{ServiceID: "lwm2m", Method: "read", Paras: json.RawMessage(`{"path":"/3/0"}`)}}
	require.NoError(t, db.LwM2MOps().Write(ctx, command.Write{Commands: []command.Command{op}}))
	q, err := db.Commands().Queue(ctx, "dev")
	require.NoError(t, err)
	require.Empty(t, q, "Commands().Queue after writing an LwM2M operation")
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	q, err = db.LwM2MOps().Queue(ctx, "dev")
	require.NoError(t, err)
	require.Len(t, q, 1, "LwM2MOps().Queue after a reopen")
	require.Equal(t, "op1", q[0].ID)
	require.JSONEq(t, `{"path":"/3/0"}`, string(q[0].Body.Paras))
	_, err = db.Commands().Get(ctx, "op1")
	require.ErrorIs(t, err, command.ErrNotFound, "Commands().Get of an operation id")
}
