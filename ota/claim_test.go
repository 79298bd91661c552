package ota_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

// leases is a shared lease table, as the rows of a database would hold
// them: leasedStore views of one MemStore share one.
type leases struct {
	mu    sync.Mutex
	owner map[string]string    // sub-task id, or "task:" + task id
	until map[string]time.Time // same keys
	tasks map[string]int       // task id → ClaimTask calls that got the lease
	fails map[string]int       // task id → writes of it as failed
}

// shared is what the nodes of one test share: the store, its leases, the
// package files and the devices.
func shared() (*ota.MemStore, *leases, *ota.MemFiles, *devices) {
	return ota.NewMemStore(), newLeases(), &ota.MemFiles{}, &devices{}
}

func newLeases() *leases {
	return &leases{owner: map[string]string{}, until: map[string]time.Time{}, tasks: map[string]int{}, fails: map[string]int{}}
}

// take leases key to owner when nobody else holds it at now. l.mu is held.
func (l *leases) take(key, owner string, now time.Time, lease time.Duration) bool {
	if u, ok := l.until[key]; ok && now.Before(u) && l.owner[key] != owner {
		return false
	}
	l.owner[key], l.until[key] = owner, now.Add(lease)
	return true
}

// owners returns how many of ids each owner holds (or last held).
func (l *leases) owners(ids []string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, id := range ids {
		out[l.owner[id]]++
	}
	return out
}

// leasedStore is a MemStore that claims due sub-tasks and tasks from a
// lease table shared with other views (other nodes) of the same MemStore,
// as store/postgres does with rows.
type leasedStore struct {
	*ota.MemStore
	l *leases
}

func (s leasedStore) PutTask(ctx context.Context, t ota.Task, subs []ota.SubTask) error {
	if t.State == ota.TaskFailed {
		s.l.mu.Lock()
		s.l.fails[t.ID]++
		s.l.mu.Unlock()
	}
	return s.MemStore.PutTask(ctx, t, subs)
}

func (s leasedStore) ClaimSubTasks(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]ota.SubTask, error) {
	tasks, err := s.Tasks(ctx)
	if err != nil {
		return nil, err
	}
	var due []ota.SubTask
	for _, t := range tasks {
		subs, err := s.SubTasks(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		for _, st := range subs {
			if !st.State.Final() && !st.Deadline.IsZero() && !st.Deadline.After(now) {
				due = append(due, st)
			}
		}
	}
	slices.SortFunc(due, func(a, b ota.SubTask) int {
		return cmp.Or(a.Deadline.Compare(b.Deadline), strings.Compare(a.ID(), b.ID()))
	})
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	var out []ota.SubTask
	for _, st := range due {
		if len(out) == limit {
			break
		}
		if s.l.take(st.ID(), owner, now, lease) {
			out = append(out, st)
		}
	}
	return out, nil
}

func (s leasedStore) ClaimTask(_ context.Context, owner, taskID string, now time.Time, lease time.Duration) (bool, error) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	ok := s.l.take("task:"+taskID, owner, now, lease)
	if ok {
		s.l.tasks[taskID]++
	}
	return ok, nil
}

func TestNewNodeNeedsClaimer(t *testing.T) {
	files, ch := &ota.MemFiles{}, newLink()
	_, err := ota.New(ota.NewMemStore(), files, ch, ota.Config{Node: "n1"})
	require.ErrorIs(t, err, ota.ErrInvalid)
	require.ErrorContains(t, err, "does not implement ota.Claimer", "Node without a Claimer names what is missing")
	_, err = ota.New(leasedStore{ota.NewMemStore(), newLeases()}, files, ch, ota.Config{Node: "n1"})
	require.NoError(t, err, "Node with a Claimer")
	for _, c := range []ota.Config{{Node: "n\x001"}, {Node: strings.Repeat("n", 201)}, {Node: "n1", ClaimLease: -time.Second}} {
		_, err := ota.New(leasedStore{ota.NewMemStore(), newLeases()}, files, ch, c)
		require.ErrorIs(t, err, ota.ErrInvalid, "Node %q, lease %v", c.Node, c.ClaimLease)
	}
	_, err = ota.New(ota.NewMemStore(), files, ch, ota.Config{})
	require.NoError(t, err, "one node needs no Claimer")
}

