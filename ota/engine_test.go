package ota_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

// listener records events.
type listener struct {
	mu       sync.Mutex
	states   []ota.StateEvent
	results  []ota.ResultEvent
	versions []string // "kind device version"
}

func (l *listener) VersionReported(kind ota.Kind, deviceID, version string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.versions = append(l.versions, fmt.Sprintf("%s %s %s", kind, deviceID, version))
}

func (l *listener) UpgradeStateChanged(e ota.StateEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states = append(l.states, e)
}

func (l *listener) UpgradeResult(e ota.ResultEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, e)
}

func (l *listener) stateNames(deviceID string) (out []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.states {
		if s.DeviceID == deviceID {
			out = append(out, s.State)
		}
	}
	return out
}

func subTask(t testing.TB, e *ota.Engine, taskID, deviceID string) ota.SubTask {
	subs, err := e.SubTasks(context.Background(), taskID)
	require.NoError(t, err)
	for _, s := range subs {
		if s.DeviceID == deviceID {
			return s
		}
	}
	t.Fatalf("task %s has no sub-task for %s", taskID, deviceID)
	return ota.SubTask{}
}

// TestSoftwareUpgrade runs one PCP upgrade end to end (OTA-2, OTA-6):
// query version, notify, blocks, download result, execute, upgrade result.
func TestSoftwareUpgrade(t *testing.T) {
	lis := &listener{}
	e, l, files := setup(t, ota.Config{Listener: lis})
	body := content(1234, 1)
	p := addPackage(t, e, files, ota.Package{ID: "sw2", Version: "V2.0", BlockSize: 100, SourceVersions: []string{"V1.0"}}, body)
	require.Equal(t, 13, p.Blocks())
	require.Equal(t, pcp.CRC16(0, body), p.CheckCode)

	d := newDevice("dev1", "V1.0")
	task, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t1", PackageID: "sw2", Devices: []string{"dev1"}})
	require.NoError(t, err)
	require.Equal(t, ota.TaskProcessing, task.State)
	require.True(t, e.Upgrading("dev1"))
	d.run(t, e, l, nil)

	s := subTask(t, e, "t1", "dev1")
	require.Equal(t, ota.SubSuccess, s.State, "sub-task %+v", s)
	require.Equal(t, "V1.0", s.SourceVersion)
	require.Equal(t, "V2.0", s.CurrentVersion)
	require.Equal(t, 13, s.Blocks)
	require.Equal(t, "V2.0", d.dl.Version())
	require.Equal(t, body, d.storage.Bytes(int64(len(body))))
	got, err := e.Task(context.Background(), "t1")
	require.NoError(t, err)
	require.Equal(t, ota.TaskSuccess, got.State)
	require.False(t, e.Upgrading("dev1"))

	// The downlink messages in order.
	var codes []string
	for _, m := range l.messages("dev1") {
		codes = append(codes, fmt.Sprintf("%T", m))
	}
	require.Equal(t, "pcp.QueryVersion", codes[0])
	require.Equal(t, "pcp.Notify", codes[1])
	require.Equal(t, pcp.Notify{Version: "V2.0", BlockSize: 100, BlockCount: 13, CheckCode: p.CheckCode}, l.messages("dev1")[1])
	require.Equal(t, []string{ota.StateDownloading, ota.StateDownloaded, ota.StateUpdating}, lis.stateNames("dev1"))
	require.Len(t, lis.results, 1)
	r := lis.results[0]
	require.Equal(t, ota.ResultEvent{Kind: ota.Software, TaskID: "t1", DeviceID: "dev1", SubTaskID: "t1/dev1", SourceVersion: "V1.0",
		TargetVersion: "V2.0", CurVersion: "V2.0", Result: ota.ResultSuccess, Time: r.Time}, r)
	require.Equal(t, "swUpgradeResultNotify", r.NotifyType())
	require.Equal(t, "swUpgradeStateChangeNotify", lis.states[0].NotifyType())
}

