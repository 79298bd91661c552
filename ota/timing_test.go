package ota_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

// devices is a Devices whose unknown devices exist, are online and match.
type devices struct {
	mu sync.Mutex
	m  map[string]ota.Device
}

func (d *devices) Device(_ context.Context, id string) (ota.Device, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.m[id]; ok {
		return v, true
	}
	return ota.Device{Online: true}, true
}

func (d *devices) set(id string, v ota.Device) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]ota.Device{}
	}
	d.m[id] = v
}

// run starts e.Run in the bubble; Close (in cleanup) stops it.
func run(t *testing.T, e *ota.Engine) {
	go e.Run(context.Background())
	synctest.Wait()
}

func count[T any](msgs []pcp.Message) (n int) {
	for _, m := range msgs {
		if _, ok := m.(T); ok {
			n++
		}
	}
	return n
}

// TestOnlineTimeout: under device_online a device that never comes online
// fails with "Waiting for the device online timeout" exactly at the
// deadline (OTA-3, OTA-8).
func TestOnlineTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := &devices{}
		devs.set("sleepy", ota.Device{Online: false})
		e, l, files := setup(t, ota.Config{Devices: devs, OnlineTimeout: 6 * time.Hour})
		addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
		run(t, e)
		_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"sleepy"},
			Policy: ota.Policy{Execute: ota.DeviceOnline}})
		require.NoError(t, err)
		time.Sleep(6*time.Hour - time.Nanosecond)
		synctest.Wait()
		s := subTask(t, e, "t", "sleepy")
		require.Equal(t, ota.SubWait, s.State)
		require.Empty(t, l.messages("sleepy"), "nothing is sent to a device that is not online")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		s = subTask(t, e, "t", "sleepy")
		require.Equal(t, ota.SubFail, s.State)
		require.Equal(t, ota.ReasonOnlineTimeout, s.Reason)
		task, _ := e.Task(context.Background(), "t")
		require.Equal(t, ota.TaskFailed, task.State)
	})
}

// TestDeviceOnlineStarts: a device_online sub-task starts when its device
// wakes.
func TestDeviceOnlineStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := &devices{}
		devs.set("d", ota.Device{Online: false})
		e, l, files := setup(t, ota.Config{Devices: devs})
		addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
		run(t, e)
		_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"},
			Policy: ota.Policy{Execute: ota.DeviceOnline}})
		require.NoError(t, err)
		time.Sleep(time.Hour)
		devs.set("d", ota.Device{Online: true})
		d := newDevice("d", "V1")
		d.wake(t, e)
		require.Equal(t, []pcp.Message{pcp.QueryVersion{}}, l.messages("d"))
		d.run(t, e, l, nil)
		require.Equal(t, ota.SubSuccess, subTask(t, e, "t", "d").State)
	})
}

// TestNowPolicyOffline: under "now" a device that is not online fails at
// once with "Device Abnormal is not online".
func TestNowPolicyOffline(t *testing.T) {
	devs := &devices{}
	devs.set("off", ota.Device{Online: false})
	e, _, files := setup(t, ota.Config{Devices: devs})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
	task, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"off", "on"}})
	require.NoError(t, err)
	require.Equal(t, ota.TaskProcessing, task.State)
	s := subTask(t, e, "t", "off")
	require.Equal(t, ota.SubFail, s.State)
	require.Equal(t, ota.ReasonNotOnline, s.Reason)
	require.Equal(t, ota.SubProcessing, subTask(t, e, "t", "on").State)
}

// TestStepDeadlines: each step has a server-side deadline and its own
// reason (OTA-3, OTA-8).
func TestStepDeadlines(t *testing.T) {
	cfg := ota.Config{VersionTimeout: 10 * time.Minute, DownloadTimeout: time.Hour, ResultTimeout: 20 * time.Minute}
	tests := []struct {
		name   string
		stop   func(d *device) func() bool // when the device goes silent
		after  time.Duration               // silence before the deadline passes
		reason string
	}{
		// The query went out at creation, a minute before the device is silent.
		{"version", func(d *device) func() bool { return func() bool { return true } }, 9 * time.Minute, ota.ReasonVersionTimeout},
		{"download", func(d *device) func() bool {
			return func() bool { st, _ := d.progress.Load(); return st.Next == 2 }
		}, time.Hour, ota.ReasonDownloadTimeout},
		{"result", func(d *device) func() bool {
			return func() bool { st, _ := d.progress.Load(); return st.Phase == download.PhaseReady }
		}, 20 * time.Minute, ota.ReasonResultTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, l, files := setup(t, cfg)
				addPackage(t, e, files, ota.Package{ID: "p", Version: "V2", BlockSize: 100}, content(1000, 1))
				run(t, e)
				d := newDevice("d", "V1")
				_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}})
				require.NoError(t, err)
				time.Sleep(time.Minute) // progress moves deadlines on
				d.run(t, e, l, tt.stop(d))
				l.drop("d")
				time.Sleep(tt.after - time.Nanosecond)
				synctest.Wait()
				require.Equal(t, ota.SubProcessing, subTask(t, e, "t", "d").State, "just before the deadline")
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				s := subTask(t, e, "t", "d")
				require.Equal(t, ota.SubFail, s.State)
				require.Equal(t, tt.reason, s.Reason)
			})
		})
	}
}

