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

// object5 is a fake LwM2M device side of object 5.
type object5 struct {
	mu       sync.Mutex
	version  map[string]string
	uris     map[string]string
	observed map[string]int
	executed map[string]int
	status   map[string]ota.FirmwareStatus // what observing /5/0/3, /5/0/5 answers
	readErr  error
}

func (o *object5) init() {
	if o.version == nil {
		o.version, o.uris, o.observed, o.executed = map[string]string{}, map[string]string{}, map[string]int{}, map[string]int{}
		o.status = map[string]ota.FirmwareStatus{}
	}
}

func (o *object5) ReadFirmwareVersion(_ context.Context, id string) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	if o.readErr != nil {
		return "", o.readErr
	}
	return o.version[id], nil
}

func (o *object5) ObserveFirmware(_ context.Context, id string) (ota.FirmwareStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	o.observed[id]++
	return o.status[id], nil
}

func (o *object5) WritePackageURI(_ context.Context, id, uri string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	o.uris[id] = uri
	return nil
}

func (o *object5) ExecuteUpdate(_ context.Context, id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	o.executed[id]++
	return nil
}

func (o *object5) set(f func(o *object5)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	f(o)
}

// TestFirmwareUpgrade runs the object 5 flow: read version, observe, write
// Package URI, device pulls Block2, State 1→2, execute, Update Result 1,
// version check (OTA-5, OTA-7).
func TestFirmwareUpgrade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		o := &object5{}
		o.set(func(o *object5) { o.version["nb1"] = "F1" })
		lis := &listener{}
		e, _, files := setup(t, ota.Config{Object5: o, FirmwareURI: "coaps://dm.example:5684/fw/", Listener: lis})
		body := content(3000, 9)
		p := addPackage(t, e, files, ota.Package{ID: "fw2", Kind: ota.Firmware, Version: "F2"}, body)
		run(t, e)
		_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "fw2", Devices: []string{"nb1"}})
		require.NoError(t, err)
		synctest.Wait()
		s := subTask(t, e, "t", "nb1")
		require.Equal(t, ota.StepDownload, s.Step)
		require.Equal(t, "F1", s.SourceVersion)
		o.mu.Lock()
		require.Equal(t, "coaps://dm.example:5684/fw/fw2", o.uris["nb1"])
		require.Equal(t, 1, o.observed["nb1"])
		o.mu.Unlock()

		// The device pulls the package with Block2, 1024-byte blocks.
		e.FirmwareState(ctx, "nb1", ota.FwStateDownloading)
		var got []byte
		for num := uint32(0); ; num++ {
			data, more, etag, size2, err := e.Block2(ctx, "fw2", num, 6)
			require.NoError(t, err)
			require.Equal(t, p.Digest[:], etag)
			require.Equal(t, int64(3000), size2)
			got = append(got, data...)
			if !more {
				break
			}
		}
		require.Equal(t, body, got)
		e.FirmwareState(ctx, "nb1", ota.FwStateDownloaded)
		synctest.Wait()
		o.mu.Lock()
		require.Equal(t, 1, o.executed["nb1"])
		o.version["nb1"] = "F2"
		o.mu.Unlock()
		e.FirmwareState(ctx, "nb1", ota.FwStateUpdating)
		e.FirmwareResult(ctx, "nb1", 1)
		synctest.Wait()
		s = subTask(t, e, "t", "nb1")
		require.Equal(t, ota.SubSuccess, s.State, "%+v", s)
		require.Equal(t, "F2", s.CurrentVersion)
		require.Equal(t, []string{ota.StateDownloading, ota.StateDownloaded, ota.StateUpdating}, lis.stateNames("nb1"))
		require.Equal(t, "fwUpgradeStateChangeNotify", lis.states[0].NotifyType())
		require.Equal(t, "1", lis.states[0].Step())
		require.Equal(t, "fwUpgradeResultNotify", lis.results[0].NotifyType())
		require.Equal(t, []string{"firmwarePackage nb1 F1", "firmwarePackage nb1 F2"}, lis.versions)
	})
}

// firmwareTask runs, inside a synctest bubble, an engine whose Object5
// device "nb" runs F1, with task "t" upgrading it to F2 started and
// settled. cfg gives the other settings.
func firmwareTask(t *testing.T, cfg ota.Config) (*ota.Engine, *object5) {
	o := &object5{}
	o.set(func(o *object5) { o.version["nb"] = "F1" })
	cfg.Object5, cfg.FirmwareURI = o, "coap://h/fw/"
	e, _, files := setup(t, cfg)
	addPackage(t, e, files, ota.Package{ID: "fw", Kind: ota.Firmware, Version: "F2"}, content(100, 1))
	run(t, e)
	_, err := e.CreateTask(context.Background(), ota.TaskSpec{ID: "t", PackageID: "fw", Devices: []string{"nb"}})
	require.NoError(t, err)
	synctest.Wait()
	return e, o
}

// TestFirmwareUpdateResults: Update Result 2..8 fail the sub-task with the
// OTA-3 reason.
func TestFirmwareUpdateResults(t *testing.T) {
	for r := 2; r <= 8; r++ {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			e, _ := firmwareTask(t, ota.Config{})
			e.FirmwareResult(ctx, "nb", r)
			s := subTask(t, e, "t", "nb")
			want, _ := ota.UpdateResultReason(r)
			require.Equal(t, ota.SubFail, s.State)
			require.Equal(t, want, s.Reason, "Update Result %d", r)
		})
	}
}

