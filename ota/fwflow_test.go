package ota_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/ota"
	"github.com/stretchr/testify/require"
)

// fwDevice plays object 5 of an LwM2M client the way OMA LwM2M (TS Core
// 1.1, object 5 and its state machine) describes it:
//
//   - writing the Package URI moves it from Idle to Downloading with Update
//     Result 0; a download that breaks goes back to Idle with the failure
//     in Update Result (4: connection lost);
//   - a finished download is Downloaded; Execute /5/0/2 is allowed only
//     there (else 4.05), moves to Updating, and the device restarts: it
//     comes back Idle with Update Result 1 and the new version in /3/0/3,
//     or Downloaded with Update Result 8 when the update failed;
//   - it notifies State and Update Result changes only while observed, and
//     a restart forgets every observation (its flash keeps the object 5
//     values and the bytes downloaded; with forget set it loses them).
//
// It downloads through Engine.Block2 and reports each block to
// Engine.FirmwareServed, as the platform's file server does.
type fwDevice struct {
	t  *testing.T
	e  *ota.Engine
	id string

	mu       sync.Mutex
	running  string // /3/0/3
	uri      string
	state    int
	result   int
	got      []byte
	observed bool
	up       bool // registered and answering
	forget   bool // a restart loses the download
	failWith int  // Update Result of the next update; 0 means it succeeds
	version  string
	executes int
	writes   int
}

func newFwDevice(t *testing.T, e *ota.Engine, id, version string) *fwDevice {
	return &fwDevice{t: t, e: e, id: id, running: version, up: true}
}

var errNoAnswer = errors.New("no answer: the device is off")

func (d *fwDevice) ReadFirmwareVersion(context.Context, string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.up {
		return "", errNoAnswer
	}
	return d.running, nil
}

func (d *fwDevice) ObserveFirmware(context.Context, string) (ota.FirmwareStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.up {
		return ota.FirmwareStatus{}, errNoAnswer
	}
	d.observed = true
	return ota.FirmwareStatus{State: d.state, Result: d.result}, nil
}

func (d *fwDevice) WritePackageURI(_ context.Context, _, uri string) error {
	d.mu.Lock()
	if !d.up {
		d.mu.Unlock()
		return errNoAnswer
	}
	d.writes++
	d.uri, d.state, d.result, d.got = uri, ota.FwStateDownloading, 0, nil
	d.mu.Unlock()
	d.notify(ota.FirmwareStatus{State: ota.FwStateDownloading, Result: 0})
	return nil
}

func (d *fwDevice) ExecuteUpdate(context.Context, string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.up {
		return errNoAnswer
	}
	if d.state != ota.FwStateDownloaded {
		return errors.New("4.05 Method Not Allowed: execute outside Downloaded")
	}
	d.executes++
	d.state = ota.FwStateUpdating
	d.up, d.observed = false, false // answers 2.04, then restarts
	if d.failWith != 0 {
		d.state, d.result = ota.FwStateDownloaded, d.failWith
		return nil
	}
	d.running, d.state, d.result = d.version, ota.FwStateIdle, 1
	return nil
}

// notify sends a notification of the values that changed, when observed,
// from its own goroutine, as a network would deliver it.
func (d *fwDevice) notify(st ota.FirmwareStatus) {
	d.mu.Lock()
	observed := d.observed
	d.mu.Unlock()
	if observed {
		go d.e.FirmwareReport(context.Background(), d.id, st)
	}
}

// download takes n more blocks of 256 bytes from the package of its
// Package URI (all that remain when n < 0).
func (d *fwDevice) download(n int) {
	d.mu.Lock()
	uri, got := d.uri, len(d.got)
	d.mu.Unlock()
	id := uri[len("coap://h/fw/"):]
	for ; n != 0; n-- {
		data, more, _, _, err := d.e.Block2(context.Background(), id, uint32(got/256), 4)
		require.NoError(d.t, err)
		got += len(data)
		d.e.FirmwareServed(context.Background(), d.id, id, int64(got))
		d.mu.Lock()
		d.got = append(d.got, data...)
		done := !more
		if done {
			d.state = ota.FwStateDownloaded
		}
		d.mu.Unlock()
		if done {
			d.notify(ota.FirmwareStatus{State: ota.FwStateDownloaded, Result: FwUnknownResult})
			return
		}
	}
}