// node is one engine of a cluster test: its own link (the devices it
// serves) and listener, the shared store.
type node struct {
	e    *ota.Engine
	l    *listener
	link *link
	stop func()
}

func startNode(t *testing.T, st ota.Store, files *ota.MemFiles, devs ota.Devices, name string, lease time.Duration) *node {
	t.Helper()
	n := &node{l: &listener{}, link: newLink()}
	var err error
	n.e, err = ota.New(st, files, n.link, ota.Config{Node: name, ClaimLease: lease, Devices: devs, Listener: n.l,
		OnlineTimeout: time.Hour, VersionTimeout: 10 * time.Minute})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- n.e.Run(context.Background()) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			require.NoError(t, n.e.Close())
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(n.stop)
	synctest.Wait()
	return n
}

// results counts the result events of the given sub-tasks over nodes, and
// returns how many of them got one and how many events there were.
func results(ids []string, nodes ...*node) (got, total int) {
	seen := map[string]int{}
	for _, n := range nodes {
		n.l.mu.Lock()
		for _, r := range n.l.results {
			seen[r.SubTaskID]++
		}
		n.l.mu.Unlock()
	}
	for _, id := range ids {
		if seen[id] > 0 {
			got++
			total += seen[id]
		}
	}
	return got, total
}

func subIDs(task string, devs []string) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = task + "/" + d
	}
	return out
}

func deviceIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// TestClaimedStepTimeouts (issue 18, CLU-2): two engines (two nodes) on one
// store, with node ids. 30 devices that never come online time out their
// online wait exactly once each, at the deadline, and the task ends failed
// on both nodes (the node that did not time a sub-task out reads it back
// and forgets its copy). Then node A, holding leases on the steps of a
// task node B never saw (created on A after B started), dies: B leaves
// them until the leases end, then times each out once from the stored
// copy, within a quarter lease of that, and ends the task.
func TestClaimedStepTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem, l, files, devs := shared()
		const lease = 20 * time.Second
		a := startNode(t, leasedStore{mem, l}, files, devs, "a", lease)
		addPackage(t, a.e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
		first := deviceIDs("d", 30)
		for _, d := range first {
			devs.set(d, ota.Device{Online: false})
		}
		_, err := a.e.CreateTask(ctx, ota.TaskSpec{ID: "t1", PackageID: "p", Devices: first, Policy: ota.Policy{Execute: ota.DeviceOnline}})
		require.NoError(t, err)
		b := startNode(t, leasedStore{mem, l}, files, devs, "b", lease) // loads t1
		ids := subIDs("t1", first)

		time.Sleep(time.Hour - time.Millisecond)
		synctest.Wait()
		got, _ := results(ids, a, b)
		require.Zero(t, got, "timed out before the deadline")
		time.Sleep(time.Second + time.Millisecond) // a tick may come up to a second late
		synctest.Wait()
		got, total := results(ids, a, b)
		require.Equal(t, len(ids), got, "every online wait timed out at its deadline")
		require.Equal(t, len(ids), total, "once each, on one node")
		t.Logf("timed out by node: %v", l.owners(ids))
		for _, d := range first {
			s, err := mem.SubTask(ctx, "t1", d)
			require.NoError(t, err)
			require.Equal(t, ota.SubFail, s.State)
			require.Equal(t, ota.ReasonOnlineTimeout, s.Reason)
		}
		time.Sleep(lease) // the other node reads its copies back
		synctest.Wait()
		for _, n := range []*node{a, b} {
			task, err := n.e.Task(ctx, "t1")
			require.NoError(t, err)
			require.Equal(t, ota.TaskFailed, task.State, "on node %p", n)
			for _, d := range first[:3] {
				require.False(t, n.e.Upgrading(d))
			}
		}
		_, total = results(ids, a, b)
		require.Equal(t, len(ids), total, "no second result later")
		l.mu.Lock()
		require.Equal(t, 1, l.fails["t1"], "the task is written failed once: the other node follows the stored task")
		l.mu.Unlock()

		// Node A creates t2 (B never loads it) and dies holding leases
		// on its steps past their deadline.
		more := deviceIDs("late", 10)
		for _, d := range more {
			devs.set(d, ota.Device{Online: false})
		}
		_, err = a.e.CreateTask(ctx, ota.TaskSpec{ID: "t2", PackageID: "p", Devices: more, Policy: ota.Policy{Execute: ota.DeviceOnline}})
		require.NoError(t, err)
		synctest.Wait()
		a.stop()
		moreIDs := subIDs("t2", more)
		claimAt := time.Now().Add(time.Hour) // at their deadline
		claimed, err := leasedStore{mem, l}.ClaimSubTasks(ctx, "a", claimAt, lease, 100)
		require.NoError(t, err)
		require.Len(t, claimed, len(more), "node A's leases")
		time.Sleep(time.Hour + lease - time.Millisecond) // the leases end then
		synctest.Wait()
		got, _ = results(moreIDs, b)
		require.Zero(t, got, "node B timed out steps node A holds")
		time.Sleep(lease/4 + time.Second)
		synctest.Wait()
		got, total = results(moreIDs, b)
		require.Equal(t, len(more), got, "node B takes over within a quarter lease of the leases' end")
		require.Equal(t, len(more), total, "once each")
		for _, d := range more {
			s, err := mem.SubTask(ctx, "t2", d)
			require.NoError(t, err)
			require.Equal(t, ota.SubFail, s.State)
			require.Equal(t, ota.ReasonOnlineTimeout, s.Reason)
		}
		task, err := mem.Task(ctx, "t2")
		require.NoError(t, err)
		require.Equal(t, ota.TaskFailed, task.State, "node B ended the task it adopted the steps of")
	})
}

