package ota_test

import (
	"context"
	"errors"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

// TestVersionRules: same version, source versions, and a lower target
// (OTA-1, OTA-2, FAQ §10.3, §10.7).
func TestVersionRules(t *testing.T) {
	tests := []struct {
		name    string
		device  string
		sources []string
		state   ota.SubState
		reason  string
	}{
		{"same version", "V2.0", nil, ota.SubFail, ota.ReasonSameVersion},
		{"not a source version", "V0.5", []string{"V1.0", "V1.1"}, ota.SubFail, ota.ReasonSourceVersion},
		{"a source version", "V1.1", []string{"V1.0", "V1.1"}, ota.SubSuccess, ""},
		{"lower target allowed", "V3.0", nil, ota.SubSuccess, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis := &listener{}
			e, l, files := setup(t, ota.Config{Listener: lis})
			addPackage(t, e, files, ota.Package{ID: "p", Version: "V2.0", SourceVersions: tt.sources}, content(600, 1))
			d := newDevice("d", tt.device)
			_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}})
			require.NoError(t, err)
			d.run(t, e, l, nil)
			s := subTask(t, e, "t", "d")
			require.Equal(t, tt.state, s.State)
			require.Equal(t, tt.reason, s.Reason)
			require.Equal(t, tt.device, s.SourceVersion)
			if tt.state == ota.SubFail {
				require.Zero(t, count[pcp.Notify](l.messages("d")), "no upgrade starts")
				require.Equal(t, ota.ResultFail, lis.results[0].Result)
				require.Equal(t, tt.reason, lis.results[0].Reason)
			}
		})
	}
}

// TestTaskConflict: a device with another upgrade in progress fails with
// "Task Conflict", software or firmware (OTA-2, FAQ §10.5).
func TestTaskConflict(t *testing.T) {
	ctx := context.Background()
	e, _, files := setup(t, ota.Config{Object5: &object5{}, FirmwareURI: "coap://h/fw/"})
	addPackage(t, e, files, ota.Package{ID: "sw", Version: "V2"}, content(600, 1))
	addPackage(t, e, files, ota.Package{ID: "fw", Kind: ota.Firmware, Version: "F2"}, content(600, 2))
	_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t1", PackageID: "sw", Devices: []string{"a", "b"}})
	require.NoError(t, err)
	task, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t2", PackageID: "fw", Devices: []string{"b"}})
	require.NoError(t, err)
	require.Equal(t, ota.TaskFailed, task.State, "its only device is busy")
	s := subTask(t, e, "t2", "b")
	require.Equal(t, ota.SubFail, s.State)
	require.Equal(t, ota.ReasonTaskConflict, s.Reason)
	_, err = e.CreateTask(ctx, ota.TaskSpec{ID: "t3", PackageID: "sw", Devices: []string{"c", "a", "c"}})
	require.NoError(t, err)
	subs, _ := e.SubTasks(ctx, "t3")
	require.Len(t, subs, 2, "duplicate devices are one sub-task")
	require.Equal(t, ota.ReasonTaskConflict, subTask(t, e, "t3", "a").Reason)
	require.Equal(t, ota.SubProcessing, subTask(t, e, "t3", "c").State)
	_, err = e.CreateTask(ctx, ota.TaskSpec{ID: "t1", PackageID: "sw", Devices: []string{"z"}})
	require.ErrorIs(t, err, ota.ErrInvalid, "a task id in use")
}

// TestNoProtocolService: a device whose product does not match the
// package fails to start (OTA-3).
func TestNoProtocolService(t *testing.T) {
	devs := &devices{}
	devs.set("other", ota.Device{Online: true, Manufacturer: "Acme", Model: "M2", DeviceType: "Meter"})
	devs.set("right", ota.Device{Online: true, Manufacturer: "Acme", Model: "M1", DeviceType: "Meter"})
	e, _, files := setup(t, ota.Config{Devices: devs})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2", Manufacturer: "Acme", Model: "M1"}, content(600, 1))
	_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"other", "right"}})
	require.NoError(t, err)
	require.Equal(t, ota.ReasonNoProtocolService, subTask(t, e, "t", "other").Reason)
	require.Equal(t, ota.SubProcessing, subTask(t, e, "t", "right").State)
}