// FwUnknownResult keeps notifications of State alone readable.
const FwUnknownResult = ota.FwUnknown

// breakDownload ends the download with Update Result r (Idle, r).
func (d *fwDevice) breakDownload(r int) {
	d.mu.Lock()
	d.state, d.result, d.got = ota.FwStateIdle, r, nil
	d.mu.Unlock()
	d.notify(ota.FirmwareStatus{State: ota.FwStateIdle, Result: FwUnknownResult})
	d.notify(ota.FirmwareStatus{State: ota.FwUnknown, Result: r})
}

// crash switches the device off; boot registers it anew from its flash.
func (d *fwDevice) crash() {
	d.mu.Lock()
	d.up, d.observed = false, false
	d.mu.Unlock()
}

func (d *fwDevice) boot() {
	d.mu.Lock()
	d.up = true
	if d.forget && d.state == ota.FwStateDownloading {
		d.uri, d.state, d.result, d.got = "", ota.FwStateIdle, 0, nil
	}
	d.mu.Unlock()
	d.e.DeviceRegistered(context.Background(), d.id)
	d.e.DeviceOnline(context.Background(), d.id)
}

func (d *fwDevice) counts() (writes, executes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writes, d.executes
}

// fwFlow starts, in a synctest bubble, an engine and a device "nb" at F1
// with task "t" upgrading it to F2 (a 2,000-byte package) under policy.
func fwFlow(t *testing.T, cfg ota.Config, policy ota.Policy) (*ota.Engine, *fwDevice, *listener) {
	lis := &listener{}
	cfg.FirmwareURI, cfg.Listener = "coap://h/fw/", lis
	var dev *fwDevice
	cfg.Object5 = object5Func(func() *fwDevice { return dev })
	e, _, files := setup(t, cfg)
	dev = newFwDevice(t, e, "nb", "F1")
	dev.version = "F2"
	addPackage(t, e, files, ota.Package{ID: "fw", Kind: ota.Firmware, Version: "F2"}, content(2000, 7))
	run(t, e)
	_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "fw", Devices: []string{"nb"}, Policy: policy})
	require.NoError(t, err)
	synctest.Wait()
	return e, dev, lis
}

// object5Func hands every call to the device the function returns (it is
// made after the engine, which needs its Object5 first).
type object5Func func() *fwDevice

func (f object5Func) ReadFirmwareVersion(ctx context.Context, id string) (string, error) {
	return f().ReadFirmwareVersion(ctx, id)
}
func (f object5Func) ObserveFirmware(ctx context.Context, id string) (ota.FirmwareStatus, error) {
	return f().ObserveFirmware(ctx, id)
}
func (f object5Func) WritePackageURI(ctx context.Context, id, uri string) error {
	return f().WritePackageURI(ctx, id, uri)
}
func (f object5Func) ExecuteUpdate(ctx context.Context, id string) error {
	return f().ExecuteUpdate(ctx, id)
}

// TestFirmwareFlowReboot: download (progress from the blocks served),
// Downloaded, Execute, the device restarts and registers anew; the engine
// observes /5/0/3 and /5/0/5 again, takes Idle + Update Result 1 and reads
// the version: success with F2 (issue 20 item 2 (a)).
func TestFirmwareFlowReboot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, dev, lis := fwFlow(t, ota.Config{}, ota.Policy{})
		require.Equal(t, ota.StepDownload, subTask(t, e, "t", "nb").Step)
		dev.download(4) // 1,024 of 2,000 bytes
		synctest.Wait()
		s := subTask(t, e, "t", "nb")
		require.Equal(t, 51, s.Progress(0), "progress is the highest block served over the size: %+v", s)
		tp, err := e.Progress(context.Background(), "t")
		require.NoError(t, err)
		require.Equal(t, 51, tp.Download)

		dev.download(-1)
		synctest.Wait()
		_, executes := dev.counts()
		require.Equal(t, 1, executes, "Downloaded is executed")
		require.Equal(t, ota.StepResult, subTask(t, e, "t", "nb").Step)

		time.Sleep(3 * time.Minute) // the device restarts
		dev.boot()
		synctest.Wait()
		s = subTask(t, e, "t", "nb")
		require.Equal(t, ota.SubSuccess, s.State, "%+v", s)
		require.Equal(t, "F2", s.CurrentVersion)
		require.Equal(t, []string{ota.StateDownloading, ota.StateDownloaded, ota.StateUpdating}, lis.stateNames("nb"))
		require.False(t, e.Upgrading("nb"), "commands no longer wait")
	})
}