// TestClaimedStepMovedOn: a node that moved a download on since its last
// write keeps the stored deadline ahead of the claims, so another node
// that loaded the same sub-task does not time it out while blocks still
// come; when the device goes silent, the step times out once.
func TestClaimedStepMovedOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem, l, files, devs := shared()
		const lease = 20 * time.Second
		a := startNode(t, leasedStore{mem, l}, files, devs, "a", lease)
		// 100 blocks: a write each tenth of them, 10 blocks.
		addPackage(t, a.e, files, ota.Package{ID: "p", Version: "V2", BlockSize: 32}, content(3200, 2))
		_, err := a.e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}})
		require.NoError(t, err)
		b := startNode(t, leasedStore{mem, l}, files, devs, "b", lease)
		d := newDevice("d", "V1")
		// The device, served by node A, answers the query and the notify
		// and takes block 0, then one more block every 10 minutes.
		d.run(t, a.e, a.link, func() bool { st, _ := d.progress.Load(); return st.Next == 1 })
		a.link.drop("d")
		require.Equal(t, ota.StepDownload, subTask(t, a.e, "t", "d").Step)
		stored, err := mem.SubTask(ctx, "t", "d")
		require.NoError(t, err)
		require.Equal(t, ota.StepDownload, stored.Step)
		for k := range 8 { // 80 minutes, past the deadline first stored
			if k == 5 {
				// The first stored deadline comes in a second; no
				// write was due for progress (one each 10 blocks).
				time.Sleep(10*time.Minute - time.Second)
				synctest.Wait()
				now, err := mem.SubTask(ctx, "t", "d")
				require.NoError(t, err)
				require.True(t, now.Deadline.After(stored.Deadline), "node A moved the stored deadline on before it passed")
				time.Sleep(time.Second)
			} else {
				time.Sleep(10 * time.Minute)
			}
			d.send(t, a.e, [][]byte{pcp.Encode(pcp.BlockRequest{Version: "V2", Block: uint16(k + 1)})})
			a.link.drop("d")
			synctest.Wait()
		}
		got, _ := results([]string{"t/d"}, a, b)
		require.Zero(t, got, "no node timed the download out while blocks came")
		now, err := mem.SubTask(ctx, "t", "d")
		require.NoError(t, err)
		require.True(t, now.Deadline.After(stored.Deadline), "node A moved the stored deadline on")
		// Silence: the download times out an hour after the last block,
		// once.
		time.Sleep(time.Hour + lease)
		synctest.Wait()
		got, total := results([]string{"t/d"}, a, b)
		require.Equal(t, 1, got)
		require.Equal(t, 1, total, "once")
		s, err := mem.SubTask(ctx, "t", "d")
		require.NoError(t, err)
		require.Equal(t, ota.ReasonDownloadTimeout, s.Reason)
	})
}

