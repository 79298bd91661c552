// Package commandtest is the conformance suite for command.Store
// implementations: the in-memory one, the bbolt one in package store, and
// any a user writes.
//
//	func TestStore(t *testing.T) {
//		commandtest.Run(t, func(t *testing.T) command.Store { return myStore(t) })
//	}
package commandtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/stretchr/testify/require"
)

// Run runs every conformance test against stores made by newStore, one
// fresh (empty) store per subtest.
func Run(t *testing.T, newStore func(t *testing.T) command.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st command.Store)
	}{
		{"WriteGet", testWriteGet},
		{"NotFound", testNotFound},
		{"BadRecordsWriteNothing", testBadRecords},
		{"ReplaceBySeq", testReplace},
		{"SameCommandTwiceInOneWrite", testTwice},
		{"QueueOrderAndPrefixDevices", testQueue},
		{"FrontHeadAndDue", testFront},
		{"LastSeq", testLastSeq},
		{"ListPaging", testList},
		{"DueIndex", testDue},
		{"DueFollowsChanges", testDueChanges},
		{"Modes", testModes},
		{"TaskCounts", testTasks},
		{"TaskCountUnknownTaskWritesNothing", testTaskUnknown},
		{"ConcurrentWrites", testConcurrent},
		{"PruneIfPruner", testPrune},
		{"UplinksIfUplinks", testUplinks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)

// Cmd returns a PENDING command of device dev at position seq, created at
// t0 with expireTime 3600, and every field set to something.
func Cmd(dev string, seq uint64) command.Command {
	return command.Command{
		ID: fmt.Sprintf("%s-c%d", dev, seq), AppID: "app1", DeviceID: dev,
		Body:        command.Body{ServiceID: "Switch", Method: "SET", Paras: json.RawMessage(`{"on":1}`)},
		CallbackURL: "https://app.example:8443/cb", ExpireTime: 3600, MaxRetransmit: 2,
		Status: command.Pending, CreationTime: t0, Seq: seq, Key: "k", TaskID: "",
	}
}

// norm makes times comparable with require.Equal across encodings: UTC, no
// monotonic reading.
func norm(c command.Command) command.Command {
	for _, p := range []*time.Time{&c.CreationTime, &c.PlatformIssuedTime, &c.DeliveredTime, &c.ExecuteTime, &c.Deadline, &c.NextTry, &c.SendAttempt} {
		if p.IsZero() {
			*p = time.Time{}
		} else {
			*p = p.UTC().Round(0)
		}
	}
	if len(c.Result) == 0 {
		c.Result = nil
	}
	return c
}

func requireSame(t *testing.T, want, got command.Command, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, norm(want), norm(got), msgAndArgs...)
}

func write(t *testing.T, st command.Store, cs ...command.Command) {
	t.Helper()
	require.NoError(t, st.Write(context.Background(), command.Write{Commands: cs}), "Write(%d commands)", len(cs))
}

func ids(cs []command.Command) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func testWriteGet(t *testing.T, st command.Store) {
	ctx := context.Background()
	c := Cmd("dev1", 1)
	c.Status = command.Failed
	c.PlatformIssuedTime = t0.Add(time.Second)
	c.DeliveredTime = t0.Add(2 * time.Second)
	c.ExecuteTime = t0.Add(3 * time.Second)
	c.IssuedTimes = 2
	c.TaskID = "task1"
	c.Reason = "device reported errcode 3"
	c.ErrCode = 3
	c.Result = json.RawMessage(`{"code":3}`)
	c.Retransmits = 1
	require.NoError(t, st.PutTask(ctx, command.Task{ID: "task1", Total: 1}))
	write(t, st, c)
	got, err := st.Get(ctx, c.ID)
	require.NoError(t, err, "Get(%s)", c.ID)
	requireSame(t, c, got, "Get returns every field written")

	p := Cmd("dev1", 2)
	p.Status = command.Sent
	p.Deadline = t0.Add(300 * time.Second)
	p.NextTry = t0.Add(10 * time.Second)
	write(t, st, p)
	got, err = st.Get(ctx, p.ID)
	require.NoError(t, err)
	requireSame(t, p, got)

	a := Cmd("dev1", 3) // a PENDING head about to be sent (CMD-9)
	a.NextTry = t0.Add(5 * time.Second)
	a.SendAttempt = t0.Add(5 * time.Second)
	write(t, st, a)
	got, err = st.Get(ctx, a.ID)
	require.NoError(t, err)
	requireSame(t, a, got, "SendAttempt survives")
}

