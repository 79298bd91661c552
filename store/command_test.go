package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/stretchr/testify/require"
)

// TestCommandStore runs the command.Store conformance suite on bbolt.
func TestCommandStore(t *testing.T) {
	commandtest.Run(t, func(t *testing.T) command.Store { return openTemp(t, nil).Commands() })
}

// settle lets the bubble's goroutines finish, including what waits on a
// timer of up to 50 ms of fake time.
func settle() {
	synctest.Wait()
	time.Sleep(50 * time.Millisecond)
	synctest.Wait()
}

// recorder is a Sender that records sends and fails those its fail
// function refuses.
type recorder struct {
	mu   sync.Mutex
	sent []string
	fail func(c command.Command) error
}

func (r *recorder) Send(ctx context.Context, c command.Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(c); err != nil {
			return err
		}
	}
	r.sent = append(r.sent, c.ID)
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

func startEngine(t *testing.T, st command.Store, s command.Sender) (*command.Engine, func()) {
	t.Helper()
	var n atomic.Int64
	e, err := command.New(st, s, nil, command.Config{NewID: func() string { return fmt.Sprintf("id%d-%d", time.Now().Unix(), n.Add(1)) }})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Run(context.Background()); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	settle()
	return e, func() {
		require.NoError(t, e.Close())
		<-done
	}
}

func cmdReq(dev string, expire int64) command.Request {
	return command.Request{DeviceID: dev, ExpireTime: &expire,
		Command: command.Body{ServiceID: "Valve", Method: "CLOSE", Paras: json.RawMessage(`{"v":0}`)}}
}

// TestCommandRestart (CMD-9): an engine on a bbolt file is stopped with
// commands in every state; a new engine on the same file carries on.
// Nothing is lost, and nothing is sent twice except the re-send of an
// unACKed command on wake-up that CMD-4 allows.
func TestCommandRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "doze.db")
		db, err := Open(path, nil)
		require.NoError(t, err)
		rec1 := &recorder{}
		e, stop := startEngine(t, db.Commands(), rec1)
		for _, dev := range []string{"drx-b", "drx-c", "drx-d", "drx-e", "drx-f", "drx-t"} {
			require.NoError(t, e.SetMode(ctx, dev, command.Mode{Kind: command.DRX}))
		}
		rec1.fail = func(c command.Command) error {
			switch c.DeviceID {
			case "drx-e":
				return fmt.Errorf("%w: no such command", command.ErrEncode)
			case "drx-t":
				return errors.New("transport down")
			}
			return nil
		}
		submit := func(dev string, expire int64) command.Command {
			c, err := e.Submit(ctx, cmdReq(dev, expire))
			require.NoError(t, err, "Submit(%s)", dev)
			return c
		}
		// TIMEOUT: sent, never answered, 300 s pass.
		f1 := submit("drx-f", 3600)
		// EXPIRED: PSM device never wakes within 100 s.
		g1 := submit("psm-g", 100)
		time.Sleep(301 * time.Second)
		settle()

		p1 := submit("psm-a", 3600)  // PENDING, waits for an uplink
		b1 := submit("drx-b", 3600)  // SENT, no ACK yet
		b2 := submit("drx-b", 3600)  // PENDING behind it
		c1 := submit("drx-c", 3600)  // DELIVERED
		d1 := submit("drx-d", 3600)  // SUCCESSFUL
		e1 := submit("drx-e", 3600)  // FAILED (encode)
		t1 := submit("drx-t", 3600)  // PENDING after a transport failure
		h0 := submit("psm-h0", 3600) // CANCELED
		r1 := submit("psm-r", 3600)  // SENT on a wake-up, never ACKed
		settle()
		require.NoError(t, e.Acked(ctx, "drx-c", c1.ID))
		require.NoError(t, e.Responded(ctx, "drx-d", command.Response{Mid: d1.Mid(), Body: json.RawMessage(`{"ok":1}`)}))
		require.NoError(t, e.DeviceWoke(ctx, "psm-r"))
		settle()
		_, err = e.Cancel(ctx, h0.ID)
		require.NoError(t, err)
		task, err := e.SubmitBatch(ctx, command.BatchRequest{Name: "b", DeviceIDs: []string{"psm-x", "psm-y"}, Command: cmdReq("", 3600)})
		require.NoError(t, err)

		want := map[string]command.Status{
			f1.ID: command.Timeout, g1.ID: command.Expired, p1.ID: command.Pending, b1.ID: command.Sent,
			b2.ID: command.Pending, c1.ID: command.Delivered, d1.ID: command.Successful, e1.ID: command.Failed,
			t1.ID: command.Pending, h0.ID: command.Canceled, r1.ID: command.Sent,
		}
		before := map[string]command.Command{}
		for id, st := range want {
			c, err := e.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, st, c.Status, "before restart: %s on %s", id, c.DeviceID)
			before[id] = c
		}
		sent1 := rec1.ids()
		stop()
		require.NoError(t, db.Close())

		time.Sleep(20 * time.Second) // down for a while

		db2, err := Open(path, nil)
		require.NoError(t, err)
		defer db2.Close()
		st2 := db2.Commands()
		for id, c := range before {
			got, err := st2.Get(ctx, id)
			require.NoError(t, err, "after restart: %s lost", id)
			require.Equal(t, c.Status, got.Status, "%s", id)
			require.Equal(t, c.IssuedTimes, got.IssuedTimes, "%s", id)
			require.True(t, c.Deadline.Equal(got.Deadline), "%s deadline", id)
		}
		task2, err := st2.Task(ctx, task.ID)
		require.NoError(t, err)
		require.Equal(t, 2, task2.Total)

		rec2 := &recorder{}
		e2, stop2 := startEngine(t, st2, rec2)
		defer stop2()
		settle()
		require.Empty(t, rec2.ids(), "nothing goes out on start: PSM heads wait for uplinks, SENT ones for ACKs")
		time.Sleep(time.Until(before[t1.ID].NextTry))
		settle()
		require.Equal(t, []string{t1.ID}, rec2.ids(), "the head that failed in transport is retried at its stored next try")

		// SENT and DELIVERED resume their timers from the stored times.
		time.Sleep(time.Until(before[b1.ID].Deadline))
		settle()
		got, err := e2.Get(ctx, b1.ID)
		require.NoError(t, err)
		require.Equal(t, command.Timeout, got.Status, "b1 times out at its stored deadline")
		got, err = e2.Get(ctx, c1.ID)
		require.NoError(t, err)
		require.Equal(t, command.Timeout, got.Status, "c1 (DELIVERED) times out too")
		require.Equal(t, []string{t1.ID, b2.ID}, rec2.ids(), "the queue of drx-b moves on")

		// PENDING waits for the uplink, then goes once; the unACKed SENT
		// command of psm-r is re-sent on wake-up (CMD-4) — if its
		// deadline has not passed.
		require.NoError(t, e2.DeviceWoke(ctx, "psm-a"))
		settle()
		require.Equal(t, []string{t1.ID, b2.ID, p1.ID}, rec2.ids())

		all := append(sent1, rec2.ids()...)
		seen := map[string]int{}
		for _, id := range all {
			seen[id]++
		}
		for id, n := range seen {
			require.Equal(t, 1, n, "%s sent %d times across the restart", id, n)
		}
		for _, id := range []string{f1.ID, g1.ID, d1.ID, e1.ID, h0.ID} {
			got, err := e2.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, before[id].Status, got.Status, "ended commands stay ended")
		}
	})
}

