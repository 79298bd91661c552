package ota

import (
	"fmt"
	"time"
)

// TaskState is the state of an upgrade task (OTA-2).
type TaskState string

// Task states.
const (
	TaskWait       TaskState = "wait"
	TaskProcessing TaskState = "processing"
	TaskSuccess    TaskState = "success"
	TaskFailed     TaskState = "failed"
	TaskStop       TaskState = "stop"
)

// Final reports whether the task has ended (a failed task may still be
// retried).
func (s TaskState) Final() bool { return s == TaskSuccess || s == TaskFailed || s == TaskStop }

// SubState is the state of a sub-task (OTA-2).
type SubState string

// Sub-task states.
const (
	SubWait       SubState = "wait"
	SubProcessing SubState = "processing"
	SubFail       SubState = "fail"
	SubSuccess    SubState = "success"
	SubStop       SubState = "stop"
)

// Final reports whether the sub-task has ended.
func (s SubState) Final() bool { return s == SubFail || s == SubSuccess || s == SubStop }

// Step is where a processing sub-task stands. Each step has a server-side
// deadline (Config) and a failure reason when it passes.
type Step string

// Steps of a sub-task.
const (
	StepOnline   Step = "online"   // waiting for the device to come online (or the window)
	StepQuery    Step = "query"    // version asked (PCP 19 or /3/0/3)
	StepQueued   Step = "queued"   // version checked, waiting for a download slot (no deadline)
	StepNotify   Step = "notify"   // PCP 20 sent, or /5/0/1 written
	StepDownload Step = "download" // device is downloading
	StepExecute  Step = "execute"  // PCP 23 sent or /5/0/2 executed, waiting for its answer
	StepResult   Step = "result"   // waiting for PCP 24 or /5/0/5
	StepCheck    Step = "check"    // firmware: reading the version after the update
)

// reason returns the failure reason when the step's deadline passes.
func (s Step) reason() string {
	switch s {
	case StepOnline:
		return ReasonOnlineTimeout
	case StepQuery:
		return ReasonVersionTimeout
	case StepNotify, StepDownload:
		return ReasonDownloadTimeout
	case StepCheck:
		return ReasonUpdateCheckTimeout
	default:
		return ReasonResultTimeout
	}
}

// ExecuteType says when sub-tasks start (docs/api.md policy.executeType).
type ExecuteType string

// Execute types.
const (
	// Now starts every sub-task at once; a device that is not online
	// fails with ReasonNotOnline.
	Now ExecuteType = "now"
	// DeviceOnline starts a sub-task when its device next comes online.
	DeviceOnline ExecuteType = "device_online"
	// Window starts sub-tasks when their device is online between Start
	// and End ("custom" in the API).
	Window ExecuteType = "custom"
)

// Policy says when a task runs and how it is retried (OTA-2, OTA-4).
type Policy struct {
	Execute ExecuteType // "" means Now
	Start   time.Time   // Window only: first moment a sub-task may start
	End     time.Time   // Window only: sub-tasks not started by then fail
	// RetryTimes is how many times failed sub-tasks are retried
	// automatically, 0..5. 0 means no automatic retry.
	RetryTimes int
	// RetryInterval is the wait before the first automatic retry of a
	// software task; it doubles on each further retry. Firmware tasks
	// take no interval (FAQ §10.10) and use Config.RetryInterval. 0 means
	// Config.RetryInterval.
	RetryInterval time.Duration
}

// Validate checks the policy for a task of kind k.
func (p Policy) Validate(k Kind) error {
	switch p.Execute {
	case "", Now, DeviceOnline:
	case Window:
		if p.Start.IsZero() || p.End.IsZero() || !p.End.After(p.Start) {
			return fieldErr("policy", "window from %s to %s: startTime and endTime are required and endTime must be after startTime",
				p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339))
		}
	default:
		return fieldErr("policy.executeType", "%q, allowed now, device_online, custom", p.Execute)
	}
	if p.RetryTimes < 0 || p.RetryTimes > 5 {
		return fieldErr("policy.retryTimes", "%d, allowed 0..5", p.RetryTimes)
	}
	if p.RetryInterval < 0 {
		return fieldErr("policy.retryInterval", "%s, must not be negative", p.RetryInterval)
	}
	if k == Firmware && p.RetryInterval != 0 {
		return fieldErr("policy.retryInterval", "firmware upgrades take a retry count only (FAQ §10.10)")
	}
	return nil
}

