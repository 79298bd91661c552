package ota

import (
	"context"
	"time"

	"github.com/doze-io/doze/ota/pcp"
)

// start begins a waiting sub-task whose device is online. s.mu is held.
func (e *Engine) start(ctx context.Context, s *session, eff *effects) {
	eff.deviceID = s.sub.DeviceID
	p := &s.content.Package
	if e.cfg.Devices != nil {
		d, ok := e.cfg.Devices.Device(ctx, s.sub.DeviceID)
		if !ok || !matches(p, d) {
			e.finish(ctx, s, SubFail, ReasonNoProtocolService, eff)
			return
		}
	}
	if p.Kind == Firmware && (e.cfg.Object5 == nil || e.cfg.FirmwareURI == "") {
		e.finish(ctx, s, SubFail, ReasonNoProtocolService, eff)
		return
	}
	now := time.Now()
	s.sub.State = SubProcessing
	s.sub.Started = now
	e.setStep(s, StepQuery, now)
	e.save(ctx, s)
	e.act(s, eff)
}

func matches(p *Package, d Device) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(p.DeviceType, d.DeviceType) && eq(p.Manufacturer, d.Manufacturer) && eq(p.Model, d.Model) && eq(p.Protocol, d.Protocol)
}

// setStep moves s to step with the step's server-side deadline.
func (e *Engine) setStep(s *session, step Step, now time.Time) {
	s.sub.Step = step
	if s.slot && step != StepNotify && step != StepDownload {
		e.releaseSlot(s)
	}
	switch step {
	case StepQuery, StepCheck:
		s.sub.Deadline = now.Add(e.cfg.VersionTimeout)
	case StepNotify, StepDownload:
		s.sub.Deadline = now.Add(e.cfg.DownloadTimeout)
	case StepExecute, StepResult:
		s.sub.Deadline = now.Add(e.cfg.ResultTimeout)
	}
	e.due(s.sub.Deadline)
}

// act (re)sends what the current step waits an answer for. Called when a
// step begins and whenever the device is awake again (a frame may have
// been lost while it slept).
func (e *Engine) act(s *session, eff *effects) {
	eff.deviceID = s.sub.DeviceID
	if s.sub.Kind == Firmware {
		switch s.sub.Step {
		case StepQuery, StepNotify, StepExecute, StepCheck:
			eff.fwJob = true
		}
		if s.resync {
			eff.fwJob = true
		}
		return
	}
	p := &s.content.Package
	switch s.sub.Step {
	case StepQuery:
		eff.send(pcp.Encode(pcp.QueryVersion{}))
	case StepNotify:
		eff.send(pcp.Encode(pcp.Notify{Version: p.Version, BlockSize: uint16(p.blockSize()),
			BlockCount: uint16(p.Blocks()), CheckCode: p.CheckCode}))
	case StepExecute:
		eff.send(pcp.Encode(pcp.Execute{}))
	}
}

// finish ends s. s.mu is held.
func (e *Engine) finish(ctx context.Context, s *session, state SubState, reason string, eff *effects) {
	now := time.Now()
	s.sub.State = state
	s.sub.Reason = reason
	s.sub.Deadline = time.Time{}
	if s.slot {
		e.releaseSlot(s)
	}
	e.save(ctx, s)
	s.ended = true
	eff.deviceID = s.sub.DeviceID
	if state != SubStop {
		r := ResultEvent{Kind: s.sub.Kind, TaskID: s.sub.TaskID, DeviceID: s.sub.DeviceID, SubTaskID: s.sub.ID(),
			SourceVersion: s.sub.SourceVersion, TargetVersion: s.sub.TargetVersion, CurVersion: s.sub.CurrentVersion,
			Result: ResultSuccess, Reason: reason, Time: now}
		if state == SubFail {
			r.Result = ResultFail
		}
		eff.results = append(eff.results, r)
	}
	e.subEnded(ctx, s, now)
}

// subEnded updates the task of a sub-task that just ended.
func (e *Engine) subEnded(ctx context.Context, s *session, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.countEnd(s); t != nil {
		e.settle(ctx, t, now)
	}
}