// TestFirmwareFlowRestartMidDownload: the device is switched off in the
// middle of the download (issue 20 item 2 (b)). Three devices: one resumes
// its download after the restart, one finished it just before and comes
// back Downloaded (executed now), one forgot it (the Package URI is
// written again and it downloads from the start).
func TestFirmwareFlowRestartMidDownload(t *testing.T) {
	for _, tt := range []struct {
		name       string
		forget     bool
		finish     bool // the download ended before the restart, unnoticed
		wantWrites int
	}{
		{"resumes", false, false, 1},
		{"downloaded-before-restart", false, true, 1},
		{"forgot", true, false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, dev, _ := fwFlow(t, ota.Config{}, ota.Policy{})
				dev.forget = tt.forget
				dev.download(3)
				dev.crash()
				if tt.finish {
					dev.download(-1) // nobody observes: nobody hears it
				}
				synctest.Wait()
				require.Equal(t, ota.StepDownload, subTask(t, e, "t", "nb").Step)
				time.Sleep(10 * time.Minute)
				dev.boot()
				synctest.Wait()
				dev.download(-1)
				synctest.Wait()
				time.Sleep(time.Minute)
				dev.boot() // after the update
				synctest.Wait()
				s := subTask(t, e, "t", "nb")
				require.Equal(t, ota.SubSuccess, s.State, "%+v", s)
				require.Equal(t, "F2", s.CurrentVersion)
				writes, executes := dev.counts()
				require.Equal(t, tt.wantWrites, writes, "Package URI writes")
				require.Equal(t, 1, executes)
			})
		})
	}
}

// TestFirmwareFlowConnectionLostRetried: Update Result 4 (connection lost
// during download) fails the attempt; the task is retried per retryTimes
// (issue 20 item 2 (c)). A device that keeps failing ends failed at the
// limit; one that succeeds on the second attempt ends success.
func TestFirmwareFlowConnectionLostRetried(t *testing.T) {
	const retryEvery = 10 * time.Minute
	t.Run("succeeds-on-retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e, dev, _ := fwFlow(t, ota.Config{RetryInterval: retryEvery}, ota.Policy{RetryTimes: 2})
			dev.download(2)
			dev.breakDownload(4)
			synctest.Wait()
			s := subTask(t, e, "t", "nb")
			require.Equal(t, ota.SubFail, s.State, "%+v", s)
			require.Equal(t, ota.ReasonConnectionLost, s.Reason)
			require.False(t, e.Upgrading("nb"), "a failed attempt holds no commands")
			task, _ := e.Task(context.Background(), "t")
			require.Equal(t, ota.TaskFailed, task.State)
			require.False(t, task.RetryAt.IsZero(), "a retry is planned")

			time.Sleep(retryEvery)
			synctest.Wait()
			// The device still says Idle / 4 when observed again: an
			// old value, not this attempt's.
			s = subTask(t, e, "t", "nb")
			require.Equal(t, ota.StepDownload, s.Step, "%+v", s)
			require.Equal(t, 1, s.Attempt)
			dev.download(-1)
			synctest.Wait()
			dev.boot()
			synctest.Wait()
			s = subTask(t, e, "t", "nb")
			require.Equal(t, ota.SubSuccess, s.State, "%+v", s)
			task, _ = e.Task(context.Background(), "t")
			require.Equal(t, ota.TaskSuccess, task.State)
		})
	})
	t.Run("fails-at-limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e, dev, _ := fwFlow(t, ota.Config{RetryInterval: retryEvery}, ota.Policy{RetryTimes: 2})
			for attempt := range 3 {
				s := subTask(t, e, "t", "nb")
				require.Equal(t, ota.SubProcessing, s.State, "attempt %d: %+v", attempt, s)
				require.Equal(t, ota.StepDownload, s.Step, "attempt %d", attempt)
				require.Equal(t, attempt, s.Attempt)
				dev.download(1)
				dev.breakDownload(4)
				synctest.Wait()
				require.Equal(t, ota.SubFail, subTask(t, e, "t", "nb").State)
				time.Sleep(retryEvery << attempt) // Config.RetryInterval, doubled per retry
				synctest.Wait()
			}
			task, _ := e.Task(context.Background(), "t")
			require.Equal(t, ota.TaskFailed, task.State)
			require.Equal(t, 2, task.Attempt, "retried retryTimes times")
			require.True(t, task.RetryAt.IsZero(), "no retry after the limit")
			s := subTask(t, e, "t", "nb")
			require.Equal(t, ota.ReasonConnectionLost, s.Reason)
			writes, _ := dev.counts()
			require.Equal(t, 3, writes)
		})
	})
}

