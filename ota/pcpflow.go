package ota

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/doze-io/doze/ota/pcp"
)

// QueryVersion asks a device its software version with PCP 19, outside any
// task (for a product that enables the upgrade capability while the
// version is unknown, OTA-5). The answer reaches a VersionListener.
func (e *Engine) QueryVersion(ctx context.Context, deviceID string) error {
	return e.ch.SendFrame(ctx, deviceID, pcp.Encode(pcp.QueryVersion{}))
}

// Served says which blocks a device was served in its current download
// (OTA-7).
type Served struct {
	TaskID      string
	Blocks      int      // blocks in the package
	Distinct    int      // different blocks served
	Resent      int      // blocks served more than once
	ResentBytes int64    // bytes of those repeats
	Bitmap      []uint64 // bit n set when block n was served
	First, Last time.Time
}

// Served returns the block tracking of the device's active software
// upgrade, or false when it has none.
func (e *Engine) Served(deviceID string) (Served, bool) {
	if !e.readyOrLog(context.Background()) {
		return Served{}, false
	}
	s := e.session(deviceID)
	if s == nil {
		return Served{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.sub.Kind != Software {
		return Served{}, false
	}
	return Served{TaskID: s.sub.TaskID, Blocks: s.content.Blocks(), Distinct: s.distinct, Resent: s.resent,
		ResentBytes: s.resentBytes, Bitmap: slices.Clone(s.served), First: s.first, Last: s.last}, true
}

// HandleFrame takes a PCP frame the device sent (OTA-6) and answers it
// through the Channel. A frame that does not decode returns an error and
// gets no answer.
func (e *Engine) HandleFrame(ctx context.Context, deviceID string, frame []byte) error {
	f, err := pcp.ParseFrame(frame)
	if err != nil {
		return fmt.Errorf("ota: device %s: %w", deviceID, err)
	}
	if err := e.ready(ctx); err != nil {
		return fmt.Errorf("ota: device %s: %w", deviceID, err)
	}
	if f.Code == pcp.CodeBlock && len(f.Data) == pcp.VersionLen+2 {
		if done, err := e.fastBlock(ctx, deviceID, f.Data); done {
			return err
		}
	}
	m, err := f.Message(pcp.Uplink)
	if err != nil {
		return fmt.Errorf("ota: device %s: %w", deviceID, err)
	}
	eff := effects{deviceID: deviceID, kind: Software}
	switch m := m.(type) {
	case pcp.QueryVersionAnswer:
		if m.Result == pcp.ResultOK {
			eff.versions = append(eff.versions, m.Version)
		}
	case pcp.UpgradeResult:
		eff.versions = append(eff.versions, m.Version)
	}
	if s := e.session(deviceID); s != nil {
		s.mu.Lock()
		if !s.ended && s.sub.Kind == Software {
			if s.sub.State == SubWait && !time.Now().Before(s.readyAt) {
				e.start(ctx, s, &eff) // the device is awake
			}
			if !s.ended && s.sub.State == SubProcessing {
				e.pcpMessage(ctx, s, m, &eff)
				s.mu.Unlock()
				e.apply(ctx, &eff)
				return nil
			}
		}
		s.mu.Unlock()
	}
	// No upgrade in progress for this device (none, firmware, ended or
	// not started yet): refuse requests, ignore answers.
	switch m := m.(type) {
	case pcp.BlockRequest:
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultNoSuchTask, m.Block, nil))
	case pcp.DownloadResult:
		eff.send(pcp.Encode(pcp.DownloadResultAnswer{Result: pcp.ResultNoSuchTask}))
	case pcp.UpgradeResult:
		eff.send(pcp.Encode(pcp.UpgradeResultAnswer{Result: pcp.ResultNoSuchTask}))
	}
	e.apply(ctx, &eff)
	return nil
}

// pcpMessage advances a software sub-task with message m. s.mu is held.
func (e *Engine) pcpMessage(ctx context.Context, s *session, m pcp.Message, eff *effects) {
	now := time.Now()
	p := &s.content.Package
	switch m := m.(type) {
	case pcp.QueryVersionAnswer:
		if s.sub.Step != StepQuery {
			return
		}
		switch m.Result {
		case pcp.ResultOK:
			e.versionKnown(ctx, s, m.Version, now, eff)
		case pcp.ResultBusy, pcp.ResultLowBattery:
			// Asked again when the device next wakes, as for notify
			// and execute; VersionTimeout still bounds the step.
		default:
			e.finish(ctx, s, SubFail, ResultReason(m.Result), eff)
		}
	case pcp.NotifyAnswer:
		if s.sub.Step == StepNotify {
			e.requestAnswered(ctx, s, m.Result, StepDownload, StateDownloading, now, eff)
		}
	case pcp.BlockRequest:
		e.blockRequest(ctx, s, []byte(m.Version), m.Block, now, eff)
	case pcp.DownloadResult:
		eff.send(pcp.Encode(pcp.DownloadResultAnswer{Result: pcp.ResultOK}))
		if s.sub.Step != StepNotify && s.sub.Step != StepDownload {
			return // a repeat
		}
		if m.Result != pcp.ResultOK {
			e.finish(ctx, s, SubFail, ResultReason(m.Result), eff)
			return
		}
		e.stateEvent(s, StateDownloaded, eff)
		e.setStep(s, StepExecute, now)
		e.save(ctx, s)
		e.act(s, eff)
	case pcp.ExecuteAnswer:
		if s.sub.Step == StepExecute {
			e.requestAnswered(ctx, s, m.Result, StepResult, StateUpdating, now, eff)
		}
	case pcp.UpgradeResult:
		eff.send(pcp.Encode(pcp.UpgradeResultAnswer{Result: pcp.ResultOK}))
		if s.sub.Step != StepExecute && s.sub.Step != StepResult {
			return
		}
		s.sub.CurrentVersion = m.Version
		switch {
		case m.Result != pcp.ResultOK:
			e.finish(ctx, s, SubFail, ResultReason(m.Result), eff)
		case m.Version != p.Version:
			e.finish(ctx, s, SubFail, ReasonUpdateFailed, eff)
		default:
			e.finish(ctx, s, SubSuccess, "", eff)
		}
	}
}

