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
// is still at that step.
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
	step, attempt := s.sub.Step, s.sub.Attempt
	p := s.content.Package
	s.mu.Unlock()

	o := e.cfg.Object5
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	var version string
	var err error
	switch step {
	case StepQuery, StepCheck:
		version, err = o.ReadFirmwareVersion(cctx, deviceID)
	case StepNotify:
		if err = o.ObserveFirmware(cctx, deviceID); err == nil {
			err = o.WritePackageURI(cctx, deviceID, e.cfg.FirmwareURI+p.ID)
		}
	case StepExecute:
		err = o.ExecuteUpdate(cctx, deviceID)
	default:
		return
	}
	if err != nil {
		// The step's deadline decides; the call is made again when
		// the device is next online.
		e.log.Info("ota: object 5 call", "device", deviceID, "step", step, "err", err)
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
	switch step {
	case StepQuery:
		e.versionKnown(ctx, s, version, now, &eff)
	case StepCheck:
		s.sub.CurrentVersion = version
		if version == p.Version {
			e.finish(ctx, s, SubSuccess, "", &eff)
		} else {
			e.finish(ctx, s, SubFail, ReasonUpdateFailed, &eff)
		}
	case StepNotify:
		e.setStep(s, StepDownload, now)
		e.save(ctx, s)
	case StepExecute:
		e.setStep(s, StepResult, now)
		e.save(ctx, s)
	}
	s.mu.Unlock()
	e.apply(ctx, &eff)
}

// FirmwareState takes an observed value of /5/0/3 (State) from the device.
func (e *Engine) FirmwareState(ctx context.Context, deviceID string, state int) {
	e.firmwareObserved(ctx, deviceID, func(s *session, eff *effects) {
		now := time.Now()
		switch state {
		case FwStateDownloading:
			if s.sub.Step == StepNotify || s.sub.Step == StepDownload {
				e.setStep(s, StepDownload, now)
				e.save(ctx, s)
				e.stateEvent(s, StateDownloading, eff)
			}
		case FwStateDownloaded:
			if s.sub.Step == StepNotify || s.sub.Step == StepDownload {
				e.stateEvent(s, StateDownloaded, eff)
				e.setStep(s, StepExecute, now)
				e.save(ctx, s)
				e.act(s, eff)
			}
		case FwStateUpdating:
			e.stateEvent(s, StateUpdating, eff)
		}
	})
}

// FirmwareResult takes an observed value of /5/0/5 (Update Result): 1
// leads to a version check, 2..8 fail the sub-task with the reason of
// UpdateResultReason (SPEC OTA-3).
func (e *Engine) FirmwareResult(ctx context.Context, deviceID string, result int) {
	e.firmwareObserved(ctx, deviceID, func(s *session, eff *effects) {
		if reason, failed := UpdateResultReason(result); failed {
			e.finish(ctx, s, SubFail, reason, eff)
		} else if result == 1 && (s.sub.Step == StepExecute || s.sub.Step == StepResult) {
			e.setStep(s, StepCheck, time.Now())
			e.save(ctx, s)
			e.act(s, eff)
		}
	})
}

// firmwareObserved runs apply on the device's session when it has a
// firmware upgrade in progress, with s.mu held, then applies the effects
// outside the lock.
func (e *Engine) firmwareObserved(ctx context.Context, deviceID string, apply func(s *session, eff *effects)) {
	s := e.session(deviceID)
	if s == nil {
		return
	}
	var eff effects
	s.mu.Lock()
	if !s.ended && s.sub.Kind == Firmware && s.sub.State == SubProcessing {
		apply(s, &eff)
	}
	s.mu.Unlock()
	e.apply(ctx, &eff)
}
