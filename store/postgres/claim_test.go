package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/push"
	"github.com/stretchr/testify/require"
)

// claimRace runs workers goroutines on each of the claim functions (one
// per node), each an owner of its own ("node1/w0"), until every one finds
// nothing left, and returns how often each key was claimed. A claim
// function does the work it claims (records its end), as a node would.
func claimRace(t *testing.T, nodes []func(owner string) ([]string, error), workers int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for n, claim := range nodes {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := fmt.Sprintf("node%d/w%d", n+1, w)
				for range 1000 { // bounded: 300 items, ≥ 1 per round
					keys, err := claim(owner)
					if err != nil {
						t.Errorf("node %d worker %d: %v", n+1, w, err)
						return
					}
					if len(keys) == 0 {
						return
					}
					mu.Lock()
					for _, k := range keys {
						seen[k]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return seen
}

func requireEachOnce(t *testing.T, seen map[string]int, want int) {
	t.Helper()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times, want once", k, n)
		}
	}
	require.Len(t, seen, want, "every item claimed")
}

// TestClaimCommandsTwoNodes: two stores on one schema (two nodes) claim
// due commands at once from four goroutines each; every command is
// claimed by exactly one of them, and the lease keeps a third node off
// until it ends (CLU-2).
func TestClaimCommandsTwoNodes(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	var cmds []command.Command
	for i := range 300 {
		c := commandtest.Cmd(fmt.Sprintf("dev%02d", i%30), uint64(i/30+1))
		c.NextTry = t0.Add(time.Duration(i) * time.Millisecond)
		cmds = append(cmds, c)
	}
	require.NoError(t, a.Commands().Write(ctx, command.Write{Commands: cmds}))
	// A command not yet due is never claimed.
	later := commandtest.Cmd("dev99", 1)
	later.NextTry = t0.Add(time.Hour)
	require.NoError(t, a.Commands().Write(ctx, command.Write{Commands: []command.Command{later}}))

	now := t0.Add(time.Second)
	node := func(db *DB) func(string) ([]string, error) {
		return func(owner string) ([]string, error) {
			got, err := db.Commands().ClaimCommands(ctx, owner, now, time.Minute, 7)
			keys := make([]string, len(got))
			for i, c := range got {
				keys[i] = c.ID
				// The work: send, then record the outcome.
				got[i].Status, got[i].ExecuteTime = command.Successful, now
			}
			if err == nil && len(got) > 0 {
				err = db.Commands().Write(ctx, command.Write{Commands: got})
			}
			return keys, err
		}
	}
	requireEachOnce(t, claimRace(t, []func(string) ([]string, error){node(a), node(b)}, 4), 300)

	got, err := b.Commands().ClaimCommands(ctx, "node3", now, time.Minute, 500)
	require.NoError(t, err)
	require.Empty(t, got, "ended commands are not due")

	// Leases: node1 claims and dies; node2 gets nothing until the lease
	// ends, then takes the work over.
	require.NoError(t, a.Commands().Write(ctx, command.Write{Commands: cmds[:10]})) // open again
	now = now.Add(2 * time.Minute)                                                  // the race's leases have ended
	got, err = a.Commands().ClaimCommands(ctx, "node1", now, time.Minute, 500)
	require.NoError(t, err)
	require.Len(t, got, 10)
	require.Equal(t, "dev00-c1", got[0].ID, "earliest due first")
	got, err = b.Commands().ClaimCommands(ctx, "node2", now.Add(59*time.Second), time.Minute, 500)
	require.NoError(t, err)
	require.Empty(t, got, "node1's lease still runs")
	got, err = b.Commands().ClaimCommands(ctx, "node2", now.Add(61*time.Second), time.Minute, 500)
	require.NoError(t, err)
	require.Len(t, got, 10, "after the lease ends node2 takes the work over")
	_, err = a.Commands().ClaimCommands(ctx, "", now, time.Minute, 1)
	require.Error(t, err, "an empty owner is refused")
}

// claimingOutbox is what the push and the forwarding outboxes have alike
// for claiming.
type claimingOutbox interface {
	PutMessages(ctx context.Context, msgs ...push.Message) error
	DeleteMessages(ctx context.Context, msgs ...push.Message) error
	ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]push.Message, error)
}