// TestStopAndManualRetry: Stop ends active sub-tasks; Retry takes only the
// failed ones, including those an automatic retry skips (OTA-4).
func TestStopAndManualRetry(t *testing.T) {
	ctx := context.Background()
	e, l, files := setup(t, ota.Config{})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(600, 1))
	same, ok := newDevice("same", "V2"), newDevice("ok", "V1")
	_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"same", "ok", "busy"}, Policy: ota.Policy{RetryTimes: 3}})
	require.NoError(t, err)
	same.run(t, e, l, nil)
	ok.run(t, e, l, nil)
	_, err = e.Retry(ctx, "t")
	require.ErrorIs(t, err, ota.ErrNothingToRetry, "the task is still running")
	task, err := e.Stop(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, ota.TaskStop, task.State)
	require.Equal(t, ota.SubStop, subTask(t, e, "t", "busy").State)
	require.False(t, e.Upgrading("busy"))
	_, err = e.Stop(ctx, "t")
	require.ErrorIs(t, err, ota.ErrTaskFinished)
	_, err = e.Stop(ctx, "nope")
	require.ErrorIs(t, err, ota.ErrNotFound)
	_, err = e.Retry(ctx, "t")
	require.ErrorIs(t, err, ota.ErrNothingToRetry, "a stopped task is not retried")

	// A failed task: only the failed sub-task comes back.
	fresh := newDevice("fresh", "V1")
	_, err = e.CreateTask(ctx, ota.TaskSpec{ID: "t2", PackageID: "p", Devices: []string{"same", "fresh"}})
	require.NoError(t, err)
	same.run(t, e, l, nil)
	fresh.run(t, e, l, nil)
	task, _ = e.Task(ctx, "t2")
	require.Equal(t, ota.TaskFailed, task.State)
	require.True(t, task.RetryAt.IsZero(), "same version is not retried automatically")
	okBefore := subTask(t, e, "t2", "fresh")
	require.Equal(t, ota.SubSuccess, okBefore.State)
	task, err = e.Retry(ctx, "t2")
	require.NoError(t, err)
	require.Equal(t, ota.TaskProcessing, task.State)
	s := subTask(t, e, "t2", "same")
	require.Equal(t, ota.SubProcessing, s.State)
	require.Equal(t, 1, s.Attempt)
	require.Equal(t, okBefore, subTask(t, e, "t2", "fresh"))
}

// TestPCPFailureResults: device result codes become OTA-3 reasons.
func TestPCPFailureResults(t *testing.T) {
	for _, r := range []pcp.Result{pcp.ResultVerificationFailed, pcp.ResultNoStorage, pcp.ResultInstallFailed} {
		t.Run(r.String(), func(t *testing.T) {
			e, l, files := setup(t, ota.Config{})
			addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(600, 1))
			d := newDevice("d", "V1")
			if r == pcp.ResultInstallFailed {
				d.dl = download.New("V1", d.progress, d.storage, func(string) pcp.Result { return r })
			}
			_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}})
			require.NoError(t, err)
			if r == pcp.ResultNoStorage {
				d.step(t, e, l) // query
				d.send(t, e, [][]byte{pcp.Encode(pcp.NotifyAnswer{Result: r})})
			} else if r == pcp.ResultVerificationFailed {
				d.run(t, e, l, func() bool { st, _ := d.progress.Load(); return st.Next == 1 })
				d.storage.WriteAt([]byte{0xEE}, 0) // corrupt block 0
			}
			d.run(t, e, l, nil)
			s := subTask(t, e, "t", "d")
			require.Equal(t, ota.SubFail, s.State)
			require.Equal(t, ota.ResultReason(r), s.Reason)
		})
	}
}

func TestReasonMaps(t *testing.T) {
	want := map[int]string{2: ota.ReasonNoStorage, 3: ota.ReasonOutOfMemory, 4: ota.ReasonConnectionLost, 5: ota.ReasonIntegrity,
		6: ota.ReasonUnsupported, 7: ota.ReasonInvalidURI, 8: ota.ReasonUpdateFailed}
	for r, reason := range want {
		got, failed := ota.UpdateResultReason(r)
		require.True(t, failed)
		require.Equal(t, reason, got, "Update Result %d", r)
	}
	for _, r := range []int{0, 1} {
		_, failed := ota.UpdateResultReason(r)
		require.False(t, failed, "Update Result %d", r)
	}
	require.Equal(t, "Integrity check failure for new downloaded package", ota.ResultReason(pcp.ResultVerificationFailed))
	require.Equal(t, "Out of memory during downloading process", ota.ResultReason(pcp.ResultOutOfMemory))
	require.Equal(t, "Unsupported package type", ota.ResultReason(pcp.ResultUnsupportedPackage))
	require.Equal(t, "no such block", pcp.ResultNoSuchBlock.String())
	require.Equal(t, "result 0x42", pcp.Result(0x42).String())
}