// TestFirmwareFlowReports: State and Update Result drive the sub-task
// whichever way they come — a Send of both, or notifications in either
// order (issue 20 item 2 (d)).
func TestFirmwareFlowReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, dev, _ := fwFlow(t, ota.Config{}, ota.Policy{})
		// The device downloads without being observed (it sends its
		// values with LwM2M Send instead).
		dev.crash()
		dev.mu.Lock()
		dev.up = true
		dev.mu.Unlock()
		dev.download(-1)
		e.FirmwareReport(ctx, "nb", ota.FirmwareStatus{State: ota.FwStateDownloaded, Result: 0}) // a Send
		synctest.Wait()
		_, executes := dev.counts()
		require.Equal(t, 1, executes)
		// Update Result before State, from a device whose registration
		// the engine did not see (no sync).
		dev.mu.Lock()
		dev.up = true
		dev.mu.Unlock()
		e.FirmwareResult(ctx, "nb", 1)
		e.FirmwareState(ctx, "nb", ota.FwStateIdle)
		synctest.Wait()
		s := subTask(t, e, "t", "nb")
		require.Equal(t, ota.SubSuccess, s.State, "%+v", s)
	})
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, _, _ := fwFlow(t, ota.Config{}, ota.Policy{})
		// A Send of Idle with Update Result 5 fails the attempt.
		e.FirmwareReport(ctx, "nb", ota.FirmwareStatus{State: ota.FwStateIdle, Result: 5})
		s := subTask(t, e, "t", "nb")
		require.Equal(t, ota.SubFail, s.State)
		require.Equal(t, ota.ReasonIntegrity, s.Reason)
	})
}

// TestFirmwareFlowUpdateFailed: the device comes back from Execute still
// Downloaded with Update Result 8: the attempt fails with its reason.
func TestFirmwareFlowUpdateFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, dev, _ := fwFlow(t, ota.Config{}, ota.Policy{})
		dev.failWith = 8
		dev.download(-1)
		synctest.Wait()
		dev.boot()
		synctest.Wait()
		s := subTask(t, e, "t", "nb")
		require.Equal(t, ota.SubFail, s.State, "%+v", s)
		require.Equal(t, ota.ReasonUpdateFailed, s.Reason)
	})
}

// TestFirmwareFlowResultTimeout: a device that never comes back after
// Execute fails at ResultTimeout with the FAQ's reason (timeouts per step,
// OTA-8).
func TestFirmwareFlowResultTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, dev, _ := fwFlow(t, ota.Config{ResultTimeout: 20 * time.Minute}, ota.Policy{})
		dev.download(-1)
		synctest.Wait()
		require.Equal(t, ota.StepResult, subTask(t, e, "t", "nb").Step)
		time.Sleep(20*time.Minute - time.Second)
		synctest.Wait()
		require.Equal(t, ota.SubProcessing, subTask(t, e, "t", "nb").State)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		s := subTask(t, e, "t", "nb")
		require.Equal(t, ota.SubFail, s.State)
		require.Equal(t, ota.ReasonResultTimeout, s.Reason)
	})
}