// subEndedElsewhere updates the task of a sub-task another node ended
// (Config.Node). When no sub-task is active here any more, the task as
// stored is followed if another node settled it already; else this
// engine settles it.
func (e *Engine) subEndedElsewhere(ctx context.Context, s *session, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.countEnd(s)
	if t == nil || t.counts[SubWait] > 0 || t.State.Final() {
		return
	}
	if st, err := e.st.Task(ctx, t.ID); err == nil && st.State.Final() {
		t.Task = st
		if st.RetryAt.IsZero() {
			delete(e.tasks, t.ID)
		} else {
			e.poke()
		}
		return
	}
	e.settle(ctx, t, now)
}

// countEnd counts the end of s in its task, which it returns (nil when
// the task is not here). e.mu is held.
func (e *Engine) countEnd(s *session) *taskRun {
	if e.devices[s.sub.DeviceID] == s {
		delete(e.devices, s.sub.DeviceID)
	}
	t := e.tasks[s.sub.TaskID]
	if t == nil {
		return nil
	}
	t.counts[SubWait]-- // counts keep wait and processing together under SubWait
	t.counts[s.sub.State]++
	if s.sub.State == SubFail && !permanent(s.sub.Reason) {
		t.retryable++
	}
	return t
}

// settle sets the state of t once no sub-task is active. e.mu is held.
func (e *Engine) settle(ctx context.Context, t *taskRun, now time.Time) {
	if t.counts[SubWait] > 0 || t.State.Final() {
		return
	}
	switch {
	case t.counts[SubFail] > 0:
		t.State = TaskFailed
	case t.counts[SubStop] > 0:
		t.State = TaskStop
	default:
		t.State = TaskSuccess
	}
	t.Updated = now
	t.RetryAt = time.Time{}
	if t.State == TaskFailed && !t.stopping && t.retryable > 0 && t.Attempt < t.Policy.RetryTimes {
		t.RetryAt = t.Policy.RetryAt(now, t.Attempt+1, e.cfg.RetryInterval)
		e.poke()
	} else {
		delete(e.tasks, t.ID)
	}
	if err := e.st.PutTask(ctx, t.Task, nil); err != nil {
		e.log.Error("ota: save task", "task", t.ID, "err", err)
	}
}

// kick starts the waiting sessions whose device is online; under the "now"
// policy the others fail with ReasonNotOnline.
func (e *Engine) kick(ctx context.Context, sessions []*session) {
	for _, s := range sessions {
		var eff effects
		s.mu.Lock()
		if !s.ended && s.sub.State == SubWait {
			switch {
			case e.online(ctx, s.sub.DeviceID):
				e.start(ctx, s, &eff)
			case s.policy.Execute == Now:
				e.finish(ctx, s, SubFail, ReasonNotOnline, &eff)
			}
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
}

// activate starts a window task whose window opened.
func (e *Engine) activate(ctx context.Context, id string) error {
	e.mu.Lock()
	t := e.tasks[id]
	if t == nil || t.State != TaskWait {
		e.mu.Unlock()
		return nil
	}
	t.State = TaskProcessing
	t.Updated = time.Now()
	err := e.st.PutTask(ctx, t.Task, nil)
	var sessions []*session
	for _, s := range e.devices {
		if s.sub.TaskID == id {
			sessions = append(sessions, s)
		}
	}
	e.mu.Unlock()
	e.kick(ctx, sessions)
	return err
}

// DeviceOnline tells the engine the device is awake (it registered,
// updated its registration or sent data). Waiting sub-tasks start; a step
// waiting for an answer sends its request again, since a frame sent while
// the device slept may be lost (notify when the device is awake,
// OTA-6).
func (e *Engine) DeviceOnline(ctx context.Context, deviceID string) {
	if !e.readyOrLog(ctx) {
		return
	}
	s := e.session(deviceID)
	if s == nil {
		return
	}
	var eff effects
	s.mu.Lock()
	if !s.ended {
		switch {
		case s.sub.State == SubWait && !time.Now().Before(s.readyAt):
			e.start(ctx, s, &eff)
		case s.sub.State == SubProcessing:
			e.act(s, &eff)
		}
	}
	s.mu.Unlock()
	e.apply(ctx, &eff)
}