// claimOutboxRace puts 300 messages (ids and URLs from key) in the outbox
// of schema a and lets two nodes (a and b) claim and deliver them from
// four goroutines each: each message must go to exactly one node. It
// returns the messages and the time they were claimed at.
func claimOutboxRace(t *testing.T, a, b *DB, outbox func(*DB) claimingOutbox, key func(i int) (id, url string)) ([]push.Message, time.Time) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	var msgs []push.Message
	for i := range 300 {
		id, url := key(i)
		msgs = append(msgs, push.Message{ID: id, URL: url, Body: []byte(`{}`), Created: t0, Expires: t0.Add(time.Hour)})
	}
	require.NoError(t, outbox(a).PutMessages(ctx, msgs...))
	node := func(db *DB) func(string) ([]string, error) {
		return func(owner string) ([]string, error) {
			got, err := outbox(db).ClaimMessages(ctx, owner, t0, time.Minute, 5)
			keys := make([]string, len(got))
			for i, m := range got {
				keys[i] = m.URL + " " + m.ID
			}
			if err == nil && len(got) > 0 {
				err = outbox(db).DeleteMessages(ctx, got...) // delivered
			}
			return keys, err
		}
	}
	requireEachOnce(t, claimRace(t, []func(string) ([]string, error){node(a), node(b)}, 4), 300)
	return msgs, t0
}

// TestClaimMessagesTwoNodes: the push outbox, claimed by two nodes at once:
// each message goes to one node (at-least-once delivery then holds
// without duplicates while both nodes live).
func TestClaimMessagesTwoNodes(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	_, t0 := claimOutboxRace(t, a, b, func(db *DB) claimingOutbox { return db.Push() },
		func(i int) (string, string) {
			return fmt.Sprintf("m%03d", i), fmt.Sprintf("https://app%d.example/cb", i%7)
		})
	got, err := b.Push().ClaimMessages(ctx, "node3", t0.Add(2*time.Minute), time.Minute, 500)
	require.NoError(t, err)
	require.Empty(t, got, "delivered messages are gone")
}

// TestClaimSubTasksTwoNodes: upgrade steps whose deadline passed are
// claimed by one node each; ended sub-tasks are never claimed.
func TestClaimSubTasksTwoNodes(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	task := ota.Task{ID: "t1", Kind: ota.Firmware, PackageID: "p1", State: "processing", Created: t0}
	var subs []ota.SubTask
	for i := range 320 {
		s := ota.SubTask{TaskID: "t1", DeviceID: fmt.Sprintf("dev%03d", i), Kind: ota.Firmware,
			State: ota.SubProcessing, Deadline: t0.Add(time.Duration(i) * time.Millisecond)}
		if i >= 300 {
			s.State = ota.SubSuccess
		}
		subs = append(subs, s)
	}
	require.NoError(t, a.OTA().PutTask(ctx, task, subs))
	node := func(db *DB) func(string) ([]string, error) {
		return func(owner string) ([]string, error) {
			got, err := db.OTA().ClaimSubTasks(ctx, owner, t0.Add(time.Second), time.Minute, 6)
			keys := make([]string, len(got))
			for i, s := range got {
				keys[i] = s.ID()
				s.State = ota.SubFail // the step timed out
				if err == nil {
					err = db.OTA().PutSubTask(ctx, s)
				}
			}
			return keys, err
		}
	}
	requireEachOnce(t, claimRace(t, []func(string) ([]string, error){node(a), node(b)}, 4), 300)
	got, err := b.OTA().ClaimSubTasks(ctx, "node3", t0.Add(time.Hour), time.Minute, 500)
	require.NoError(t, err)
	require.Empty(t, got, "ended sub-tasks are never claimed")
}

