package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/stretchr/testify/require"
)

// moves counts the listener notifications of command engines, by command
// id and status.
type moves struct {
	mu  sync.Mutex
	got map[string]map[command.Status]int
}

func (m *moves) listener() command.Listener {
	return command.ListenerFunc(func(c command.Command) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.got == nil {
			m.got = map[string]map[command.Status]int{}
		}
		if m.got[c.ID] == nil {
			m.got[c.ID] = map[command.Status]int{}
		}
		m.got[c.ID][c.Status]++
	})
}

// count returns how many of ids reached s, and how many notifications of
// s they got in all.
func (m *moves) count(ids []string, s command.Status) (cmds, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if n := m.got[id][s]; n > 0 {
			cmds++
			total += n
		}
	}
	return cmds, total
}

// claimingCommands starts a command engine of node on db (DRX devices, a
// 1 s timeout after the send, a sender that always succeeds), stopped
// when the test ends or earlier by the returned stop.
func claimingCommands(t *testing.T, db *DB, node string, lease time.Duration, l command.Listener) (*command.Engine, func()) {
	t.Helper()
	e, err := command.New(db.Commands(), command.SenderFunc(func(context.Context, command.Command) error { return nil }), l,
		command.Config{Node: node, ClaimLease: lease, DefaultMode: command.Mode{Kind: command.DRX, Timeout: time.Second}})
	require.NoError(t, err)
	return e, runEngine(t, e.Run, e.Close)
}

// runEngine runs an engine's Run until the test ends or the returned stop
// is called, whichever is first; stop closes it and checks Run's result.
func runEngine(t *testing.T, run func(context.Context) error, closeIt func() error) (stop func()) {
	done := make(chan error, 1)
	go func() { done <- run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			require.NoError(t, closeIt())
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func submitN(t *testing.T, e *command.Engine, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		c, err := e.Submit(context.Background(), command.Request{AppID: "app", DeviceID: fmt.Sprintf("%s-%03d", prefix, i),
			Command: command.Body{ServiceID: "s", Method: "m", Paras: []byte(`{"x":1}`)}})
		require.NoError(t, err)
		ids[i] = c.ID
	}
	return ids
}

// TestCommandTimeoutsTwoNodes (issue 18): two command engines (two nodes)
// on one schema, 200 commands SENT that time out 1 s later: each times out
// exactly once, on one node or the other (one TIMEOUT notification in
// all). Then node A closes while holding leases on commands past their
// deadline (claimed as a node would, just before it died): node B leaves
// them alone until those leases end, then times each out once.
func TestCommandTimeoutsTwoNodes(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	var m moves
	const lease = 3 * time.Second
	ea, stopA := claimingCommands(t, a, "node-a", lease, m.listener())

	// Node A sends them all (the device's node does); B starts once they
	// are SENT, so the two race only on the timeouts.
	ids := submitN(t, ea, "dev", 200)
	require.Eventually(t, func() bool { n, _ := m.count(ids, command.Sent); return n == len(ids) }, 20*time.Second, 10*time.Millisecond,
		"every command SENT")
	_, stopB := claimingCommands(t, b, "node-b", lease, m.listener())
	require.Eventually(t, func() bool { n, _ := m.count(ids, command.Timeout); return n == len(ids) }, 20*time.Second, 10*time.Millisecond,
		"every command timed out")
	time.Sleep(lease + time.Second) // any second timeout would come by now
	n, total := m.count(ids, command.Timeout)
	require.Equal(t, len(ids), n)
	require.Equal(t, len(ids), total, "one TIMEOUT notification per command")
	for _, id := range ids {
		c, err := a.Commands().Get(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, command.Timeout, c.Status)
	}

	// Node A dies holding leases on 50 more commands past their deadline.
	// Node B is stopped meanwhile and started again after A's claim, so
	// that it cannot claim one of them first on a slow machine (their
	// deadline is 1 s after their send).
	stopB()
	more := submitN(t, ea, "late", 50)
	require.Eventually(t, func() bool { n, _ := m.count(more, command.Sent); return n == len(more) }, 20*time.Second, 10*time.Millisecond,
		"every late command SENT")
	stopA()
	claimAt := time.Now().Add(2 * time.Second) // past their 1 s deadline
	claimed, err := a.Commands().ClaimCommands(context.Background(), "node-a", claimAt, lease, 500)
	require.NoError(t, err)
	require.Len(t, claimed, len(more), "node A's leases")
	claimingCommands(t, b, "node-b", lease, m.listener())
	until := claimAt.Add(lease)
	time.Sleep(time.Until(until.Add(-time.Second))) // deadlines passed 3 s ago, leases still on
	n, _ = m.count(more, command.Timeout)
	require.Zero(t, n, "node B timed out commands whose lease node A still holds")
	require.Eventually(t, func() bool { n, _ := m.count(more, command.Timeout); return n == len(more) }, 15*time.Second, 10*time.Millisecond,
		"node B takes over once node A's leases end")
	require.GreaterOrEqual(t, time.Now(), until)
	time.Sleep(time.Second)
	n, total = m.count(more, command.Timeout)
	require.Equal(t, len(more), n)
	require.Equal(t, len(more), total, "one TIMEOUT notification per late command")
}
