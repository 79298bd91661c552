package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOwners: a resource's owner is claimed once, replaced by Set,
// forgotten by Delete, listed per application and kind, and kept across
// a reopen (APP-3).
func TestOwners(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/doze.db"
	db, err := Open(path, nil)
	require.NoError(t, err)
	o := db.Owners()

	owner, err := o.Owner(ctx, "group", "g1")
	require.NoError(t, err)
	require.Empty(t, owner, "nothing is owned in a new file")
	owner, err = o.Claim(ctx, "group", "g1", "app-a")
	require.NoError(t, err)
	require.Equal(t, "app-a", owner)
	owner, err = o.Claim(ctx, "group", "g1", "app-b")
	require.NoError(t, err)
	require.Equal(t, "app-a", owner, "a second claim finds the first owner")
	require.NoError(t, o.Set(ctx, "group", "g2", "app-a"))
	require.NoError(t, o.Set(ctx, "product", "acme/WM1", "app-a"))
	require.NoError(t, o.Set(ctx, "group", "g3", "app-b"))
	ids, err := o.IDs(ctx, "app-a", "group")
	require.NoError(t, err)
	require.Equal(t, []string{"g1", "g2"}, ids)

	require.NoError(t, o.Set(ctx, "group", "g2", "app-b"), "Set moves a resource")
	ids, err = o.IDs(ctx, "app-a", "group")
	require.NoError(t, err)
	require.Equal(t, []string{"g1"}, ids)
	ids, err = o.IDs(ctx, "app-b", "group")
	require.NoError(t, err)
	require.Equal(t, []string{"g2", "g3"}, ids)

	require.NoError(t, o.Delete(ctx, "group", "g1"))
	require.NoError(t, o.Delete(ctx, "group", "never"))
	ids, err = o.IDs(ctx, "app-a", "group")
	require.NoError(t, err)
	require.Empty(t, ids)
	_, err = o.Claim(ctx, "group", "", "app-a")
	require.Error(t, err, "an empty id is refused")
	_, err = o.Claim(ctx, "group", "x\x00y", "app-a")
	require.Error(t, err, "a NUL is refused")

	done, err := o.Done(ctx, "devices")
	require.NoError(t, err)
	require.False(t, done)
	require.NoError(t, o.MarkDone(ctx, "devices"))
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	o = db.Owners()
	done, err = o.Done(ctx, "devices")
	require.NoError(t, err)
	require.True(t, done)
	owner, err = o.Owner(ctx, "product", "acme/WM1")
	require.NoError(t, err)
	require.Equal(t, "app-a", owner)
	ids, err = o.IDs(ctx, "app-b", "group")
	require.NoError(t, err)
	require.Equal(t, []string{"g2", "g3"}, ids)
}