func testNotFound(t *testing.T, st command.Store) {
	ctx := context.Background()
	_, err := st.Get(ctx, "nope")
	require.ErrorIs(t, err, command.ErrNotFound, "Get of an unknown id")
	_, err = st.Task(ctx, "nope")
	require.ErrorIs(t, err, command.ErrNotFound, "Task of an unknown id")
	q, err := st.Queue(ctx, "nobody")
	require.NoError(t, err)
	require.Empty(t, q)
	l, err := st.List(ctx, "nobody", 0, 10)
	require.NoError(t, err)
	require.Empty(t, l)
	due, err := st.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, due.IsZero(), "NextDue of an empty store = %v, want zero", due)
}

func testBadRecords(t *testing.T, st command.Store) {
	ctx := context.Background()
	good := Cmd("dev1", 1)
	for name, mut := range map[string]func(*command.Command){
		"no id":     func(c *command.Command) { c.ID = "" },
		"no device": func(c *command.Command) { c.DeviceID = "" },
		"seq 0":     func(c *command.Command) { c.Seq = 0 },
		"status 0":  func(c *command.Command) { c.Status = 0 },
	} {
		bad := Cmd("dev1", 2)
		mut(&bad)
		err := st.Write(ctx, command.Write{Commands: []command.Command{good, bad}})
		require.ErrorIs(t, err, command.ErrBadRecord, "Write with a command with %s", name)
		_, err = st.Get(ctx, good.ID)
		require.ErrorIs(t, err, command.ErrNotFound, "a failed Write (%s) must store nothing", name)
	}
	err := st.Write(ctx, command.Write{Counts: []command.Count{{TaskID: "t", Status: command.Pending}}})
	require.ErrorIs(t, err, command.ErrBadRecord, "count of a non-final status")
}

func testReplace(t *testing.T, st command.Store) {
	ctx := context.Background()
	c := Cmd("dev1", 1)
	write(t, st, c)
	c.Status = command.Canceled
	c.ExecuteTime = t0.Add(time.Minute)
	write(t, st, c)
	got, err := st.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, c, got)
	q, err := st.Queue(ctx, "dev1")
	require.NoError(t, err)
	require.Empty(t, q, "a CANCELED command leaves the queue")
	l, err := st.List(ctx, "dev1", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, ids(l), "List keeps ended commands, once")
}

// testTwice: the Engine writes one command twice in one Write when it
// makes two moves at once (SENT → DELIVERED → SUCCESSFUL on a response
// that implies the ACK); the last one wins, in every index.
func testTwice(t *testing.T, st command.Store) {
	ctx := context.Background()
	c := Cmd("dev1", 1)
	c.Status = command.Sent
	c.Deadline = t0.Add(300 * time.Second)
	write(t, st, c)
	d := c
	d.Status = command.Delivered
	d.DeliveredTime = t0.Add(time.Second)
	e := d
	e.Status = command.Successful
	e.ExecuteTime = t0.Add(time.Second)
	e.Deadline = time.Time{}
	write(t, st, d, e)
	got, err := st.Get(ctx, c.ID)
	require.NoError(t, err)
	requireSame(t, e, got, "the last copy in the Write is stored")
	q, err := st.Queue(ctx, "dev1")
	require.NoError(t, err)
	require.Empty(t, q, "the command ended: not in the queue")
	next, err := st.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, next.IsZero(), "the command ended: nothing due, got %v", next)
}

func testQueue(t *testing.T, st command.Store) {
	ctx := context.Background()
	// Devices whose ids are prefixes of each other must not mix.
	for _, dev := range []string{"dev1", "dev10", "dev"} {
		var cs []command.Command
		for seq := uint64(1); seq <= 5; seq++ {
			cs = append(cs, Cmd(dev, seq))
		}
		cs[2].Status = command.Successful // seq 3 ended
		cs[0].Status = command.Sent
		// Written out of order on purpose.
		write(t, st, cs[4], cs[1], cs[0])
		write(t, st, cs[3], cs[2])
	}
	for _, dev := range []string{"dev1", "dev10", "dev"} {
		q, err := st.Queue(ctx, dev)
		require.NoError(t, err)
		require.Equal(t, []string{dev + "-c1", dev + "-c2", dev + "-c4", dev + "-c5"}, ids(q), "Queue(%s): open commands in Seq order", dev)
	}
	// Large sequence numbers sort numerically, not as text.
	write(t, st, Cmd("big", 256), Cmd("big", 2), Cmd("big", 1<<40))
	q, err := st.Queue(ctx, "big")
	require.NoError(t, err)
	require.Equal(t, []string{"big-c2", "big-c256", fmt.Sprintf("big-c%d", uint64(1)<<40)}, ids(q))
}