// TestWindowPolicy: sub-tasks start when the window opens; devices not
// online by its end fail (OTA-2).
func TestWindowPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := &devices{}
		devs.set("late", ota.Device{Online: false})
		e, l, files := setup(t, ota.Config{Devices: devs})
		addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
		run(t, e)
		now := time.Now()
		task, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"on", "late"},
			Policy: ota.Policy{Execute: ota.Window, Start: now.Add(time.Hour), End: now.Add(3 * time.Hour)}})
		require.NoError(t, err)
		require.Equal(t, ota.TaskWait, task.State)
		d := newDevice("on", "V1")
		d.wake(t, e) // awake before the window: nothing
		time.Sleep(time.Hour - time.Nanosecond)
		synctest.Wait()
		require.Empty(t, l.messages("on"))
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.Equal(t, []pcp.Message{pcp.QueryVersion{}}, l.messages("on"), "query at the window's start")
		task, _ = e.Task(context.Background(), "t")
		require.Equal(t, ota.TaskProcessing, task.State)
		d.run(t, e, l, nil)
		require.Equal(t, ota.SubSuccess, subTask(t, e, "t", "on").State)
		time.Sleep(2*time.Hour - time.Nanosecond)
		synctest.Wait()
		require.Equal(t, ota.SubWait, subTask(t, e, "t", "late").State)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		s := subTask(t, e, "t", "late")
		require.Equal(t, ota.SubFail, s.State)
		require.Equal(t, ota.ReasonOnlineTimeout, s.Reason)
	})
}

// TestAutomaticRetryOnlyFailed: a task that ends with failures retries
// only the failed sub-tasks after the interval; devices that succeeded
// are not touched (OTA-4, FAQ §10.10).
func TestAutomaticRetryOnlyFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, l, files := setup(t, ota.Config{VersionTimeout: 5 * time.Minute})
		addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(700, 1))
		run(t, e)
		good, mute := newDevice("good", "V1"), newDevice("mute", "V1")
		_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"good", "mute"},
			Policy: ota.Policy{RetryTimes: 2, RetryInterval: 10 * time.Minute}})
		require.NoError(t, err)
		good.run(t, e, l, nil)
		l.drop("mute") // mute never answers the first time
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		task, _ := e.Task(context.Background(), "t")
		require.Equal(t, ota.TaskFailed, task.State)
		require.Equal(t, time.Now().Add(10*time.Minute), task.RetryAt)
		goodBefore := subTask(t, e, "t", "good")

		time.Sleep(10*time.Minute - time.Nanosecond)
		synctest.Wait()
		require.Equal(t, ota.SubFail, subTask(t, e, "t", "mute").State, "no retry before the interval")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		s := subTask(t, e, "t", "mute")
		require.Equal(t, ota.SubProcessing, s.State)
		require.Equal(t, 1, s.Attempt)
		mute.run(t, e, l, nil)
		require.Equal(t, ota.SubSuccess, subTask(t, e, "t", "mute").State)
		require.Equal(t, goodBefore, subTask(t, e, "t", "good"), "the device that succeeded is not touched")
		require.Equal(t, 1, count[pcp.QueryVersion](l.messages("good")))
		task, _ = e.Task(context.Background(), "t")
		require.Equal(t, ota.TaskSuccess, task.State)
		require.Equal(t, 1, task.Attempt)
	})
}

// TestRetryBackoffLimit: retries stop after RetryTimes, with the interval
// doubling (OTA-8).
func TestRetryBackoffLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _, files := setup(t, ota.Config{VersionTimeout: time.Minute})
		addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(700, 1))
		run(t, e)
		start := time.Now()
		_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"mute"},
			Policy: ota.Policy{RetryTimes: 2, RetryInterval: 10 * time.Minute}})
		require.NoError(t, err)
		// 1m fail, 10m wait, 1m fail, 20m wait, 1m fail: done at 33m.
		time.Sleep(33*time.Minute - time.Nanosecond)
		synctest.Wait()
		require.Equal(t, ota.SubProcessing, subTask(t, e, "t", "mute").State)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		task, _ := e.Task(context.Background(), "t")
		require.Equal(t, ota.TaskFailed, task.State)
		require.Equal(t, 2, task.Attempt)
		require.True(t, task.RetryAt.IsZero(), "no retry planned after RetryTimes")
		require.Equal(t, 33*time.Minute, time.Since(start))
	})
}