// TestFlakyLinks: a task over 50 devices whose links drop at random; every
// device ends in success and the bytes served again are at most one block
// per drop (OTA-7).
func TestFlakyLinks(t *testing.T) {
	e, l, files := setup(t, ota.Config{})
	body := content(64<<10, 2)
	p := addPackage(t, e, files, ota.Package{ID: "big", Version: "V3.1"}, body)
	const n = 50
	devs := make([]*device, n)
	ids := make([]string, n)
	for i := range devs {
		ids[i] = fmt.Sprintf("meter-%02d", i)
		devs[i] = newDevice(ids[i], "V3.0")
	}
	_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "flaky", PackageID: "big", Devices: ids})
	require.NoError(t, err)
	drops := make([]int, n)
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(42, uint64(i)))
			drops[i] = d.runFlaky(t, e, l, rnd, 0.03)
		})
	}
	wg.Wait()
	total, resent := 0, int64(0)
	for i, d := range devs {
		s := subTask(t, e, "flaky", d.id)
		require.Equal(t, ota.SubSuccess, s.State, "device %s: %+v, reason %q", d.id, s, s.Reason)
		require.Equal(t, body, d.storage.Bytes(int64(len(body))), "device %s content", d.id)
		l.mu.Lock()
		r := l.resent[d.id]
		l.mu.Unlock()
		require.LessOrEqual(t, r, int64(drops[i]*p.BlockSize), "device %s: %d bytes served again after %d drops", d.id, r, drops[i])
		total += drops[i]
		resent += r
	}
	task, err := e.Task(context.Background(), "flaky")
	require.NoError(t, err)
	require.Equal(t, ota.TaskSuccess, task.State)
	require.Greater(t, total, n, "the links dropped often enough to matter")
	require.Positive(t, resent, "some blocks were lost and served again")
	t.Logf("%d drops, %d bytes served again (%.1f per drop)", total, resent, float64(resent)/float64(total))
}

// TestPackageChangedRestartsAtZero: a device part way through a download
// meets a changed package (same version, other content) and starts again
// at block 0 (OTA-7, FAQ §10.11).
func TestPackageChangedRestartsAtZero(t *testing.T) {
	ctx := context.Background()
	e, l, files := setup(t, ota.Config{})
	oldBody, newBody := content(5000, 3), content(4800, 4)
	addPackage(t, e, files, ota.Package{ID: "a", Version: "V2.0"}, oldBody)
	addPackage(t, e, files, ota.Package{ID: "b", Version: "V2.0"}, newBody)
	d := newDevice("dev", "V1.0")
	_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t-a", PackageID: "a", Devices: []string{"dev"}})
	require.NoError(t, err)
	d.run(t, e, l, func() bool {
		st, _ := d.progress.Load()
		return st.Next == 4
	})
	l.drop("dev") // the link breaks after 4 blocks
	st, _ := d.progress.Load()
	require.Equal(t, 4, st.Next)

	_, err = e.Stop(ctx, "t-a")
	require.NoError(t, err)
	require.Equal(t, ota.SubStop, subTask(t, e, "t-a", "dev").State)
	// The device still asks for block 4 of V2.0: no task serves it now.
	l.clearLog("dev")
	d.wake(t, e)
	require.Equal(t, []pcp.Message{pcp.BlockAnswer{Result: pcp.ResultNoSuchTask, Block: 4, Data: []byte{}}}, l.messages("dev"))
	d.run(t, e, l, nil)
	st, _ = d.progress.Load()
	require.Equal(t, download.PhaseIdle, st.Phase, "0x80 makes the device drop the download")

	// Keep the old progress to show the change is detected by check code.
	require.NoError(t, d.progress.Save(download.State{Phase: download.PhaseDownloading, Version: "V2.0",
		CheckCode: pcp.CRC16(0, oldBody), BlockSize: 500, Blocks: 10, Next: 4}))
	d.uplink = nil
	_, err = e.CreateTask(ctx, ota.TaskSpec{ID: "t-b", PackageID: "b", Devices: []string{"dev"}})
	require.NoError(t, err)
	d.run(t, e, l, nil)
	var blocks []uint16
	for _, m := range d.uplink {
		if r, ok := m.(pcp.BlockRequest); ok {
			blocks = append(blocks, r.Block)
		}
	}
	require.Equal(t, uint16(0), blocks[0], "first block asked after the change")
	require.Len(t, blocks, 10)
	require.Equal(t, ota.SubSuccess, subTask(t, e, "t-b", "dev").State)
	require.Equal(t, newBody, d.storage.Bytes(int64(len(newBody))))
}