// testFront checks Store.Front, the engine's cheap read of a device's
// queue (CMD-4 serial delivery needs the head; CMD-3 timers the due ones).
func testFront(t *testing.T, st command.Store) {
	ctx := context.Background()
	var cs []command.Command
	for _, dev := range []string{"dev1", "dev10"} { // dev10 must not mix into dev1
		c1 := Cmd(dev, 1)
		c1.Status = command.Sent
		c1.Deadline = t0.Add(5 * time.Minute) // due t0+5m
		c2 := Cmd(dev, 2)                     // due at expiry, t0+1h
		c3 := Cmd(dev, 3)
		c3.Status = command.Successful // ended: never returned
		c4 := Cmd(dev, 4)
		c4.NextTry = t0.Add(time.Minute) // due t0+1m
		c5 := Cmd(dev, 5)
		c5.ExpireTime = 7200 // due t0+2h
		write(t, st, c5, c3, c1, c4, c2)
		if dev == "dev1" {
			cs = []command.Command{c1, c2, c3, c4, c5}
		}
	}
	for _, tc := range []struct {
		n    int
		t    time.Time
		want []string
	}{
		{0, time.Time{}, nil},
		{-1, t0.Add(time.Minute), []string{"dev1-c4"}},
		{1, time.Time{}, []string{"dev1-c1"}},
		{2, time.Time{}, []string{"dev1-c1", "dev1-c2"}},
		{4, time.Time{}, []string{"dev1-c1", "dev1-c2", "dev1-c4", "dev1-c5"}},
		{10, time.Time{}, []string{"dev1-c1", "dev1-c2", "dev1-c4", "dev1-c5"}},
		{0, t0, nil},
		{0, t0.Add(time.Minute), []string{"dev1-c4"}},
		{1, t0.Add(time.Minute), []string{"dev1-c1", "dev1-c4"}},
		{2, t0.Add(time.Minute), []string{"dev1-c1", "dev1-c2", "dev1-c4"}},
		{3, t0.Add(time.Minute), []string{"dev1-c1", "dev1-c2", "dev1-c4"}},
		{0, t0.Add(5 * time.Minute), []string{"dev1-c1", "dev1-c4"}},
		{1, t0.Add(time.Hour), []string{"dev1-c1", "dev1-c2", "dev1-c4"}},
		{0, t0.Add(3 * time.Hour), []string{"dev1-c1", "dev1-c2", "dev1-c4", "dev1-c5"}},
	} {
		got, err := st.Front(ctx, "dev1", tc.n, tc.t)
		require.NoError(t, err)
		if tc.want == nil {
			require.Empty(t, got, "Front(dev1, %d, %v)", tc.n, tc.t)
			continue
		}
		require.Equal(t, tc.want, ids(got), "Front(dev1, %d, %v): first n open, then the due ones, in Seq order", tc.n, tc.t)
	}
	got, err := st.Front(ctx, "dev1", 2, t0.Add(time.Minute))
	require.NoError(t, err)
	for i, c := range []command.Command{cs[0], cs[1], cs[3]} {
		requireSame(t, c, got[i], "Front returns whole records")
	}
	got, err = st.Front(ctx, "nobody", 2, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, got, "Front of an unknown device")

	// Front follows changes: the head ends, c4's due time moves to its
	// expiry.
	c1 := cs[0]
	c1.Status = command.Timeout
	c1.Deadline = time.Time{}
	c1.ExecuteTime = t0.Add(5 * time.Minute)
	c4 := cs[3]
	c4.NextTry = time.Time{}
	write(t, st, c1, c4)
	got, err = st.Front(ctx, "dev1", 1, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{"dev1-c2", "dev1-c4"}, ids(got))
	got, err = st.Front(ctx, "dev1", 1, t0.Add(5*time.Minute))
	require.NoError(t, err)
	require.Equal(t, []string{"dev1-c2"}, ids(got))
}

func testLastSeq(t *testing.T, st command.Store) {
	ctx := context.Background()
	n, err := st.LastSeq(ctx, "dev1")
	require.NoError(t, err)
	require.Zero(t, n, "LastSeq of an unknown device")
	c := Cmd("dev1", 7)
	c.Status = command.Expired
	write(t, st, Cmd("dev1", 3), c, Cmd("dev10", 9))
	n, err = st.LastSeq(ctx, "dev1")
	require.NoError(t, err)
	require.Equal(t, uint64(7), n, "LastSeq counts ended commands and ignores dev10")
}

