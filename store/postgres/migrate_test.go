package postgres

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// TestMigrateConcurrentOpen: four nodes start at once on an empty schema;
// the advisory lock makes each step run once and every Open succeed.
func TestMigrateConcurrentOpen(t *testing.T) {
	schema := newSchema(t)
	var wg sync.WaitGroup
	dbs := make([]*DB, 4)
	errs := make([]error, 4)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(context.Background(), testDSN(), &Options{Schema: schema, MaxConns: 2})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "node %d", i)
		defer dbs[i].Close()
	}
	steps, err := loadMigrations(migrations)
	require.NoError(t, err)
	var n, v int
	require.NoError(t, dbs[0].Pool().QueryRow(context.Background(), "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &v))
	require.Equal(t, len(steps), n, "each step recorded once")
	require.Equal(t, steps[len(steps)-1].version, v)
}

// TestMigrateSteps: a later step applies on top of an existing schema; a
// failing step leaves nothing behind; a database newer than the build is
// refused with ErrSchemaNewer.
func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	steps, err := loadMigrations(migrations)
	require.NoError(t, err)
	last := steps[len(steps)-1].version

	bad := append(steps, migration{version: last + 1, name: "bad.sql", sql: "CREATE TABLE t_ok (a int); SELECT no_such_column FROM devices"})
	err = db.migrate(ctx, bad)
	var me *MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, last+1, me.Version)
	v, err := db.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, last, v, "the failed step is not recorded")
	var exists bool
	require.NoError(t, db.Pool().QueryRow(ctx, "SELECT to_regclass('t_ok') IS NOT NULL").Scan(&exists))
	require.False(t, exists, "nothing of the failed step stays")

	good := append(steps, migration{version: last + 1, name: "more.sql", sql: "ALTER TABLE devices ADD COLUMN note text"})
	require.NoError(t, db.migrate(ctx, good))
	v, _ = db.Version(ctx)
	require.Equal(t, last+1, v)

	err = db.Migrate(ctx) // this build knows only up to last
	require.ErrorIs(t, err, ErrSchemaNewer)
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	_, err := loadMigrations(fstest.MapFS{"migrations/init.sql": {Data: []byte("")}})
	require.ErrorContains(t, err, "NNNN_name.sql")
	_, err = loadMigrations(fstest.MapFS{"migrations/0001_a.sql": {}, "migrations/001_b.sql": {}})
	require.ErrorContains(t, err, "share version 1")
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, testDSN(), &Options{Schema: "Robert'); DROP TABLE x;--"})
	require.ErrorIs(t, err, ErrSchemaName)
	var oe *OpenError
	require.ErrorAs(t, err, &oe)

	_, err = Open(ctx, "postgres://u:secret@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", nil)
	require.ErrorAs(t, err, &oe, "a server that does not answer")
	require.NotContains(t, err.Error(), "secret", "the password is not in the message")
}
