package ota

import (
	"context"
	"time"
)

// Channel carries PCP frames to a device through the data channel (for
// LwM2M devices, /19/1/0 or /t/d). SendFrame returns once the frame is
// handed to the transport; an error means the device did not get it.
type Channel interface {
	SendFrame(ctx context.Context, deviceID string, frame []byte) error
}

// Object5 performs LwM2M Firmware Update (object 5) operations on a device.
// The lwm2m server adapts to it; this package never imports lwm2m. Each
// call returns when the device answered or ctx ends. Later values of
// State (/5/0/3) and Update Result (/5/0/5), notified or sent, come back
// through Engine.FirmwareState, Engine.FirmwareResult or
// Engine.FirmwareReport.
type Object5 interface {
	// ReadFirmwareVersion reads the firmware version the device runs:
	// the Device object's /3/0/3 (not /5/0/7, which names the package
	// last downloaded).
	ReadFirmwareVersion(ctx context.Context, deviceID string) (string, error)
	// ObserveFirmware observes /5/0/3 and /5/0/5 and returns the values
	// their Observe answers carry (FwUnknown for one it could not read).
	ObserveFirmware(ctx context.Context, deviceID string) (FirmwareStatus, error)
	// WritePackageURI writes /5/0/1.
	WritePackageURI(ctx context.Context, deviceID, uri string) error
	// ExecuteUpdate executes /5/0/2.
	ExecuteUpdate(ctx context.Context, deviceID string) error
}

// Device is what the engine needs to know about a device.
type Device struct {
	Online       bool
	DeviceType   string
	Manufacturer string // manufacturer name
	Model        string
	Protocol     string
}

// Devices looks devices up (the platform adapts the registry to it).
type Devices interface {
	// Device returns the device, or false when it does not exist.
	Device(ctx context.Context, deviceID string) (Device, bool)
}

// Listener hears upgrade state changes and results; the platform turns
// them into swUpgrade…/fwUpgrade… notifications. Calls come from the
// goroutine that made the change (a caller of HandleFrame, DeviceOnline,
// CreateTask…, or Run), never while the engine holds a lock, and must not
// block long: a slow listener slows that device's upgrade.
type Listener interface {
	UpgradeStateChanged(e StateEvent)
	UpgradeResult(e ResultEvent)
}

// VersionListener is an optional ability of a Listener: it hears every
// version a device reports (PCP 19 answers and 24 reports, object 5 reads),
// with or without a task, so the platform can keep the device's version
// without asking on every report (OTA-5, FAQ §10.8).
type VersionListener interface {
	VersionReported(kind Kind, deviceID, version string)
}

// Device-side upgrade states reported in StateEvent.State.
const (
	StateIdle        = "idle"
	StateDownloading = "downloading"
	StateDownloaded  = "downloaded"
	StateUpdating    = "updating"
)

// StateEvent says a device's upgrade moved to State (swUpgradeState, or
// fwUpgrade step/stepDesc).
type StateEvent struct {
	Kind      Kind
	TaskID    string // operationId
	DeviceID  string
	SubTaskID string // subOperationId
	State     string // StateIdle, StateDownloading, StateDownloaded, StateUpdating
	Time      time.Time
}

// NotifyType returns "swUpgradeStateChangeNotify" or
// "fwUpgradeStateChangeNotify".
func (e StateEvent) NotifyType() string {
	if e.Kind == Firmware {
		return "fwUpgradeStateChangeNotify"
	}
	return "swUpgradeStateChangeNotify"
}

// Step returns the fwUpgradeStateChangeNotify step: "0" idle, "1"
// downloading, "2" downloaded, "3" updating (object 5 State values).
func (e StateEvent) Step() string {
	switch e.State {
	case StateDownloading:
		return "1"
	case StateDownloaded:
		return "2"
	case StateUpdating:
		return "3"
	}
	return "0"
}

// Results in ResultEvent.Result.
const (
	ResultSuccess = "SUCCESS"
	ResultFail    = "FAIL"
)

// ResultEvent says a sub-task ended.
type ResultEvent struct {
	Kind          Kind
	TaskID        string
	DeviceID      string
	SubTaskID     string
	SourceVersion string
	TargetVersion string
	CurVersion    string
	Result        string // ResultSuccess or ResultFail
	Reason        string // resultDesc: the OTA-3 reason when failed
	Time          time.Time
}

// NotifyType returns "swUpgradeResultNotify" or "fwUpgradeResultNotify".
func (e ResultEvent) NotifyType() string {
	if e.Kind == Firmware {
		return "fwUpgradeResultNotify"
	}
	return "swUpgradeResultNotify"
}