func TestCreateTaskErrors(t *testing.T) {
	e, _, files := setup(t, ota.Config{})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(600, 1))
	addPackage(t, e, files, ota.Package{ID: "f", Kind: ota.Firmware, Version: "F2"}, content(600, 1))
	ctx := context.Background()
	tests := []struct {
		spec  ota.TaskSpec
		field string
	}{
		{ota.TaskSpec{PackageID: "p"}, "targets"},
		{ota.TaskSpec{PackageID: "p", Devices: []string{""}}, "targets.devices[0]"},
		{ota.TaskSpec{PackageID: "p", Devices: []string{"d", "a\x00b"}}, "targets.devices[1]"},
		{ota.TaskSpec{ID: "t\x00d", PackageID: "p", Devices: []string{"d"}}, "operationId"},
		{ota.TaskSpec{PackageID: "nope", Devices: []string{"d"}}, "fileId"},
		{ota.TaskSpec{PackageID: "p", Devices: []string{"d"}, Policy: ota.Policy{Execute: "later"}}, "policy.executeType"},
		{ota.TaskSpec{PackageID: "p", Devices: []string{"d"}, Policy: ota.Policy{Execute: ota.Window}}, "policy"},
		{ota.TaskSpec{PackageID: "p", Devices: []string{"d"}, Policy: ota.Policy{RetryTimes: 6}}, "policy.retryTimes"},
		{ota.TaskSpec{PackageID: "f", Devices: []string{"d"}, Policy: ota.Policy{RetryTimes: 1, RetryInterval: 1}}, "policy.retryInterval"},
		{ota.TaskSpec{PackageID: "f", Devices: []string{"d"}}, "fileId"}, // no Object5
	}
	for _, tt := range tests {
		_, err := e.CreateTask(ctx, tt.spec)
		var fe *ota.FieldError
		require.True(t, errors.As(err, &fe), "CreateTask(%+v) = %v, want a FieldError", tt.spec, err)
		require.Equal(t, tt.field, fe.Field, "CreateTask(%+v) = %v", tt.spec, err)
	}
	_, err := e.CreateTask(ctx, ota.TaskSpec{PackageID: "nope", Devices: []string{"d"}})
	require.ErrorIs(t, err, ota.ErrNotFound)
}

// TestReasonStrings: the failure reasons are the exact strings of
// OTA-2 and OTA-3 (FAQ §10.3, §10.5); applications match them, so a typo
// in a constant must fail here.
func TestReasonStrings(t *testing.T) {
	for got, want := range map[string]string{
		ota.ReasonSameVersion:        "The current version is the same as the target version",
		ota.ReasonNotOnline:          "Device Abnormal is not online",
		ota.ReasonTaskConflict:       "Task Conflict",
		ota.ReasonNoProtocolService:  "The task failed to start, unable to find protocol service based on device information",
		ota.ReasonOnlineTimeout:      "Waiting for the device online timeout",
		ota.ReasonCellIDTimeout:      "Waiting for report cellId timeout",
		ota.ReasonVersionTimeout:     "Waiting for report device firmware version timeout",
		ota.ReasonResultTimeout:      "Wait for the device to report upgrade result timeout",
		ota.ReasonUpdateCheckTimeout: "Updating timeout and query device version for check timeout",
		ota.ReasonDownloadTimeout:    "Waiting for device downloaded package timeout",
		ota.ReasonIntegrity:          "Integrity check failure for new downloaded package",
		ota.ReasonUnsupported:        "Unsupported package type",
		ota.ReasonNoStorage:          "Not enough storage for the new firmware package",
		ota.ReasonOutOfMemory:        "Out of memory during downloading process",
		ota.ReasonConnectionLost:     "Connection lost during downloading process",
		ota.ReasonInvalidURI:         "Invalid URI",
		ota.ReasonUpdateFailed:       "Firmware update failed",
	} {
		require.Equal(t, want, got)
	}
}

// TestResultReasonEveryCode: every PCP result code other than ok maps to
// its OTA-3 reason (OTA-3, OTA-6), and object 5 Update Result values
// past 8 (LwM2M 1.1 adds 9, unsupported protocol) fail as "Firmware update
// failed", as UpdateResultReason documents.
func TestResultReasonEveryCode(t *testing.T) {
	for r, want := range map[pcp.Result]string{
		pcp.ResultBusy:               ota.ReasonUpdateFailed,
		pcp.ResultWeakSignal:         ota.ReasonConnectionLost,
		pcp.ResultAlreadyLatest:      ota.ReasonSameVersion,
		pcp.ResultLowBattery:         ota.ReasonUpdateFailed,
		pcp.ResultNoStorage:          ota.ReasonNoStorage,
		pcp.ResultDownloadTimeout:    ota.ReasonDownloadTimeout,
		pcp.ResultVerificationFailed: ota.ReasonIntegrity,
		pcp.ResultUnsupportedPackage: ota.ReasonUnsupported,
		pcp.ResultOutOfMemory:        ota.ReasonOutOfMemory,
		pcp.ResultInstallFailed:      ota.ReasonUpdateFailed,
		pcp.ResultInternalError:      ota.ReasonUpdateFailed,
	} {
		require.Equal(t, want, ota.ResultReason(r), "ResultReason(%s)", r)
	}
	for _, r := range []int{9, 10, 255} {
		reason, failed := ota.UpdateResultReason(r)
		require.True(t, failed, "UpdateResultReason(%d)", r)
		require.Equal(t, ota.ReasonUpdateFailed, reason, "UpdateResultReason(%d)", r)
	}
}