// TestCommandRestartResend: a command SENT before the restart and never
// ACKed goes out again when the device wakes after the restart, as CMD-4
// allows, and only then.
func TestCommandRestartResend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "doze.db")
		db, err := Open(path, nil)
		require.NoError(t, err)
		rec1 := &recorder{}
		e, stop := startEngine(t, db.Commands(), rec1)
		c, err := e.Submit(ctx, cmdReq("meter", 3600))
		require.NoError(t, err)
		require.NoError(t, e.DeviceWoke(ctx, "meter"))
		settle()
		require.Equal(t, []string{c.ID}, rec1.ids())
		stop()
		require.NoError(t, db.Close())
		time.Sleep(time.Minute)

		db2, err := Open(path, nil)
		require.NoError(t, err)
		defer db2.Close()
		rec2 := &recorder{}
		e2, stop2 := startEngine(t, db2.Commands(), rec2)
		defer stop2()
		settle()
		require.Empty(t, rec2.ids(), "no re-send without a wake-up")
		require.NoError(t, e2.DeviceWoke(ctx, "meter"))
		settle()
		require.Equal(t, []string{c.ID}, rec2.ids(), "re-sent on wake-up (CMD-4)")
		got, err := e2.Get(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, 2, got.IssuedTimes)
		require.NoError(t, e2.Acked(ctx, "meter", c.ID))
		require.NoError(t, e2.Responded(ctx, "meter", command.Response{Mid: c.Mid()}))
		got, err = e2.Get(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, command.Successful, got.Status)
	})
}

// TestCommandRestartPastDeadline (CMD-9): a SENT command whose deadline
// passed while the engine was down ends TIMEOUT as soon as a new engine
// starts on the file, and the device's next command goes out then; the
// DRX mode set before the restart is kept.
func TestCommandRestartPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "doze.db")
		db, err := Open(path, nil)
		require.NoError(t, err)
		rec1 := &recorder{}
		e, stop := startEngine(t, db.Commands(), rec1)
		require.NoError(t, e.SetMode(ctx, "lamp", command.Mode{Kind: command.DRX}))
		a, err := e.Submit(ctx, cmdReq("lamp", 3600))
		require.NoError(t, err)
		b, err := e.Submit(ctx, cmdReq("lamp", 3600))
		require.NoError(t, err)
		settle()
		require.Equal(t, []string{a.ID}, rec1.ids())
		stop()
		require.NoError(t, db.Close())
		time.Sleep(10 * time.Minute) // down past a's 300 s deadline

		db2, err := Open(path, nil)
		require.NoError(t, err)
		defer db2.Close()
		restart := time.Now()
		rec2 := &recorder{}
		e2, stop2 := startEngine(t, db2.Commands(), rec2)
		defer stop2()
		got, err := e2.Get(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, command.Timeout, got.Status, "deadline passed while down")
		require.Equal(t, restart.UTC(), got.ExecuteTime.UTC(), "ended at the restart")
		require.Equal(t, []string{b.ID}, rec2.ids(), "the next command goes out at once, a is not re-sent")
	})
}