// TestResumeAfterDrop: after a drop the device asks for the next missing
// block, not block 0 (OTA-7), and the platform serves any valid block.
func TestResumeAfterDrop(t *testing.T) {
	ctx := context.Background()
	e, l, files := setup(t, ota.Config{})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(3000, 5))
	d := newDevice("dev", "V1")
	_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"dev"}})
	require.NoError(t, err)
	d.run(t, e, l, func() bool { st, _ := d.progress.Load(); return st.Next == 3 })
	l.drop("dev")
	tp, err := e.Progress(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, ota.TaskProgress{Total: 1, States: map[ota.SubState]int{ota.SubProcessing: 1}, Percent: 0, Download: 66}, tp,
		"4 of 6 blocks served")
	// The device reboots: a new Downloader over the kept progress.
	d.dl = download.New("V1", d.progress, d.storage, nil)
	d.uplink = nil
	d.wake(t, e)
	require.Equal(t, pcp.BlockRequest{Version: "V2", Block: 3}, d.uplink[0])
	served, ok := e.Served("dev")
	require.True(t, ok)
	require.Equal(t, 6, served.Blocks)
	require.Equal(t, 4, served.Distinct)
	require.Equal(t, 1, served.Resent, "block 3 was in flight when the link dropped")
	require.Equal(t, uint64(0b1111), served.Bitmap[0])
	// Any valid block at any time; beyond the package, 0x81.
	l.drop("dev")
	l.clearLog("dev")
	d.send(t, e, [][]byte{pcp.Encode(pcp.BlockRequest{Version: "V2", Block: 1}), pcp.Encode(pcp.BlockRequest{Version: "V2", Block: 6}),
		pcp.Encode(pcp.BlockRequest{Version: "V1.9", Block: 2})})
	msgs := l.messages("dev")
	require.Equal(t, uint16(1), msgs[0].(pcp.BlockAnswer).Block)
	require.Len(t, msgs[0].(pcp.BlockAnswer).Data, 500)
	require.Equal(t, pcp.BlockAnswer{Result: pcp.ResultNoSuchBlock, Block: 6, Data: []byte{}}, msgs[1])
	require.Equal(t, pcp.BlockAnswer{Result: pcp.ResultNoSuchTask, Block: 2, Data: []byte{}}, msgs[2], "another version")
	served, _ = e.Served("dev")
	require.Equal(t, 2, served.Resent)
	require.Equal(t, int64(1000), served.ResentBytes)
	d.wake(t, e)
	d.run(t, e, l, nil)
	require.Equal(t, ota.SubSuccess, subTask(t, e, "t", "dev").State)
	tp, err = e.Progress(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, ota.TaskProgress{Total: 1, States: map[ota.SubState]int{ota.SubSuccess: 1}, Percent: 100, Download: 100}, tp)
}

// TestNoTaskAnswers: frames from a device without an upgrade get 0x80.
func TestNoTaskAnswers(t *testing.T) {
	e, l, _ := setup(t, ota.Config{})
	d := newDevice("lonely", "V1")
	d.send(t, e, [][]byte{pcp.Encode(pcp.BlockRequest{Version: "V9", Block: 2}), pcp.Encode(pcp.DownloadResult{Result: pcp.ResultOK}),
		pcp.Encode(pcp.UpgradeResult{Result: pcp.ResultOK, Version: "V9"}), pcp.Encode(pcp.NotifyAnswer{Result: pcp.ResultOK})})
	require.Equal(t, []pcp.Message{pcp.BlockAnswer{Result: pcp.ResultNoSuchTask, Block: 2, Data: []byte{}},
		pcp.DownloadResultAnswer{Result: pcp.ResultNoSuchTask}, pcp.UpgradeResultAnswer{Result: pcp.ResultNoSuchTask}}, l.messages("lonely"))
	err := e.HandleFrame(context.Background(), "lonely", []byte{0xFF, 0xFE, 1})
	require.ErrorIs(t, err, pcp.ErrBadFrame)
	require.Contains(t, err.Error(), "lonely")
}