// requestAnswered takes the device's answer r to a notify or execute: ok
// moves s to step next and reports state; busy and low battery leave s
// where it is, to ask again when the device next wakes; anything else
// fails s with the reason of r. s.mu is held.
func (e *Engine) requestAnswered(ctx context.Context, s *session, r pcp.Result, next Step, state string, now time.Time, eff *effects) {
	switch r {
	case pcp.ResultOK:
		e.setStep(s, next, now)
		e.save(ctx, s)
		e.stateEvent(s, state, eff)
	case pcp.ResultBusy, pcp.ResultLowBattery:
	default:
		e.finish(ctx, s, SubFail, ResultReason(r), eff)
	}
}

// blockRequest serves block n of the package to s (PCP 21), any valid
// block at any time (OTA-7). ver is the version field without its padding.
// s.mu is held.
func (e *Engine) blockRequest(ctx context.Context, s *session, ver []byte, n uint16, now time.Time, eff *effects) {
	p := &s.content.Package
	if string(ver) != p.Version {
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultNoSuchTask, n, nil))
		return
	}
	if int(n) >= p.Blocks() {
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultNoSuchBlock, n, nil))
		return
	}
	frame, err := e.block(s, int(n), now)
	if err != nil {
		e.log.Error("ota: read block", "package", p.ID, "block", n, "err", err)
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultInternalError, n, nil))
		return
	}
	if s.sub.Step == StepNotify {
		// The notify answer was lost; the request says the device is
		// downloading.
		s.sub.Step = StepDownload
		e.stateEvent(s, StateDownloading, eff)
		e.save(ctx, s)
	}
	if s.sub.Step == StepDownload {
		s.sub.Deadline = now.Add(e.cfg.DownloadTimeout)
		s.touched = true
		if step := max(1, p.Blocks()/10); s.distinct-s.saved >= step {
			e.save(ctx, s)
		}
	}
	eff.send(frame)
}

// fastBlock serves a block request without building a Message (the hot
// path of a download). It returns false when the device has no upgrade in
// progress, for HandleFrame's general path to answer.
func (e *Engine) fastBlock(ctx context.Context, deviceID string, data []byte) (bool, error) {
	ver, n, err := pcp.ParseBlockRequest(data)
	if err != nil {
		return true, fmt.Errorf("ota: device %s: %w", deviceID, err)
	}
	s := e.session(deviceID)
	if s == nil {
		return false, nil
	}
	eff := effects{deviceID: deviceID}
	s.mu.Lock()
	if s.ended || s.sub.Kind != Software || s.sub.State != SubProcessing {
		s.mu.Unlock()
		return false, nil
	}
	e.blockRequest(ctx, s, ver, n, time.Now(), &eff)
	s.mu.Unlock()
	e.apply(ctx, &eff)
	return true, nil
}

// versionKnown applies the same-version and source-version rules
// (OTA-1, OTA-2) and moves on to the download. s.mu is held.
func (e *Engine) versionKnown(ctx context.Context, s *session, v string, now time.Time, eff *effects) {
	p := &s.content.Package
	s.sub.SourceVersion, s.sub.CurrentVersion = v, v
	switch {
	case v == p.Version:
		e.finish(ctx, s, SubFail, ReasonSameVersion, eff)
	case !p.Accepts(v):
		e.finish(ctx, s, SubFail, ReasonSourceVersion, eff)
	case !e.takeSlot(s):
		s.sub.Step, s.sub.Deadline = StepQueued, time.Time{}
		e.save(ctx, s)
	default:
		e.setStep(s, StepNotify, now)
		e.save(ctx, s)
		e.act(s, eff)
	}
}

// block reads block n into a new answer frame and records it as served.
func (e *Engine) block(s *session, n int, now time.Time) ([]byte, error) {
	c := s.content
	bs := c.blockSize()
	frame := make([]byte, pcp.BlockDataOffset, pcp.BlockDataOffset+bs)
	data, err := c.readBlock(frame[pcp.BlockDataOffset:], n, bs)
	if err != nil {
		return nil, err
	}
	// data already sits where AppendBlockAnswer copies it: the copy is
	// a no-op move and the block is read once, straight into the frame.
	frame = pcp.AppendBlockAnswer(frame[:0], pcp.ResultOK, uint16(n), data)
	if s.served == nil {
		s.served = make([]uint64, (c.Blocks()+63)/64)
		s.first = now
	}
	w, bit := n/64, uint64(1)<<(n%64)
	if s.served[w]&bit != 0 {
		s.resent++
		s.resentBytes += int64(len(data))
	} else {
		s.served[w] |= bit
		s.distinct++
	}
	s.last = now
	return frame, nil
}