func testList(t *testing.T, st command.Store) {
	ctx := context.Background()
	for seq := uint64(1); seq <= 7; seq++ {
		c := Cmd("dev1", seq)
		if seq%2 == 0 {
			c.Status = command.Successful
		}
		write(t, st, c)
	}
	page, err := st.List(ctx, "dev1", 0, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"dev1-c1", "dev1-c2", "dev1-c3"}, ids(page))
	page, err = st.List(ctx, "dev1", 3, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"dev1-c4", "dev1-c5", "dev1-c6"}, ids(page))
	page, err = st.List(ctx, "dev1", 6, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"dev1-c7"}, ids(page))
}

func testDue(t *testing.T, st command.Store) {
	ctx := context.Background()
	a := Cmd("a", 1) // due at expiry t0+1h
	b := Cmd("b", 1)
	b.NextTry = t0.Add(time.Minute) // due at t0+1m
	c := Cmd("c", 1)
	c.Status = command.Delivered
	c.Deadline = t0.Add(5 * time.Minute)
	d := Cmd("d", 1)
	d.Status = command.Successful // never due
	e := Cmd("a", 2)
	e.NextTry = t0.Add(time.Minute) // ties with b: DeviceID order puts a first
	write(t, st, a, b, c, d, e)

	next, err := st.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, next.Equal(t0.Add(time.Minute)), "NextDue = %v, want %v", next, t0.Add(time.Minute))

	due, err := st.Due(ctx, t0.Add(5*time.Minute), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"a-c2", "b-c1", "c-c1"}, ids(due), "Due(t0+5m): earliest first, ties by device")
	due, err = st.Due(ctx, t0.Add(2*time.Hour), 2)
	require.NoError(t, err)
	require.Equal(t, []string{"a-c2", "b-c1"}, ids(due), "Due honours the limit")
	due, err = st.Due(ctx, t0, 10)
	require.NoError(t, err)
	require.Empty(t, due, "nothing is due at t0")
	due, err = st.Due(ctx, t0.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"a-c2", "b-c1", "c-c1", "a-c1"}, ids(due), "an ended command is never due")
}

func testDueChanges(t *testing.T, st command.Store) {
	ctx := context.Background()
	c := Cmd("a", 1)
	c.NextTry = t0.Add(time.Minute)
	write(t, st, c)
	c.NextTry = time.Time{} // due moves to expiry
	write(t, st, c)
	due, err := st.Due(ctx, t0.Add(30*time.Minute), 10)
	require.NoError(t, err)
	require.Empty(t, due, "the old due time must leave the index")
	c.Status = command.Expired
	c.ExecuteTime = t0.Add(time.Hour)
	write(t, st, c)
	next, err := st.NextDue(ctx)
	require.NoError(t, err)
	require.True(t, next.IsZero(), "an ended command leaves the due index; NextDue = %v", next)
}