// TestQueryVersionOutsideTask: the platform asks a version without a task;
// the answer reaches a VersionListener (OTA-5).
func TestQueryVersionOutsideTask(t *testing.T) {
	lis := &listener{}
	e, l, _ := setup(t, ota.Config{Listener: lis})
	d := newDevice("d", "V7.1")
	require.NoError(t, e.QueryVersion(context.Background(), "d"))
	d.run(t, e, l, nil)
	require.Equal(t, []string{"softwarePackage d V7.1"}, lis.versions)
}

// TestWakeResends: a request lost while the device slept is sent again
// when it wakes; busy answers are asked again at the next wake (OTA-6).
func TestWakeResends(t *testing.T) {
	ctx := context.Background()
	e, l, files := setup(t, ota.Config{})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(600, 1))
	_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}})
	require.NoError(t, err)
	l.drop("d") // the query is lost
	e.DeviceOnline(ctx, "d")
	require.Equal(t, 2, count[pcp.QueryVersion](l.messages("d")))
	l.drop("d")
	d := newDevice("d", "V1")
	d.send(t, e, [][]byte{pcp.Encode(pcp.QueryVersionAnswer{Result: pcp.ResultOK, Version: "V1"})})
	d.send(t, e, [][]byte{pcp.Encode(pcp.NotifyAnswer{Result: pcp.ResultBusy})})
	require.Equal(t, ota.StepNotify, subTask(t, e, "t", "d").Step, "busy: still waiting to notify")
	l.drop("d")
	e.DeviceOnline(ctx, "d")
	require.Equal(t, 2, count[pcp.Notify](l.messages("d")))
	d.run(t, e, l, nil)
	require.Equal(t, ota.SubSuccess, subTask(t, e, "t", "d").State)
}

// TestExecuteAnswersAndWrongVersion: busy on the version query and low
// battery on execute are asked again at the next wake, not failures; an upgrade result of ok that reports a
// version other than the target fails with "Firmware update failed"
// (OTA-3, OTA-6).
func TestExecuteAnswersAndWrongVersion(t *testing.T) {
	ctx := context.Background()
	e, l, files := setup(t, ota.Config{})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(600, 1))
	_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}})
	require.NoError(t, err)
	d := newDevice("d", "V1")
	l.drop("d")
	d.send(t, e, [][]byte{pcp.Encode(pcp.QueryVersionAnswer{Result: pcp.ResultBusy})})
	s := subTask(t, e, "t", "d")
	require.Equal(t, ota.SubProcessing, s.State, "busy on query: %+v", s)
	require.Equal(t, ota.StepQuery, s.Step)
	e.DeviceOnline(ctx, "d")
	require.Equal(t, 2, count[pcp.QueryVersion](l.messages("d")), "query sent again on wake")
	d.run(t, e, l, func() bool { return subTask(t, e, "t", "d").Step == ota.StepExecute })
	require.Equal(t, ota.StepExecute, subTask(t, e, "t", "d").Step)
	l.drop("d")
	d.send(t, e, [][]byte{pcp.Encode(pcp.ExecuteAnswer{Result: pcp.ResultLowBattery})})
	s = subTask(t, e, "t", "d")
	require.Equal(t, ota.SubProcessing, s.State, "low battery: %+v", s)
	require.Equal(t, ota.StepExecute, s.Step)
	e.DeviceOnline(ctx, "d")
	require.Equal(t, 2, count[pcp.Execute](l.messages("d")), "execute sent again on wake")
	l.drop("d")
	d.send(t, e, [][]byte{pcp.Encode(pcp.ExecuteAnswer{Result: pcp.ResultOK})})
	require.Equal(t, ota.StepResult, subTask(t, e, "t", "d").Step)
	d.send(t, e, [][]byte{pcp.Encode(pcp.UpgradeResult{Result: pcp.ResultOK, Version: "V1"})})
	s = subTask(t, e, "t", "d")
	require.Equal(t, ota.SubFail, s.State, "%+v", s)
	require.Equal(t, ota.ReasonUpdateFailed, s.Reason)
	require.Equal(t, "V1", s.CurrentVersion)
}
