package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/ota"
	"github.com/stretchr/testify/require"
)

// otaResults counts the result events of ota engines by sub-task id.
type otaResults struct {
	mu  sync.Mutex
	got map[string]int
}

func (r *otaResults) UpgradeStateChanged(ota.StateEvent) {}

func (r *otaResults) UpgradeResult(e ota.ResultEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string]int{}
	}
	r.got[e.SubTaskID]++
}

// count returns how many of ids got a result, and how many results they
// got in all.
func (r *otaResults) count(ids []string) (subs, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if n := r.got[id]; n > 0 {
			subs++
			total += n
		}
	}
	return subs, total
}

type offline struct{}

func (offline) Device(context.Context, string) (ota.Device, bool) { return ota.Device{}, true }

type noFrames struct{}

func (noFrames) SendFrame(context.Context, string, []byte) error { return nil }

// claimingOTA starts an ota engine of node on db whose devices are all
// offline, with a 1 s online wait, stopped when the test ends or earlier
// by the returned stop.
func claimingOTA(t *testing.T, db *DB, files *ota.MemFiles, node string, lease time.Duration, l ota.Listener) (*ota.Engine, func()) {
	t.Helper()
	e, err := ota.New(db.OTA(), files, noFrames{}, ota.Config{Node: node, ClaimLease: lease, Devices: offline{}, Listener: l,
		OnlineTimeout: time.Second})
	require.NoError(t, err)
	return e, runEngine(t, e.Run, e.Close)
}

func otaTask(t *testing.T, e *ota.Engine, id string, n int) []string {
	t.Helper()
	devs := make([]string, n)
	ids := make([]string, n)
	for i := range devs {
		devs[i] = fmt.Sprintf("%s-dev%03d", id, i)
		ids[i] = id + "/" + devs[i]
	}
	_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: id, PackageID: "p", Devices: devs, Policy: ota.Policy{Execute: ota.DeviceOnline}})
	require.NoError(t, err)
	return ids
}

// TestOTATimeoutsTwoNodes (issue 18, CLU-2): two ota engines (two nodes)
// on one schema both hold a task of 100 devices that never come online:
// each online wait times out exactly once, on one node or the other (one
// result event per sub-task), and both nodes end up with the task
// failed. Then node A dies holding leases on the due steps of a task node
// B never loaded: node B leaves them until the leases end, then times
// each out once and ends that task too.
func TestOTATimeoutsTwoNodes(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	var r otaResults
	const lease = 3 * time.Second
	files := &ota.MemFiles{}
	files.Put("p", []byte("the new software"))
	ea, stopA := claimingOTA(t, a, files, "node-a", lease, &r)
	_, err := ea.AddPackage(ctx, ota.Package{ID: "p", Kind: ota.Software, Version: "V2"})
	require.NoError(t, err)
	ids := otaTask(t, ea, "t1", 100)
	eb, _ := claimingOTA(t, b, files, "node-b", lease, &r) // loads t1
	_, err = eb.Task(ctx, "t1")
	require.NoError(t, err)

	require.Eventually(t, func() bool { n, _ := r.count(ids); return n == len(ids) }, 20*time.Second, 10*time.Millisecond,
		"every online wait timed out")
	for _, e := range []*ota.Engine{ea, eb} {
		require.Eventually(t, func() bool { task, err := e.Task(ctx, "t1"); return err == nil && task.State == ota.TaskFailed },
			20*time.Second, 10*time.Millisecond, "the task failed on both nodes")
	}
	time.Sleep(lease + time.Second) // any second timeout would come by now
	n, total := r.count(ids)
	require.Equal(t, len(ids), n)
	require.Equal(t, len(ids), total, "one result per sub-task")
	subs, err := a.OTA().SubTasks(ctx, "t1")
	require.NoError(t, err)
	for _, s := range subs {
		require.Equal(t, ota.SubFail, s.State)
		require.Equal(t, ota.ReasonOnlineTimeout, s.Reason)
	}

	// Node A creates t2 and dies holding leases on its due steps.
	more := otaTask(t, ea, "t2", 20)
	stopA()
	claimAt := time.Now().Add(time.Second) // their deadline
	claimed, err := a.OTA().ClaimSubTasks(ctx, "node-a", claimAt, lease, 500)
	require.NoError(t, err)
	require.Len(t, claimed, len(more), "node A's leases")
	until := claimAt.Add(lease)
	time.Sleep(time.Until(until.Add(-time.Second))) // deadlines passed 2 s ago, leases still on
	n, _ = r.count(more)
	require.Zero(t, n, "node B timed out steps whose lease node A still holds")
	require.Eventually(t, func() bool { n, _ := r.count(more); return n == len(more) }, 15*time.Second, 10*time.Millisecond,
		"node B takes over once node A's leases end")
	require.GreaterOrEqual(t, time.Now(), until)
	require.Eventually(t, func() bool { task, err := b.OTA().Task(ctx, "t2"); return err == nil && task.State == ota.TaskFailed },
		15*time.Second, 10*time.Millisecond, "node B ended the task")
	time.Sleep(time.Second)
	n, total = r.count(more)
	require.Equal(t, len(more), n)
	require.Equal(t, len(more), total, "one result per late sub-task")
}
