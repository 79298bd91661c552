package ota

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TaskSpec describes a task to create.
type TaskSpec struct {
	ID        string   // "" means generated
	PackageID string   // the package to install
	Devices   []string // target devices; groups are resolved by the caller
	Policy    Policy
}

// CreateTask creates a task with one sub-task per device (OTA-2). A
// device with another unfinished upgrade gets a sub-task failed with
// ReasonTaskConflict. Sub-tasks start at once under the "now" policy.
func (e *Engine) CreateTask(ctx context.Context, spec TaskSpec) (Task, error) {
	if spec.ID == "" {
		spec.ID = newID()
	}
	if len(spec.Devices) == 0 {
		return Task{}, fieldErr("targets", "no device; a task needs at least one")
	}
	// A zero byte separates task and device ids in store keys (task id,
	// 0x00, device id); an id holding one would mix two tasks' sub-tasks.
	if strings.IndexByte(spec.ID, 0) >= 0 {
		return Task{}, fieldErr("operationId", "%q holds a zero byte, which ids may not", spec.ID)
	}
	for i, d := range spec.Devices {
		if d == "" {
			return Task{}, fieldErr(fmt.Sprintf("targets.devices[%d]", i), "empty device id")
		}
		if strings.IndexByte(d, 0) >= 0 {
			return Task{}, fieldErr(fmt.Sprintf("targets.devices[%d]", i), "%q holds a zero byte, which ids may not", d)
		}
	}
	p, err := e.st.Package(ctx, spec.PackageID)
	if err != nil {
		return Task{}, &FieldError{Field: "fileId", Message: err.Error(), Err: err}
	}
	if err := spec.Policy.Validate(p.Kind); err != nil {
		return Task{}, err
	}
	if p.Kind == Firmware && (e.cfg.Object5 == nil || e.cfg.FirmwareURI == "") {
		return Task{}, fieldErr("fileId", "package %s is firmware but the engine has no Object5 or FirmwareURI", p.ID)
	}
	c, err := e.content(ctx, p.ID)
	if err != nil {
		return Task{}, err
	}
	if spec.Policy.Execute == "" {
		spec.Policy.Execute = Now
	}
	now := time.Now()
	devs := slices.Clone(spec.Devices)
	slices.Sort(devs)
	devs = slices.Compact(devs)
	t := Task{ID: spec.ID, Kind: p.Kind, PackageID: p.ID, Devices: devs, Policy: spec.Policy, State: TaskProcessing, Created: now, Updated: now}
	readyAt := t.Policy.StartAt(now)
	if readyAt.After(now) {
		t.State = TaskWait
	}
	tr := &taskRun{Task: t, counts: map[SubState]int{}}
	subs := make([]SubTask, len(devs))
	var sessions []*session
	// createMu orders task creation and retries, so that the conflict
	// check and the sessions it leads to are one step; e.mu is held only
	// for map reads and updates, never across the store write.
	if err := e.ready(ctx); err != nil {
		return Task{}, err
	}
	e.createMu.Lock()
	defer e.createMu.Unlock()
	e.mu.RLock()
	closed := e.life.Closed()
	_, used := e.tasks[t.ID]
	for i, d := range devs {
		s := SubTask{TaskID: t.ID, DeviceID: d, Kind: p.Kind, State: SubWait, Step: StepOnline, TargetVersion: p.Version, Updated: now}
		if p.Kind == Firmware {
			s.Size = p.Size
		}
		if _, busy := e.devices[d]; busy {
			s.State, s.Step, s.Reason = SubFail, "", ReasonTaskConflict
			tr.counts[SubFail]++
		} else {
			s.Deadline = t.Policy.OnlineDeadline(readyAt, e.cfg.OnlineTimeout)
			tr.counts[SubWait]++
			sessions = append(sessions, &session{sub: s, policy: t.Policy, content: c, readyAt: readyAt, pending: readyAt.After(now),
				stored: s.Deadline, touched: true})
		}
		subs[i] = s
	}
	e.mu.RUnlock()
	if closed {
		return Task{}, ErrClosed
	}
	if _, err := e.st.Task(ctx, t.ID); used || err == nil {
		return Task{}, fieldErr("operationId", "%q is already used", t.ID)
	}
	if err := e.st.PutTask(ctx, t, subs); err != nil {
		return Task{}, err
	}
	e.mu.Lock()
	e.tasks[t.ID] = tr
	for _, s := range sessions {
		e.devices[s.sub.DeviceID] = s
	}
	e.settle(ctx, tr, now) // every device in conflict
	t = tr.Task
	e.mu.Unlock()
	var results []ResultEvent
	for _, s := range subs {
		if s.State == SubFail {
			results = append(results, ResultEvent{Kind: s.Kind, TaskID: s.TaskID, DeviceID: s.DeviceID, SubTaskID: s.ID(),
				TargetVersion: s.TargetVersion, Result: ResultFail, Reason: s.Reason, Time: now})
		}
	}
	e.apply(ctx, &effects{results: results})
	if !readyAt.After(now) {
		e.kick(ctx, sessions)
	}
	e.poke()
	return t, nil
}

