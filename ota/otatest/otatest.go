// Package otatest is the conformance suite of ota.Store: every
// implementation (the in-memory one, the bbolt one in store, any other)
// must pass Run.
package otatest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/ota"
	"github.com/stretchr/testify/require"
)

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) ota.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

	t.Run("Packages", func(t *testing.T) {
		st := newStore(t)
		_, err := st.Package(ctx, "p1")
		require.ErrorIs(t, err, ota.ErrNotFound, "Package of an absent id")
		p := ota.Package{ID: "p1", Kind: ota.Software, Version: "V1.0", DeviceType: "Meter", Manufacturer: "Acme",
			Model: "M1", Protocol: "CoAP", SourceVersions: []string{"V0.8", "V0.9"}, Description: "fix",
			BlockSize: 200, Size: 1000, Digest: [32]byte{1, 2, 3}, CheckCode: 0xBEEF, Created: at}
		require.NoError(t, st.PutPackage(ctx, p))
		require.NoError(t, st.PutPackage(ctx, ota.Package{ID: "p0", Kind: ota.Firmware, Version: "F2", Created: at}))
		got, err := st.Package(ctx, "p1")
		require.NoError(t, err)
		require.True(t, got.Created.Equal(at))
		got.Created = at
		require.Equal(t, p, got)
		got.SourceVersions[0] = "changed"
		again, _ := st.Package(ctx, "p1")
		require.Equal(t, "V0.8", again.SourceVersions[0], "a returned slice is shared with the store")
		all, err := st.Packages(ctx)
		require.NoError(t, err)
		require.Len(t, all, 2)
		require.Equal(t, "p0", all[0].ID, "Packages is ordered by id")
		require.NoError(t, st.DeletePackage(ctx, "p1"))
		require.ErrorIs(t, st.DeletePackage(ctx, "p1"), ota.ErrNotFound)
		_, err = st.Package(ctx, "p1")
		require.ErrorIs(t, err, ota.ErrNotFound)
	})

	t.Run("TasksAndSubTasks", func(t *testing.T) {
		st := newStore(t)
		_, err := st.Task(ctx, "t1")
		require.ErrorIs(t, err, ota.ErrNotFound)
		_, err = st.SubTasks(ctx, "t1")
		require.ErrorIs(t, err, ota.ErrNotFound)
		require.ErrorIs(t, st.PutSubTask(ctx, ota.SubTask{TaskID: "t1", DeviceID: "d1"}), ota.ErrNotFound,
			"PutSubTask of a task that does not exist")
		task := ota.Task{ID: "t1", Kind: ota.Software, PackageID: "p1", Devices: []string{"d1", "d2"},
			Policy: ota.Policy{Execute: ota.Window, Start: at, End: at.Add(time.Hour), RetryTimes: 2, RetryInterval: time.Minute},
			State:  ota.TaskProcessing, Created: at, Updated: at, Attempt: 1, RetryAt: at.Add(time.Minute)}
		subs := []ota.SubTask{
			{TaskID: "t1", DeviceID: "d2", Kind: ota.Software, State: ota.SubWait, Step: ota.StepOnline, TargetVersion: "V1.0", Deadline: at.Add(time.Hour)},
			{TaskID: "t1", DeviceID: "d1", Kind: ota.Software, State: ota.SubFail, Reason: ota.ReasonTaskConflict, TargetVersion: "V1.0"},
		}
		require.NoError(t, st.PutTask(ctx, task, subs))
		got, err := st.Task(ctx, "t1")
		require.NoError(t, err)
		require.True(t, got.RetryAt.Equal(task.RetryAt) && got.Policy.Start.Equal(at))
		got.RetryAt, got.Policy.Start, got.Policy.End, got.Created, got.Updated = task.RetryAt, task.Policy.Start, task.Policy.End, at, at
		require.Equal(t, task, got)
		list, err := st.SubTasks(ctx, "t1")
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "d1", list[0].DeviceID, "SubTasks is ordered by device id")
		require.Equal(t, ota.ReasonTaskConflict, list[0].Reason)

		s := subs[0]
		s.State, s.Step, s.Blocks, s.SourceVersion = ota.SubProcessing, ota.StepDownload, 42, "V0.9"
		require.NoError(t, st.PutSubTask(ctx, s))
		one, err := st.SubTask(ctx, "t1", "d2")
		require.NoError(t, err)
		require.Equal(t, ota.SubProcessing, one.State)
		require.Equal(t, 42, one.Blocks)
		require.Equal(t, "V0.9", one.SourceVersion)
		_, err = st.SubTask(ctx, "t1", "d9")
		require.ErrorIs(t, err, ota.ErrNotFound)

		// PutTask without sub-tasks keeps the existing ones.
		task.State = ota.TaskFailed
		require.NoError(t, st.PutTask(ctx, task, nil))
		list, err = st.SubTasks(ctx, "t1")
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Error(t, st.PutTask(ctx, ota.Task{ID: "t2"}, []ota.SubTask{{TaskID: "t1", DeviceID: "x"}}),
			"PutTask with a sub-task of another task")

		require.NoError(t, st.PutTask(ctx, ota.Task{ID: "t0", Created: at}, nil))
		tasks, err := st.Tasks(ctx)
		require.NoError(t, err)
		require.Len(t, tasks, 2)
		require.Equal(t, "t0", tasks[0].ID, "Tasks is ordered by id")
		list, err = st.SubTasks(ctx, "t0")
		require.NoError(t, err)
		require.Empty(t, list)

		// Task ids that extend another task's id (as "t1" and "t1/x" or
		// "t10") keep their sub-tasks apart.
		for _, id := range []string{"t1/x", "t10"} {
			require.NoError(t, st.PutTask(ctx, ota.Task{ID: id, Created: at}, []ota.SubTask{{TaskID: id, DeviceID: "d0"}}))
			l, err := st.SubTasks(ctx, id)
			require.NoError(t, err)
			require.Len(t, l, 1, "sub-tasks of %s", id)
		}
		list, err = st.SubTasks(ctx, "t1")
		require.NoError(t, err)
		require.Len(t, list, 2, "sub-tasks of t1 beside t1/x and t10")
		_, err = st.SubTask(ctx, "t1", "d0")
		require.ErrorIs(t, err, ota.ErrNotFound)
	})

	t.Run("ConcurrentSubTasks", func(t *testing.T) {
		st := newStore(t)
		const n = 64
		require.NoError(t, st.PutTask(ctx, ota.Task{ID: "t", Created: at}, nil))
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- st.PutSubTask(ctx, ota.SubTask{TaskID: "t", DeviceID: fmt.Sprintf("d%03d", i), State: ota.SubSuccess})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		list, err := st.SubTasks(ctx, "t")
		require.NoError(t, err)
		require.Len(t, list, n)
	})
}