// The bbolt benchmarks: 100,000 devices with 10 PENDING commands each
// (1,000,000 pending), only under -bench. The file is filled once per
// process with NoSync (setup only: the data is the same as a synced fill
// would leave) and copied for each benchmark, which then reopens it with
// the default, synced options: every measured write is on disk.
const (
	benchDevices   = 100_000
	benchPerDevice = 10
)

var (
	benchOnce     sync.Once
	benchTemplate string
)

// TestMain removes the benchmarks' 750 MB template file when the run ends.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchTemplate != "" {
		_ = os.RemoveAll(filepath.Dir(benchTemplate))
	}
	os.Exit(code)
}

func filledBoltFile(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "doze-cmd-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchTemplate = filepath.Join(dir, "template.db")
		db, err := Open(benchTemplate, &Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		commandtest.Fill(b, db.Commands(), benchDevices, benchPerDevice)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	})
	dst := filepath.Join(b.TempDir(), "doze.db")
	src, err := os.Open(benchTemplate)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	return dst
}

func openFilled(b *testing.B) *DB {
	db, err := Open(filledBoltFile(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkBoltSubmit(b *testing.B) {
	commandtest.BenchSubmit(b, openFilled(b).Commands(), benchDevices)
}

func BenchmarkBoltSubmitParallel(b *testing.B) {
	commandtest.BenchSubmitParallel(b, openFilled(b).Commands(), benchDevices)
}

func BenchmarkBoltWakeToSend(b *testing.B) {
	commandtest.BenchWake(b, openFilled(b).Commands(), benchDevices, commandtest.WakeUnpaced)
}

// BenchmarkBoltPendingSize reports the file bytes per pending command and
// times a device's Queue read among 1,000,000 pending.
func BenchmarkBoltPendingSize(b *testing.B) {
	path := filledBoltFile(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	db, err := Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := db.Commands()
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Queue(ctx, commandtest.Device(i%benchDevices)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(fi.Size())/(benchDevices*benchPerDevice), "file-B/pending")
}

// FuzzCommandRecord: decoding any bytes as a stored command record never
// panics, and a record that decodes is written back to the same command.
func FuzzCommandRecord(f *testing.F) {
	c := commandtest.Cmd("dev1", 7)
	c.Status = command.Sent
	c.PlatformIssuedTime = c.CreationTime.Add(time.Second)
	c.Deadline = c.CreationTime.Add(300 * time.Second)
	c.Result = json.RawMessage(`{"x":1}`)
	b, err := encodeCommand(&c)
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte(`{"id":"a","dev":"d","seq":1,"st":1,"ct":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"p":[1,2],"res":"x"}`))
	f.Add([]byte(`{"it":null,"dl":"bad"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeCommand([]byte("k"), data)
		if err != nil {
			return
		}
		b, err := encodeCommand(&got)
		if err != nil {
			return // e.g. paras that are not valid JSON cannot be re-encoded
		}
		again, err := decodeCommand([]byte("k"), b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		b2, err := encodeCommand(&again)
		if err != nil || string(b) != string(b2) {
			t.Fatalf("round trip changed\n%s\n%s (%v)", b, b2, err)
		}
	})
}

// TestCommandKeys: device keys keep devices apart and sort by device id,
// whatever bytes the id holds.
func TestCommandKeys(t *testing.T) {
	ids := []string{"", "\x00", "\x00\x00", "\x00\x01", "a", "a\x00", "a\x00b", "ab", "b"}
	var keys [][]byte
	for _, id := range ids {
		keys = append(keys, recKey(id, 1))
	}
	for i := 1; i < len(keys); i++ {
		require.Negative(t, bytes.Compare(keys[i-1], keys[i]), "key of %q sorts before %q", ids[i-1], ids[i])
	}
	for i, a := range ids {
		for j, b := range ids {
			if i != j {
				require.False(t, bytes.HasPrefix(recKey(b, 1), devKey(nil, a)), "keys of %q start with the prefix of %q", b, a)
			}
		}
	}
	for _, tm := range []time.Time{time.Unix(-5, 0), time.Unix(0, 0), time.Unix(1, 0), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)} {
		require.True(t, dueTime(dueBytes(tm)).Equal(tm), "due time %v round trip", tm)
	}
	require.Less(t, dueBytes(time.Unix(-5, 0)), dueBytes(time.Unix(3, 0)))
	require.Less(t, dueBytes(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)), dueBytes(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), "far times clamp, keeping order")
}