// Task returns a task.
func (e *Engine) Task(ctx context.Context, id string) (Task, error) {
	if err := e.ready(ctx); err != nil {
		return Task{}, err
	}
	e.mu.Lock()
	if t := e.tasks[id]; t != nil {
		defer e.mu.Unlock()
		return cloneTask(t.Task), nil
	}
	e.mu.Unlock()
	return e.st.Task(ctx, id)
}

// Tasks returns every task.
func (e *Engine) Tasks(ctx context.Context) ([]Task, error) { return e.st.Tasks(ctx) }

// SubTasks returns the sub-tasks of a task, with live progress (Blocks) for
// those in progress.
func (e *Engine) SubTasks(ctx context.Context, taskID string) ([]SubTask, error) {
	if err := e.ready(ctx); err != nil {
		return nil, err
	}
	subs, err := e.st.SubTasks(ctx, taskID)
	if err != nil {
		return nil, err
	}
	for i := range subs {
		e.mu.Lock()
		s := e.devices[subs[i].DeviceID]
		e.mu.Unlock()
		if s == nil {
			continue
		}
		s.mu.Lock()
		if s.sub.TaskID == taskID && !s.ended {
			subs[i] = s.sub
			subs[i].Blocks = max(s.sub.Blocks, s.distinct)
		}
		s.mu.Unlock()
	}
	return subs, nil
}

// Upgrading reports whether the device has an upgrade in progress; its
// other commands should wait (OTA-5, FAQ §10.9). Before Run it may
// load the unfinished tasks; if that fails, it logs and reports false.
func (e *Engine) Upgrading(deviceID string) bool {
	if !e.readyOrLog(context.Background()) {
		return false
	}
	e.mu.Lock()
	s := e.devices[deviceID]
	e.mu.Unlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended && s.sub.State == SubProcessing
}