// TestClaimSubTasksLeases: a sub-task is claimed only once its stored
// deadline passed, earliest deadline first; its lease keeps other owners
// off until it ends and is renewed by its owner's next claim; a step
// moved on (a later deadline written) is not due any more; a step
// without a deadline (queued for a download slot) is never claimed.
func TestClaimSubTasksLeases(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	task := ota.Task{ID: "t1", Kind: ota.Software, PackageID: "p1", State: ota.TaskProcessing, Created: t0}
	subs := []ota.SubTask{
		{TaskID: "t1", DeviceID: "late", State: ota.SubProcessing, Step: ota.StepQuery, Deadline: t0.Add(2 * time.Second)},
		{TaskID: "t1", DeviceID: "early", State: ota.SubWait, Step: ota.StepOnline, Deadline: t0.Add(time.Second)},
		{TaskID: "t1", DeviceID: "queued", State: ota.SubProcessing, Step: ota.StepQueued},
		{TaskID: "t1", DeviceID: "future", State: ota.SubProcessing, Step: ota.StepDownload, Deadline: t0.Add(time.Hour)},
	}
	require.NoError(t, a.OTA().PutTask(ctx, task, subs))
	ids := func(subs []ota.SubTask) (out []string) {
		for _, s := range subs {
			out = append(out, s.DeviceID)
		}
		return out
	}
	got, err := a.OTA().ClaimSubTasks(ctx, "node1", t0, time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, got, "nothing due yet")
	now := t0.Add(3 * time.Second)
	got, err = a.OTA().ClaimSubTasks(ctx, "node1", now, time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"early", "late"}, ids(got), "the due ones, earliest deadline first")
	require.Equal(t, ota.StepOnline, got[0].Step, "as stored")
	got, err = b.OTA().ClaimSubTasks(ctx, "node2", now.Add(59*time.Second), time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, got, "node1's leases still run")
	got, err = a.OTA().ClaimSubTasks(ctx, "node1", now.Add(30*time.Second), time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, got, 2, "node1 renews its own leases")
	got, err = b.OTA().ClaimSubTasks(ctx, "node2", now.Add(61*time.Second), time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, got, "renewed until now+90s")
	// node1 moves "late" on: a later deadline is written.
	moved := subs[0]
	moved.Step, moved.Deadline = ota.StepNotify, now.Add(time.Hour)
	require.NoError(t, a.OTA().PutSubTask(ctx, moved))
	got, err = b.OTA().ClaimSubTasks(ctx, "node2", now.Add(91*time.Second), time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"early"}, ids(got), "after the lease ends node2 takes over what is still due")
	got, err = b.OTA().ClaimSubTasks(ctx, "node2", now.Add(2*time.Hour), time.Minute, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"early"}, ids(got), "limit 1: the earliest")
	got, err = b.OTA().ClaimSubTasks(ctx, "node2", now.Add(2*time.Hour), time.Minute, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"early", "future", "late"}, ids(got), "never the queued one, which has no deadline")
	_, err = a.OTA().ClaimSubTasks(ctx, "", now, time.Minute, 1)
	require.Error(t, err, "an empty owner is refused")
	_, err = a.OTA().ClaimSubTasks(ctx, "node1", now, 0, 1)
	require.Error(t, err, "a lease of 0 is refused")
}

// TestClaimTask: a task's lease (its automatic retry) is one node's until
// it ends; its holder renews it; ids too long for a lease name still
// claim (hashed), and distinct tasks have distinct leases.
func TestClaimTask(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 300)
	for _, id := range []string{"t1", long} {
		ok, err := a.OTA().ClaimTask(ctx, "node1", id, t0, time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "free: node1 takes task %.10s", id)
		ok, err = b.OTA().ClaimTask(ctx, "node2", id, t0.Add(59*time.Second), time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "node1's lease runs")
		ok, err = a.OTA().ClaimTask(ctx, "node1", id, t0.Add(30*time.Second), time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "node1 renews")
		ok, err = b.OTA().ClaimTask(ctx, "node2", id, t0.Add(89*time.Second), time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "renewed until 90s")
		ok, err = b.OTA().ClaimTask(ctx, "node2", id, t0.Add(90*time.Second), time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "node2 takes over once the lease ended")
	}
	ok, err := b.OTA().ClaimTask(ctx, "node1", "t2", t0, time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "another task's lease is its own")
	_, err = a.OTA().ClaimTask(ctx, "node1", "", t0, time.Minute)
	require.Error(t, err, "an empty task id is refused")
	_, err = a.OTA().ClaimTask(ctx, "", "t1", t0, time.Minute)
	require.Error(t, err, "an empty owner is refused")
}