func testModes(t *testing.T, st command.Store) {
	ctx := context.Background()
	_, ok, err := st.Mode(ctx, "dev1")
	require.NoError(t, err)
	require.False(t, ok, "Mode of a device never set")
	m := command.Mode{Kind: command.EDRX, ActiveTime: 5 * time.Second, Cycle: 163840 * time.Millisecond, PagingWindow: 2560 * time.Millisecond, Timeout: time.Hour}
	require.NoError(t, st.PutMode(ctx, "dev1", m))
	got, ok, err := st.Mode(ctx, "dev1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, m, got)
	require.NoError(t, st.PutMode(ctx, "dev1", command.Mode{Kind: command.DRX}))
	got, _, err = st.Mode(ctx, "dev1")
	require.NoError(t, err)
	require.Equal(t, command.Mode{Kind: command.DRX}, got, "PutMode replaces")
}

func testTasks(t *testing.T, st command.Store) {
	ctx := context.Background()
	task := command.Task{ID: "t1", Name: "night", AppID: "app1", Total: 4, CreationTime: t0}
	require.NoError(t, st.PutTask(ctx, task))
	c := Cmd("dev1", 1)
	c.TaskID = "t1"
	c.Status = command.Successful
	require.NoError(t, st.Write(ctx, command.Write{Commands: []command.Command{c}, Counts: []command.Count{{TaskID: "t1", Status: command.Successful}}}))
	require.NoError(t, st.Write(ctx, command.Write{Counts: []command.Count{{TaskID: "t1", Status: command.Timeout}, {TaskID: "t1", Status: command.Expired}}}))
	got, err := st.Task(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, 1, got.Successful)
	require.Equal(t, 1, got.Timeout)
	require.Equal(t, 1, got.Expired)
	require.Equal(t, 3, got.Completed())
	require.Equal(t, 750, got.Progress())
	require.Equal(t, "night", got.Name)
	require.True(t, got.CreationTime.Equal(t0))
}

func testTaskUnknown(t *testing.T, st command.Store) {
	ctx := context.Background()
	c := Cmd("dev1", 1)
	err := st.Write(ctx, command.Write{Commands: []command.Command{c}, Counts: []command.Count{{TaskID: "ghost", Status: command.Failed}}})
	require.ErrorIs(t, err, command.ErrNotFound, "count for an unknown task")
	_, err = st.Get(ctx, c.ID)
	require.ErrorIs(t, err, command.ErrNotFound, "the command of a failed Write must not be stored")
}

func testConcurrent(t *testing.T, st command.Store) {
	ctx := context.Background()
	require.NoError(t, st.PutTask(ctx, command.Task{ID: "t", Total: 400}))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("dev%d", g)
			for seq := uint64(1); seq <= 50; seq++ {
				c := Cmd(dev, seq)
				c.Status = command.Failed
				c.TaskID = "t"
				if err := st.Write(ctx, command.Write{Commands: []command.Command{c}, Counts: []command.Count{{TaskID: "t", Status: command.Failed}}}); err != nil {
					t.Errorf("Write(%s): %v", c.ID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for g := range 8 {
		n, err := st.LastSeq(ctx, fmt.Sprintf("dev%d", g))
		require.NoError(t, err)
		require.Equal(t, uint64(50), n)
	}
	task, err := st.Task(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, 400, task.Failed, "every concurrent count applied once")
}

func testPrune(t *testing.T, st command.Store) {
	p, ok := st.(command.Pruner)
	if !ok {
		t.Skip("the store does not implement command.Pruner")
	}
	ctx := context.Background()
	var cs []command.Command
	for seq := uint64(1); seq <= 6; seq++ {
		c := Cmd("dev1", seq)
		switch seq {
		case 1, 2, 3: // ended long ago
			c.Status, c.ExecuteTime = command.Successful, t0.Add(time.Duration(seq)*time.Minute)
		case 4: // ended recently
			c.Status, c.ExecuteTime = command.Timeout, t0.Add(48*time.Hour)
		}
		cs = append(cs, c)
	}
	write(t, st, cs...)
	write(t, st, func() command.Command { c := Cmd("dev10", 1); c.Status, c.ExecuteTime = command.Expired, t0; return c }())
	before := t0.Add(time.Hour)
	n, err := p.Prune(ctx, before, 2)
	require.NoError(t, err)
	require.Equal(t, 2, n, "Prune honours the limit")
	n, err = p.Prune(ctx, before, 100)
	require.NoError(t, err)
	require.Equal(t, 2, n, "the rest of the old ended commands")
	n, err = p.Prune(ctx, before, 100)
	require.NoError(t, err)
	require.Zero(t, n)
	for _, id := range []string{"dev1-c1", "dev1-c2", "dev1-c3", "dev10-c1"} {
		_, err := st.Get(ctx, id)
		require.ErrorIs(t, err, command.ErrNotFound, "%s pruned", id)
	}
	l, err := st.List(ctx, "dev1", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"dev1-c4", "dev1-c5", "dev1-c6"}, ids(l), "recent and open commands stay")
	q, err := st.Queue(ctx, "dev1")
	require.NoError(t, err)
	require.Equal(t, []string{"dev1-c5", "dev1-c6"}, ids(q))
	last, err := st.LastSeq(ctx, "dev10")
	require.NoError(t, err)
	require.Equal(t, uint64(1), last, "LastSeq survives pruning: sequence numbers are never reused")
}

// testUplinks: a store with command.Uplinks keeps each device's last
// uplink to the nanosecond, replaces it, and knows none for other devices.
func testUplinks(t *testing.T, st command.Store) {
	u, ok := st.(command.Uplinks)
	if !ok {
		t.Skip("the store does not implement command.Uplinks")
	}
	ctx := context.Background()
	got, err := u.Uplink(ctx, "meter")
	require.NoError(t, err)
	require.True(t, got.IsZero(), "none stored yet")
	require.NoError(t, u.PutUplinks(ctx, map[string]time.Time{"meter": t0, "gas\x00": t0.Add(time.Second)}))
	require.NoError(t, u.PutUplinks(ctx, map[string]time.Time{"meter": t0.Add(time.Minute)}))
	for dev, want := range map[string]time.Time{"meter": t0.Add(time.Minute), "gas\x00": t0.Add(time.Second), "gas": {}} {
		got, err := u.Uplink(ctx, dev)
		require.NoError(t, err)
		require.True(t, want.Equal(got), "%q: %v, want %v", dev, got, want)
	}
}