// TestFirmwareCheckTimeout: after Update Result 1 the version cannot be
// read: "Updating timeout and query device version for check timeout".
func TestFirmwareCheckTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, o := firmwareTask(t, ota.Config{VersionTimeout: 15 * time.Minute})
		e.FirmwareState(ctx, "nb", ota.FwStateDownloaded)
		synctest.Wait()
		o.set(func(o *object5) { o.readErr = errors.New("device asleep") })
		e.FirmwareResult(ctx, "nb", 1)
		synctest.Wait()
		require.Equal(t, ota.StepCheck, subTask(t, e, "t", "nb").Step)
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		s := subTask(t, e, "t", "nb")
		require.Equal(t, ota.SubFail, s.State)
		require.Equal(t, ota.ReasonUpdateCheckTimeout, s.Reason)
	})
}

func TestBlock2(t *testing.T) {
	body := content(1000, 3)
	p := ota.Package{ID: "x", Kind: ota.Firmware, Version: "F", Size: 1000}
	var err error
	p.Digest, p.CheckCode, err = ota.Summarize(bytesReader(body), 1000)
	require.NoError(t, err)
	c := &ota.Content{Package: p, R: bytesReader(body)}
	tests := []struct {
		num  uint32
		szx  int
		want []byte
		more bool
	}{
		{0, 0, body[:16], true},
		{1, 4, body[256:512], true},
		{3, 4, body[768:], false},
		{0, 6, body, false},
		{62, 0, body[992:], false},
	}
	for _, tt := range tests {
		data, more, etag, size2, err := c.Block2(tt.num, tt.szx)
		require.NoError(t, err, "Block2(%d, %d)", tt.num, tt.szx)
		require.Equal(t, tt.want, data, "Block2(%d, %d)", tt.num, tt.szx)
		require.Equal(t, tt.more, more, "Block2(%d, %d) more", tt.num, tt.szx)
		require.Equal(t, p.Digest[:], etag)
		require.Equal(t, int64(1000), size2)
	}
	_, _, _, _, err = c.Block2(4, 4)
	require.ErrorIs(t, err, ota.ErrNoBlock)

	// A package that ends on a block boundary: its last block says no more
	// (RFC 7959 §2.2), and the block after it does not exist.
	even := content(1024, 4)
	pe := ota.Package{ID: "e", Kind: ota.Firmware, Version: "F", Size: 1024}
	ce := &ota.Content{Package: pe, R: bytesReader(even)}
	data, more, _, _, err := ce.Block2(3, 4)
	require.NoError(t, err)
	require.Equal(t, even[768:], data)
	require.False(t, more, "Block2(3, 4) of 1024 bytes is the last block")
	_, _, _, _, err = ce.Block2(4, 4)
	require.ErrorIs(t, err, ota.ErrNoBlock)
	_, _, _, _, err = c.Block2(0, 7)
	require.ErrorIs(t, err, ota.ErrInvalid)
}

// failingWrite fails WritePackageURI until told otherwise.
type failingWrite struct {
	object5
	fail bool
}

func (f *failingWrite) WritePackageURI(ctx context.Context, id, uri string) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errors.New("no answer")
	}
	return f.object5.WritePackageURI(ctx, id, uri)
}

// TestFirmwareCallRetriedOnWake: an object 5 call that fails is made again
// when the device is next online.
func TestFirmwareCallRetriedOnWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		o := &failingWrite{fail: true}
		o.set(func(o *object5) { o.version["nb"] = "F1" })
		e, _, files := setup(t, ota.Config{Object5: o, FirmwareURI: "coap://h/fw/"})
		addPackage(t, e, files, ota.Package{ID: "fw", Kind: ota.Firmware, Version: "F2"}, content(100, 1))
		run(t, e)
		_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "fw", Devices: []string{"nb"}})
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, ota.StepNotify, subTask(t, e, "t", "nb").Step)
		o.mu.Lock()
		o.fail = false
		o.mu.Unlock()
		e.DeviceOnline(ctx, "nb")
		synctest.Wait()
		require.Equal(t, ota.StepDownload, subTask(t, e, "t", "nb").Step)
		o.mu.Lock()
		require.Equal(t, "coap://h/fw/fw", o.uris["nb"])
		o.mu.Unlock()
	})
}

// TestFirmwareCheckWrongVersion: Update Result 1 but the device still runs
// the old version when read again: "Firmware update failed" (OTA-3, OTA-5).
func TestFirmwareCheckWrongVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, _ := firmwareTask(t, ota.Config{})
		e.FirmwareState(ctx, "nb", ota.FwStateDownloaded)
		synctest.Wait()
		e.FirmwareResult(ctx, "nb", 1) // the version read next is still F1
		synctest.Wait()
		s := subTask(t, e, "t", "nb")
		require.Equal(t, ota.SubFail, s.State, "%+v", s)
		require.Equal(t, ota.ReasonUpdateFailed, s.Reason)
		require.Equal(t, "F1", s.CurrentVersion)
	})
}
