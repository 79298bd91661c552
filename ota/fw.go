package ota

import (
	"context"
	"time"
)

// LwM2M object 5 State values (/5/0/3).
const (
	FwStateIdle        = 0
	FwStateDownloading = 1
	FwStateDownloaded  = 2
	FwStateUpdating    = 3
)

// FwUnknown marks a State or Update Result a report did not carry.
const FwUnknown = -1

// FirmwareStatus is what a device reports in object 5: State (/5/0/3,
// FwState…) and Update Result (/5/0/5: 0 initial, 1 success, 2..9
// failures). A value the report did not carry is FwUnknown.
type FirmwareStatus struct {
	State  int
	Result int
}

// enqueueFw queues an object 5 step for the device; one entry per device.
func (e *Engine) enqueueFw(deviceID string) {
	e.mu.Lock()
	if !e.fwQueued[deviceID] {
		e.fwQueued[deviceID] = true
		e.fwQueue = append(e.fwQueue, deviceID)
	}
	e.mu.Unlock()
	select {
	case e.fwSignal <- struct{}{}:
	default:
	}
}

func (e *Engine) fwWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.fwSignal:
		}
		for {
			e.mu.Lock()
			if len(e.fwQueue) == 0 {
				e.mu.Unlock()
				break
			}
			id := e.fwQueue[0]
			e.fwQueue = e.fwQueue[1:]
			delete(e.fwQueued, id)
			more := len(e.fwQueue) > 0
			e.mu.Unlock()
			if more {
				select { // wake another worker
				case e.fwSignal <- struct{}{}:
				default:
				}
			}
			e.fwStep(ctx, id)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// fwStep makes the object 5 call the device's current step needs, without
// holding a lock during the call, then applies its answer if the sub-task
// is still at that step. After a new registration of the device, the call
// is first a sync: observe /5/0/3 and /5/0/5 again (the device forgot its
// observations) and take their values as a report.
func (e *Engine) fwStep(ctx context.Context, deviceID string) {
	s := e.session(deviceID)
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.ended || s.sub.Kind != Firmware || s.sub.State != SubProcessing {
		s.mu.Unlock()
		return
	}
	step, attempt, observed := s.sub.Step, s.sub.Attempt, s.observed
	sync := s.resync && (step == StepDownload || step == StepExecute || step == StepResult)
	p := s.content.Package
	s.mu.Unlock()

	o := e.cfg.Object5
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	var version string
	var status FirmwareStatus
	var err error
	switch {
	case sync:
		status, err = o.ObserveFirmware(cctx, deviceID)
	case step == StepQuery, step == StepCheck:
		version, err = o.ReadFirmwareVersion(cctx, deviceID)
	case step == StepNotify:
		if !observed {
			// The values of these answers may be left from an
			// earlier attempt: only what comes after the write counts.
			_, err = o.ObserveFirmware(cctx, deviceID)
		}
		if err == nil && !e.arm(s, attempt) {
			return
		}
		if err == nil {
			err = o.WritePackageURI(cctx, deviceID, e.cfg.FirmwareURI+p.ID)
		}
	case step == StepExecute:
		err = o.ExecuteUpdate(cctx, deviceID)
	default:
		return
	}
	if err != nil {
		// The step's deadline decides; the call is made again when
		// the device is next online.
		e.log.Info("ota: object 5 call", "device", deviceID, "step", step, "sync", sync, "err", err)
		return
	}
	eff := effects{deviceID: deviceID, kind: Firmware}
	if step == StepQuery || step == StepCheck {
		eff.versions = append(eff.versions, version)
	}
	s.mu.Lock()
	if s.ended || s.sub.Step != step || s.sub.Attempt != attempt {
		s.mu.Unlock()
		e.apply(ctx, &eff)
		return
	}
	now := time.Now()
	switch {
	case sync:
		s.resync, s.observed = false, true
		e.fwReport(ctx, s, status, now, &eff)
	case step == StepQuery:
		e.versionKnown(ctx, s, version, now, &eff)
	case step == StepCheck:
		s.sub.CurrentVersion = version
		if version == p.Version {
			e.finish(ctx, s, SubSuccess, "", &eff)
		} else {
			e.finish(ctx, s, SubFail, ReasonUpdateFailed, &eff)
		}
	case step == StepNotify:
		// Writing the Package URI moves the device to Downloading.
		e.setStep(s, StepDownload, now)
		e.save(ctx, s)
		e.stateEvent(s, StateDownloading, &eff)
	case step == StepExecute:
		e.setStep(s, StepResult, now)
		e.save(ctx, s)
		e.stateEvent(s, StateUpdating, &eff)
	}
	s.mu.Unlock()
	e.apply(ctx, &eff)
}

// arm marks the sub-task's Package URI as about to be written: State and
// Update Result reported from now on are about this attempt. It returns
// false when the sub-task moved on meanwhile.
func (e *Engine) arm(s *session, attempt int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.sub.Step != StepNotify || s.sub.Attempt != attempt {
		return false
	}
	s.observed, s.armed = true, true
	return true
}

// FirmwareState takes a reported value of /5/0/3 (State): a notification
// or a Send.
func (e *Engine) FirmwareState(ctx context.Context, deviceID string, state int) {
	e.FirmwareReport(ctx, deviceID, FirmwareStatus{State: state, Result: FwUnknown})
}

// FirmwareResult takes a reported value of /5/0/5 (Update Result): 1 leads
// to a version check, 2..9 fail the attempt with the reason of
// UpdateResultReason (OTA-3); the task's retryTimes decide whether it
// is tried again.
func (e *Engine) FirmwareResult(ctx context.Context, deviceID string, result int) {
	e.FirmwareReport(ctx, deviceID, FirmwareStatus{State: FwUnknown, Result: result})
}

// FirmwareReport takes what a device reported in object 5, one value or
// both (a notification, a Send, the answers to observing them again), in
// whatever order they come. Only reports made after the Package URI was
// written count; earlier ones may be left from another attempt.
func (e *Engine) FirmwareReport(ctx context.Context, deviceID string, st FirmwareStatus) {
	if !e.readyOrLog(ctx) {
		return
	}
	s := e.session(deviceID)
	if s == nil {
		return
	}
	eff := effects{deviceID: deviceID, kind: Firmware}
	s.mu.Lock()
	if !s.ended && s.sub.Kind == Firmware && s.sub.State == SubProcessing {
		e.fwReport(ctx, s, st, time.Now(), &eff)
	}
	s.mu.Unlock()
	e.apply(ctx, &eff)
}

// fwReport moves a firmware sub-task on from a report. With both values
// known (a Send of both, or the sync after a new registration) Idle with
// no result is meaningful: the device lost the download (the Package URI
// is written again) or finished an update without saying (the version is
// read). s.mu is held.
func (e *Engine) fwReport(ctx context.Context, s *session, st FirmwareStatus, now time.Time, eff *effects) {
	step := s.sub.Step
	downloading := step == StepDownload || (step == StepNotify && s.armed)
	updating := step == StepExecute || step == StepResult
	if !downloading && !updating {
		return // not asked yet, or a value of an earlier attempt
	}
	both := st.State != FwUnknown && st.Result != FwUnknown
	switch {
	case st.Result >= 2:
		reason, _ := UpdateResultReason(st.Result)
		e.finish(ctx, s, SubFail, reason, eff)
	case st.Result == 1 && updating:
		e.setStep(s, StepCheck, now)
		e.save(ctx, s)
		e.act(s, eff)
	case st.State == FwStateUpdating:
		if step != StepResult {
			e.setStep(s, StepResult, now)
			e.save(ctx, s)
			e.stateEvent(s, StateUpdating, eff)
		}
	case st.State == FwStateDownloaded && downloading:
		s.sub.Downloaded = s.content.Size
		e.stateEvent(s, StateDownloaded, eff)
		e.setStep(s, StepExecute, now)
		e.save(ctx, s)
		e.act(s, eff)
	case st.State == FwStateDownloaded && both && st.Result == 0 && step == StepResult:
		// Still downloaded after the execute was taken: the device
		// restarted before updating. Execute again, within the deadline.
		s.sub.Step = StepExecute
		e.save(ctx, s)
		e.act(s, eff)
	case st.State == FwStateDownloading && downloading:
		if step == StepNotify {
			e.stateEvent(s, StateDownloading, eff)
		}
		e.setStep(s, StepDownload, now)
		e.save(ctx, s)
	case st.State == FwStateIdle && both && st.Result == 0 && downloading:
		// The device restarted and forgot the download: write the
		// Package URI again, within the download deadline.
		s.sub.Step, s.armed = StepNotify, false
		e.save(ctx, s)
		e.act(s, eff)
	case st.State == FwStateIdle && both && st.Result == 0 && updating:
		// Idle again after an update that left no result: the version
		// tells.
		e.setStep(s, StepCheck, now)
		e.save(ctx, s)
		e.act(s, eff)
	}
}

// DeviceRegistered tells the engine the device registered anew: it may
// have restarted and forgotten what it observed. A firmware sub-task past
// its Package URI observes /5/0/3 and /5/0/5 again and takes their values
// as a report (a device restarted mid-download that is now Downloaded is
// executed; one that came back updated is checked). Call DeviceOnline as
// well, as for any wake.
func (e *Engine) DeviceRegistered(ctx context.Context, deviceID string) {
	if !e.readyOrLog(ctx) {
		return
	}
	s := e.session(deviceID)
	if s == nil {
		return
	}
	eff := effects{deviceID: deviceID}
	s.mu.Lock()
	if !s.ended && s.sub.Kind == Firmware && s.sub.State == SubProcessing {
		s.observed = false
		switch s.sub.Step {
		case StepDownload, StepExecute, StepResult:
			s.resync = true
			eff.fwJob = true
		case StepNotify:
			s.armed = false
		}
	}
	s.mu.Unlock()
	e.apply(ctx, &eff)
}

// FirmwareServed tells the engine that the device was served package
// bytes up to end (the end of the block it asked for, RFC 7959 Block2): the
// download moves on, with its deadline, and its progress is the highest
// block served over the package size.
func (e *Engine) FirmwareServed(ctx context.Context, deviceID, pkgID string, end int64) {
	if !e.readyOrLog(ctx) {
		return
	}
	s := e.session(deviceID)
	if s == nil {
		return
	}
	eff := effects{deviceID: deviceID}
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}()
	if s.ended || s.sub.Kind != Firmware || s.sub.State != SubProcessing || s.content.ID != pkgID {
		return
	}
	now := time.Now()
	switch s.sub.Step {
	case StepNotify:
		// The write's answer is not in yet, or was lost: the request
		// says the device is downloading.
		s.armed = true
		e.stateEvent(s, StateDownloading, &eff)
		e.setStep(s, StepDownload, now)
	case StepDownload:
		s.sub.Deadline = now.Add(e.cfg.DownloadTimeout)
		s.touched = true
	default:
		return
	}
	end = min(end, s.content.Size)
	if end <= s.sub.Downloaded {
		return
	}
	s.sub.Downloaded = end
	// Saved each tenth of the package, as software progress is.
	if step := max(1, s.content.Size/10); s.sub.Downloaded-s.savedBytes >= step || end == s.content.Size {
		s.savedBytes = s.sub.Downloaded
		e.save(ctx, s)
	}
}