// StartAt returns when sub-tasks of a task created at created may start.
func (p Policy) StartAt(created time.Time) time.Time {
	if p.Execute == Window && p.Start.After(created) {
		return p.Start
	}
	return created
}

// OnlineDeadline returns when a sub-task that became ready at ready and
// waits for its device fails with ReasonOnlineTimeout: the window's end,
// or ready+wait for the other policies.
func (p Policy) OnlineDeadline(ready time.Time, wait time.Duration) time.Time {
	if p.Execute == Window {
		return p.End
	}
	return ready.Add(wait)
}

// RetryAt returns when automatic retry number attempt (from 1) of a task
// that ended at ended runs: base doubled per earlier attempt, at most 24h
// apart. base is RetryInterval, or def when that is 0.
func (p Policy) RetryAt(ended time.Time, attempt int, def time.Duration) time.Time {
	base := p.RetryInterval
	if base == 0 {
		base = def
	}
	d := base
	for i := 1; i < attempt && d < 24*time.Hour; i++ {
		d *= 2
	}
	return ended.Add(min(d, 24*time.Hour))
}

// Task is an upgrade task (operation): one package to many devices, one
// sub-task per device.
type Task struct {
	ID        string
	Kind      Kind
	PackageID string
	Devices   []string
	Policy    Policy
	State     TaskState
	Created   time.Time
	Updated   time.Time
	// Attempt counts retries made so far (automatic and manual).
	Attempt int
	// RetryAt is when the next automatic retry runs; zero when none.
	RetryAt time.Time
}

// SubTask is the upgrade of one device within a task.
type SubTask struct {
	TaskID   string
	DeviceID string
	Kind     Kind
	State    SubState
	Step     Step   // meaningful while processing or waiting
	Reason   string // failure reason (OTA-3) when State is fail or stop
	// SourceVersion is the device's version before the upgrade, once
	// known; TargetVersion the package's; CurrentVersion the last one
	// the device reported.
	SourceVersion  string
	TargetVersion  string
	CurrentVersion string
	Deadline       time.Time // server-side deadline of the current step
	Blocks         int       // distinct blocks served (PCP), as last saved
	// Downloaded is, for firmware, the end of the highest block the
	// device was served (bytes), as last saved; Size is the package's.
	Downloaded int64
	Size       int64
	Attempt    int // 0 first run, n after the n-th retry
	Started    time.Time
	Updated    time.Time
}

// ID returns the sub-task's id (subOperationId): task id, "/", device id.
func (s SubTask) ID() string { return s.TaskID + "/" + s.DeviceID }

// String returns the sub-task's id, state and step, for logs.
func (s SubTask) String() string {
	return fmt.Sprintf("sub-task %s %s step %s", s.ID(), s.State, s.Step)
}

// TaskProgress sums up a task's sub-tasks (OTA-8: progress per task).
type TaskProgress struct {
	Total  int              // sub-tasks
	States map[SubState]int // sub-tasks per state
	// Percent is the share of sub-tasks that ended, 0..100.
	Percent int
	// Download is the share of the package served over every
	// sub-task, 0..100: distinct blocks (software) or the highest block
	// (firmware).
	Download int
}

// Progress returns the progress of one sub-task's download in percent,
// given the package's block count (software). A firmware sub-task's is the
// highest block served over the package size (blocks is not used).
func (s SubTask) Progress(blocks int) int {
	if s.State == SubSuccess {
		return 100
	}
	if s.Kind == Firmware {
		if s.Size <= 0 {
			return 0
		}
		return int(min(100, s.Downloaded*100/s.Size))
	}
	if blocks <= 0 {
		return 0
	}
	return min(100, s.Blocks*100/blocks)
}