// TestClaimedRetryOnce: two nodes both hold a failed task waiting for its
// automatic retry; at the retry time exactly one retries it (the one with
// the task's lease), the other forgets the task: attempt 1, once.
func TestClaimedRetryOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem, l, files, devs := shared()
		const lease = 20 * time.Second
		a := startNode(t, leasedStore{mem, l}, files, devs, "a", lease)
		addPackage(t, a.e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
		ds := deviceIDs("d", 5)
		_, err := a.e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: ds,
			Policy: ota.Policy{RetryTimes: 2, RetryInterval: time.Hour}})
		require.NoError(t, err)
		time.Sleep(10*time.Minute + time.Second) // silent devices: the version query times out
		synctest.Wait()
		task, err := mem.Task(ctx, "t")
		require.NoError(t, err)
		require.Equal(t, ota.TaskFailed, task.State)
		require.False(t, task.RetryAt.IsZero(), "a retry is planned")
		b := startNode(t, leasedStore{mem, l}, files, devs, "b", lease) // loads the failed task
		for _, n := range []*node{a, b} {
			for _, d := range ds {
				n.link.clearLog(d)
			}
		}
		time.Sleep(time.Until(task.RetryAt) + time.Second)
		synctest.Wait()
		task, err = mem.Task(ctx, "t")
		require.NoError(t, err)
		require.Equal(t, 1, task.Attempt, "retried once")
		require.Equal(t, ota.TaskProcessing, task.State)
		queried := 0
		for _, n := range []*node{a, b} {
			for _, d := range ds {
				queried += count[pcp.QueryVersion](n.link.messages(d))
			}
		}
		require.Equal(t, len(ds), queried, "one version query per device, from one node")
		for _, d := range ds {
			s, err := mem.SubTask(ctx, "t", d)
			require.NoError(t, err)
			require.Equal(t, 1, s.Attempt)
		}
		l.mu.Lock()
		require.Equal(t, 1, l.tasks["t"], "one node held the task's lease")
		l.mu.Unlock()
		// The retry fails too; the second retry is again made once.
		time.Sleep(10*time.Minute + time.Second)
		synctest.Wait()
		task, err = mem.Task(ctx, "t")
		require.NoError(t, err)
		require.Equal(t, ota.TaskFailed, task.State)
		time.Sleep(time.Until(task.RetryAt) + time.Second)
		synctest.Wait()
		task, err = mem.Task(ctx, "t")
		require.NoError(t, err)
		require.Equal(t, 2, task.Attempt, "second retry once")
	})
}

// endingStore is a leasedStore on which each claimed sub-task ends in
// success right after the claim (the node serving the device finished it
// meanwhile).
type endingStore struct{ leasedStore }

func (s endingStore) ClaimSubTasks(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]ota.SubTask, error) {
	subs, err := s.leasedStore.ClaimSubTasks(ctx, owner, now, lease, limit)
	for _, c := range subs {
		c.State, c.Step, c.Deadline, c.Updated = ota.SubSuccess, "", time.Time{}, now
		if err := s.PutSubTask(ctx, c); err != nil {
			return nil, err
		}
	}
	return subs, err
}

// TestClaimedSnapshotEnded: a node that claims steps it holds no copy of
// times them out only if they are still as claimed: one that ended since
// the claim (on the node serving the device) is left alone.
func TestClaimedSnapshotEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem, l, files, devs := shared()
		const lease = 20 * time.Second
		b := startNode(t, endingStore{leasedStore{mem, l}}, files, devs, "b", lease)
		a := startNode(t, leasedStore{mem, l}, files, devs, "a", lease)
		addPackage(t, a.e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
		ds := deviceIDs("d", 5)
		for _, d := range ds {
			devs.set(d, ota.Device{Online: false})
		}
		_, err := a.e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: ds, Policy: ota.Policy{Execute: ota.DeviceOnline}})
		require.NoError(t, err)
		synctest.Wait()
		a.stop()
		time.Sleep(time.Hour + lease)
		synctest.Wait()
		l.mu.Lock()
		claimedByB := 0
		for _, id := range subIDs("t", ds) {
			if l.owner[id] == "b" {
				claimedByB++
			}
		}
		l.mu.Unlock()
		require.Equal(t, len(ds), claimedByB, "node B claimed the due steps")
		got, _ := results(subIDs("t", ds), b)
		require.Zero(t, got, "node B timed out steps that ended after its claim")
		for _, d := range ds {
			s, err := mem.SubTask(ctx, "t", d)
			require.NoError(t, err)
			require.Equal(t, ota.SubSuccess, s.State)
		}
	})
}