// TestRestartResends: an engine restarted over the same store sends the
// pending request of each sub-task whose device is online when Run starts,
// and starts the sub-tasks created but not started before the crash.
func TestRestartResends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := ota.NewMemStore()
		files := &ota.MemFiles{}
		files.Put("p", content(900, 1))
		e1, err := ota.New(st, files, newLink(), ota.Config{})
		require.NoError(t, err)
		_, err = e1.AddPackage(ctx, ota.Package{ID: "p", Kind: ota.Software, Version: "V2"})
		require.NoError(t, err)
		_, err = e1.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"a"}})
		require.NoError(t, err)
		require.NoError(t, e1.Close()) // the query to "a" is lost with the process
		// A task written but never started (as if the crash came first).
		require.NoError(t, st.PutTask(ctx, ota.Task{ID: "t2", Kind: ota.Software, PackageID: "p", Devices: []string{"b"},
			Policy: ota.Policy{Execute: ota.Now}, State: ota.TaskProcessing, Created: time.Now()},
			[]ota.SubTask{{TaskID: "t2", DeviceID: "b", Kind: ota.Software, State: ota.SubWait, Step: ota.StepOnline,
				TargetVersion: "V2", Deadline: time.Now().Add(time.Hour)}}))

		l := newLink()
		e2, err := ota.New(st, files, l, ota.Config{})
		require.NoError(t, err)
		defer e2.Close()
		run(t, e2)
		require.Equal(t, []pcp.Message{pcp.QueryVersion{}}, l.messages("a"))
		require.Equal(t, []pcp.Message{pcp.QueryVersion{}}, l.messages("b"))
		for _, id := range []string{"a", "b"} {
			newDevice(id, "V1").run(t, e2, l, nil)
		}
		require.Equal(t, ota.SubSuccess, subTask(t, e2, "t", "a").State)
		require.Equal(t, ota.SubSuccess, subTask(t, e2, "t2", "b").State)
	})
}

// TestMaxDownloads: at most MaxDownloads sub-tasks download at once; the
// others wait in order and start as slots free up (OTA-8).
func TestMaxDownloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, l, files := setup(t, ota.Config{MaxDownloads: 2})
		addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(1200, 1))
		run(t, e)
		ids := []string{"a", "b", "c", "d", "e"}
		devs := map[string]*device{}
		_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: ids})
		require.NoError(t, err)
		for _, id := range ids {
			devs[id] = newDevice(id, "V1")
			devs[id].trace = func(m pcp.Message) { // uplink into the same log, before the engine sees it
				l.mu.Lock()
				defer l.mu.Unlock()
				l.order = append(l.order, m)
			}
			devs[id].step(t, e, l) // answers the version query
		}
		synctest.Wait()
		notified := func() (n int) {
			for _, id := range ids {
				n += count[pcp.Notify](l.messages(id))
			}
			return n
		}
		require.Equal(t, 2, notified())
		require.Equal(t, ota.StepQueued, subTask(t, e, "t", "c").Step)
		require.True(t, subTask(t, e, "t", "c").Deadline.IsZero(), "no deadline while queued")
		for round := 0; round < 10; round++ {
			for _, id := range ids {
				devs[id].run(t, e, l, nil)
			}
			synctest.Wait()
		}
		// Downloads in progress at any moment: notifies sent minus
		// download results reported.
		busy, most := 0, 0
		l.mu.Lock()
		for _, m := range l.order {
			switch m.(type) {
			case pcp.Notify:
				busy++
			case pcp.DownloadResult:
				busy--
			}
			most = max(most, busy)
		}
		l.mu.Unlock()
		require.Equal(t, 2, most)
		for _, id := range ids {
			require.Equal(t, ota.SubSuccess, subTask(t, e, "t", id).State, "device %s", id)
		}
		require.Equal(t, 5, notified())
	})
}

// TestWaitingSubTaskRefusesBlocks: before its window a device's old block
// requests get 0x80, not silence.
func TestWaitingSubTaskRefusesBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, l, files := setup(t, ota.Config{})
		addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
		now := time.Now()
		_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"},
			Policy: ota.Policy{Execute: ota.Window, Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}})
		require.NoError(t, err)
		require.NoError(t, e.HandleFrame(context.Background(), "d", pcp.Encode(pcp.BlockRequest{Version: "V2", Block: 0})))
		require.Equal(t, []pcp.Message{pcp.BlockAnswer{Result: pcp.ResultNoSuchTask, Block: 0, Data: []byte{}}}, l.messages("d"))
	})
}
