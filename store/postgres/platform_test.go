package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/stretchr/testify/require"
)

// TestLwM2MOpsSeparateFromCommands: operations and commands are kept in
// tables of their own: the same device's queues never see each other's
// entries, the same id may be used by both, and each has its own
// sequence numbers and modes.
func TestLwM2MOpsSeparateFromCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTest(t)
	now := time.Now().UTC().Truncate(time.Second)
	op := command.Command{ID: "x1", DeviceID: "dev", Seq: 7, Status: command.Pending, CreationTime: now, ExpireTime: 60,
		Body: command.Body{ServiceID: "lwm2m", Method: "read", Paras: json.RawMessage(`{"path":"/3/0"}`)}}
	require.NoError(t, db.LwM2MOps().Write(ctx, command.Write{Commands: []command.Command{op}}))
	q, err := db.Commands().Queue(ctx, "dev")
	require.NoError(t, err)
	require.Empty(t, q, "Commands().Queue after writing an LwM2M operation")
	seq, err := db.Commands().LastSeq(ctx, "dev")
	require.NoError(t, err)
	require.Zero(t, seq, "Commands().LastSeq after an operation")

	cmd := op
	cmd.Seq, cmd.Body = 1, command.Body{ServiceID: "Meter", Method: "SET"}
	require.NoError(t, db.Commands().Write(ctx, command.Write{Commands: []command.Command{cmd}}), "a command may reuse an operation's id")
	require.NoError(t, db.LwM2MOps().PutMode(ctx, "dev", command.Mode{Kind: command.DRX}))
	_, ok, err := db.Commands().Mode(ctx, "dev")
	require.NoError(t, err)
	require.False(t, ok, "an operation queue's mode is not the command queue's")

	got, err := db.LwM2MOps().Get(ctx, "x1")
	require.NoError(t, err)
	require.Equal(t, "read", got.Body.Method)
	seq, err = db.LwM2MOps().LastSeq(ctx, "dev")
	require.NoError(t, err)
	require.EqualValues(t, 7, seq)
	claimed, err := db.LwM2MOps().ClaimCommands(ctx, "n1", now.Add(time.Hour), time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1, "the expired operation is claimed from its own table")
	require.Equal(t, "read", claimed[0].Body.Method)
}

// TestApps: app records are stored, replaced, listed and deleted; bad
// ids and oversized records are refused; nodes starting together on an
// empty database store one first app between them.
func TestApps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	a := openSchema(t, schema).Apps()
	require.NoError(t, a.Put(ctx, "a1", []byte(`{"appId":"a1"}`)))
	require.NoError(t, a.Put(ctx, "a1", []byte(`{"appId":"a1","name":"x"}`)))
	require.NoError(t, a.Put(ctx, "a2", []byte(`{"appId":"a2"}`)))
	all, err := a.All(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"a1": []byte(`{"appId":"a1","name":"x"}`), "a2": []byte(`{"appId":"a2"}`)}, all)
	put, err := a.PutFirst(ctx, "a3", []byte(`{}`))
	require.NoError(t, err)
	require.False(t, put, "PutFirst with apps stored")
	require.NoError(t, a.Delete(ctx, "a1"))
	require.NoError(t, a.Delete(ctx, "nobody"))
	all, err = a.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)

	require.ErrorIs(t, a.Put(ctx, "", []byte("{}")), ErrTooLarge)
	require.ErrorIs(t, a.Put(ctx, "a\x00", []byte("{}")), ErrTooLarge)
	require.ErrorIs(t, a.Put(ctx, "big", make([]byte, MaxAppRecord+1)), ErrTooLarge)
	require.ErrorContains(t, a.Put(ctx, "empty", nil), "empty record")

	// Four nodes on a fresh schema, each creating its demo app.
	fresh := newSchema(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := range 4 {
		db := openSchema(t, fresh)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := db.Apps().PutFirst(ctx, fmt.Sprint("demo-", i), []byte(`{}`))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	all, err = openSchema(t, fresh).Apps().All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1, "one first app among nodes starting together")
	require.Equal(t, 1, winners)
}

// TestOpenSchemaFromDSN: a DSN whose search_path names one schema puts
// the tables there, creating the schema, as Options.Schema does.
func TestOpenSchemaFromDSN(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	sep := "?"
	if strings.Contains(testDSN(), "?") {
		sep = "&"
	}
	db, err := Open(context.Background(), testDSN()+sep+"search_path="+schema, nil)
	require.NoError(t, err)
	defer db.Close()
	require.Equal(t, schema, db.Schema())
	var n int
	require.NoError(t, db.Pool().QueryRow(context.Background(),
		"SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'platform_apps'", schema).Scan(&n))
	require.Equal(t, 1, n, "platform_apps in schema %s", schema)
}