// Stop stops a task: its waiting and processing sub-tasks end in stop.
func (e *Engine) Stop(ctx context.Context, taskID string) (Task, error) {
	if err := e.ready(ctx); err != nil {
		return Task{}, err
	}
	e.createMu.Lock()
	defer e.createMu.Unlock()
	e.mu.Lock()
	t := e.tasks[taskID]
	if t == nil {
		e.mu.Unlock()
		if _, err := e.st.Task(ctx, taskID); err != nil {
			return Task{}, err
		}
		return Task{}, fmt.Errorf("%w: task %s", ErrTaskFinished, taskID)
	}
	var sessions []*session
	for _, s := range e.devices {
		if s.sub.TaskID == taskID {
			sessions = append(sessions, s)
		}
	}
	if t.State.Final() { // failed, waiting for an automatic retry
		t.RetryAt = time.Time{}
		t.State = TaskStop
		t.Updated = time.Now()
		delete(e.tasks, taskID)
		err := e.st.PutTask(ctx, t.Task, nil)
		e.mu.Unlock()
		return t.Task, err
	}
	t.stopping = true // no automatic retry after a stop
	e.mu.Unlock()
	for _, s := range sessions {
		var eff effects
		s.mu.Lock()
		if !s.ended {
			e.finish(ctx, s, SubStop, ReasonStopped, &eff)
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.State == TaskFailed || t.State == TaskSuccess {
		// Sub-tasks that ended earlier decide success or failure;
		// a stop request makes the task stopped.
		t.State = TaskStop
		if err := e.st.PutTask(ctx, t.Task, nil); err != nil {
			return Task{}, err
		}
	}
	return cloneTask(t.Task), nil
}

// Retry retries the failed sub-tasks of a failed task; devices that
// succeeded are not touched (OTA-4).
func (e *Engine) Retry(ctx context.Context, taskID string) (Task, error) {
	if err := e.retry(ctx, taskID, true); err != nil {
		return Task{}, err
	}
	return e.Task(ctx, taskID)
}

func (e *Engine) retry(ctx context.Context, taskID string, manual bool) error {
	e.createMu.Lock()
	defer e.createMu.Unlock()
	t, err := e.Task(ctx, taskID)
	if err != nil {
		return err
	}
	if t.State != TaskFailed {
		return fmt.Errorf("%w: task %s is %s, only a failed task is retried", ErrNothingToRetry, taskID, t.State)
	}
	subs, err := e.st.SubTasks(ctx, taskID)
	if err != nil {
		return err
	}
	c, err := e.content(ctx, t.PackageID)
	if err != nil {
		return err
	}
	now := time.Now()
	readyAt := t.Policy.StartAt(now)
	var changed []SubTask
	var sessions, conflicts []*session
	e.mu.RLock()
	for _, s := range subs {
		if s.State != SubFail || (!manual && permanent(s.Reason)) {
			continue
		}
		s.State, s.Step, s.Reason, s.Attempt, s.Updated = SubWait, StepOnline, "", s.Attempt+1, now
		s.Deadline = t.Policy.OnlineDeadline(readyAt, e.cfg.OnlineTimeout)
		if t.Policy.Execute == Window && !now.Before(t.Policy.End) {
			s.Deadline = now // the window is over: fails at once
		}
		ss := &session{sub: s, policy: t.Policy, content: c, readyAt: readyAt, pending: readyAt.After(now),
			stored: s.Deadline, touched: true}
		if _, busy := e.devices[s.DeviceID]; busy {
			conflicts = append(conflicts, ss)
		} else {
			sessions = append(sessions, ss)
		}
		changed = append(changed, s)
	}
	e.mu.RUnlock()

	next := t
	next.RetryAt = time.Time{}
	if len(changed) > 0 {
		next.Attempt++
		next.State = TaskProcessing
		next.Updated = now
	}
	if err := e.st.PutTask(ctx, next, changed); err != nil {
		return err
	}
	e.mu.Lock()
	tr := e.tasks[taskID]
	if tr == nil {
		tr = &taskRun{counts: map[SubState]int{}}
		for _, s := range subs {
			tr.counts[countKey(s.State)]++
		}
	}
	tr.Task = next
	if len(changed) == 0 {
		delete(e.tasks, taskID)
		e.mu.Unlock()
		return fmt.Errorf("%w: task %s has no failed sub-task to retry", ErrNothingToRetry, taskID)
	}
	tr.retryable = 0
	tr.counts[SubFail] -= len(changed)
	tr.counts[SubWait] += len(changed)
	e.tasks[taskID] = tr
	for _, s := range sessions {
		e.devices[s.sub.DeviceID] = s
	}
	e.mu.Unlock()
	for _, s := range conflicts {
		var eff effects
		s.mu.Lock()
		e.finish(ctx, s, SubFail, ReasonTaskConflict, &eff)
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
	if !readyAt.After(now) {
		e.kick(ctx, sessions)
	}
	e.poke()
	return nil
}

// Progress returns the progress of a task over its sub-tasks, with live
// download progress.
func (e *Engine) Progress(ctx context.Context, taskID string) (TaskProgress, error) {
	t, err := e.Task(ctx, taskID)
	if err != nil {
		return TaskProgress{}, err
	}
	subs, err := e.SubTasks(ctx, taskID)
	if err != nil {
		return TaskProgress{}, err
	}
	blocks := 0
	if t.Kind == Software {
		if p, err := e.st.Package(ctx, t.PackageID); err == nil {
			blocks = p.Blocks()
		}
	}
	tp := TaskProgress{Total: len(subs), States: map[SubState]int{}}
	ended, dl := 0, 0
	for _, s := range subs {
		tp.States[s.State]++
		if s.State.Final() {
			ended++
		}
		dl += s.Progress(blocks)
	}
	if len(subs) > 0 {
		tp.Percent = ended * 100 / len(subs)
		if blocks > 0 || t.Kind == Firmware {
			tp.Download = dl / len(subs)
		}
	}
	return tp, nil
}
