package main

// Power-saving modes (CMD-3, CMD-11). A device's own mode is
// deviceInfo.mode (PSM, DRX, EDRX) with optional timers in seconds
// (psmActiveTimer, edrxCycle, pagingTimeWindow), given at registration or
// in a PUT of the device. A device without a mode of its own follows its
// application's defaultMode (PUT /doze/v1/app/settings), PSM unless set.
//
// Where each part is kept: the registry keeps the device's own mode name
// (deviceInfo.mode, "" for none); the command engine keeps the mode it
// applies, with the device's own timers (0: the default) and, for a
// device without a mode of its own, the application it follows
// (command.Mode.Follows). Timers a device does not give are the
// platform's: the PSM active time is the lwm2m server's awake window
// (queueWindow, LWM-8), the eDRX cycle and paging window those of
// package command. At every start each device's mode is applied again
// from these, and every change (a device's PUT, an app's new default) is
// applied at once: a device set to DRX gets its cached command without
// waiting for an uplink.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/registry"
)

// modeFields are the power-saving fields of deviceInfo (CMD-11).
type modeFields struct {
	Mode             *string  `json:"mode"`
	PSMActiveTimer   *float64 `json:"psmActiveTimer"`
	EDRXCycle        *float64 `json:"edrxCycle"`
	PagingTimeWindow *float64 `json:"pagingTimeWindow"`
}

func (f modeFields) any() bool {
	return f.Mode != nil || f.PSMActiveTimer != nil || f.EDRXCycle != nil || f.PagingTimeWindow != nil
}

// Bounds of the timers: T3324 up to 31 × 6 min, an eDRX cycle up to
// 10485.76 s (3GPP TS 24.008).
const (
	maxActiveTimer = 186 * time.Minute
	maxEDRXCycle   = 10485760 * time.Millisecond
)

// modeNames are the API's names of the modes.
var modeNames = map[command.Kind]string{command.PSM: "PSM", command.DRX: "DRX", command.EDRX: "EDRX"}

// parseModeName reads a mode name: PSM, DRX or EDRX in any case; ""
// means none (the application's default).
func parseModeName(field, s string) (string, error) {
	switch v := strings.ToUpper(strings.TrimSpace(s)); v {
	case "", "PSM", "DRX", "EDRX":
		return v, nil
	}
	return "", badRequest("invalid_mode", "%s is %q; it must be PSM, DRX or EDRX (or empty for the application's default, CMD-11)", field, s)
}

func kindOf(name string) command.Kind {
	switch name {
	case "DRX":
		return command.DRX
	case "EDRX":
		return command.EDRX
	}
	return command.PSM
}

// seconds reads a timer in seconds: 0 means the default.
func seconds(field string, v *float64, max time.Duration) (time.Duration, error) {
	if math.IsNaN(*v) || *v < 0 || *v > max.Seconds() {
		return 0, badRequest("invalid_mode", "%s is %v; it must be 0 (the default) to %v seconds (CMD-11)", field, *v, max.Seconds())
	}
	return time.Duration(math.Round(*v*1000)) * time.Millisecond, nil
}

// modeChange is a validated change of a device's mode.
type modeChange struct {
	own                         *string // the device's own mode name; "" for none
	active, cycle, pagingWindow *time.Duration
}

// parse validates f, naming fields under prefix ("deviceInfo.").
func (f modeFields) parse(prefix string) (modeChange, error) {
	var ch modeChange
	if f.Mode != nil {
		name, err := parseModeName(prefix+"mode", *f.Mode)
		if err != nil {
			return ch, err
		}
		ch.own = &name
	}
	for _, t := range []struct {
		field string
		v     *float64
		max   time.Duration
		out   **time.Duration
	}{{"psmActiveTimer", f.PSMActiveTimer, maxActiveTimer, &ch.active}, {"edrxCycle", f.EDRXCycle, maxEDRXCycle, &ch.cycle},
		{"pagingTimeWindow", f.PagingTimeWindow, maxEDRXCycle, &ch.pagingWindow}} {
		if t.v == nil {
			continue
		}
		d, err := seconds(prefix+t.field, t.v, t.max)
		if err != nil {
			return ch, err
		}
		*t.out = &d
	}
	return ch, nil
}

// defaultMode is the engine's mode for a device it knows nothing about,
// and the source of every timer a device does not give.
func defaultMode(cfg Config) command.Mode {
	return command.Mode{Kind: command.PSM, ActiveTime: time.Duration(cfg.QueueWindow),
		Cycle: command.DefaultCycle, PagingWindow: command.DefaultPagingWindow}
}

// appDefault returns app's default mode kind; PSM for an unknown app.
func (p *Platform) appDefault(app string) command.Kind {
	a, _ := p.auth.App(app)
	return kindOf(a.DefaultMode)
}

// onlyApp returns the id of the platform's only app, or "".
func (p *Platform) onlyApp() string {
	if apps := p.auth.Apps(); len(apps) == 1 {
		return apps[0].ID
	}
	return ""
}

// modeRecord is the mode the engine keeps for a device with own mode name
// own ("" for none, then it follows app) and the timers of t.
func (p *Platform) modeRecord(own string, t command.Mode, app string) command.Mode {
	m := command.Mode{ActiveTime: t.ActiveTime, Cycle: t.Cycle, PagingWindow: t.PagingWindow}
	if own != "" {
		m.Kind = kindOf(own)
		return m
	}
	m.Kind, m.Follows = p.appDefault(app), app
	return m
}

// planMode returns the mode the engine keeps for a device after ch: cur
// (ok: the engine has one) changed by ch, with own the device's own mode
// name before ch and app the application that registers or changes it.
func (p *Platform) planMode(cur command.Mode, ok bool, own, app string, ch modeChange) (command.Mode, error) {
	if !ok {
		cur = command.Mode{}
	}
	if ch.own != nil {
		own = *ch.own
	}
	for _, t := range []struct {
		v   *time.Duration
		out *time.Duration
	}{{ch.active, &cur.ActiveTime}, {ch.cycle, &cur.Cycle}, {ch.pagingWindow, &cur.PagingWindow}} {
		if t.v != nil {
			*t.out = *t.v
		}
	}
	if ok && cur.Follows != "" {
		app = cur.Follows // a device keeps following the app it followed
	}
	m := p.modeRecord(own, cur, app)
	cycle, window := cmp(m.Cycle, command.DefaultCycle), cmp(m.PagingWindow, command.DefaultPagingWindow)
	if window > cycle {
		return m, badRequest("invalid_mode", "pagingTimeWindow %v s is longer than the eDRX cycle %v s (CMD-11)", window.Seconds(), cycle.Seconds())
	}
	return m, nil
}

// setMode gives the engine the device's planned mode.
func (p *Platform) setMode(ctx context.Context, deviceID string, m command.Mode) error {
	if err := p.cmds.SetMode(ctx, deviceID, m); err != nil {
		return apiErr(err)
	}
	p.log.Add(deviceID, "mode", fmt.Sprintf("power-saving mode %s, own timers %v/%v/%v, follows %q",
		modeNames[m.Kind], m.ActiveTime, m.Cycle, m.PagingWindow, m.Follows))
	return nil
}

// cmp returns d, or def when d is 0.
func cmp(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// showMode fills the mode fields of a device's deviceInfo with the mode
// that applies to it and the timers that matter in that mode.
func (p *Platform) showMode(ctx context.Context, out *deviceInfoJSON, deviceID string) {
	m, err := p.cmds.Effective(ctx, deviceID)
	if err != nil {
		return
	}
	out.Mode = modeNames[m.Kind]
	secs := func(d time.Duration) *float64 { s := d.Seconds(); return &s }
	switch m.Kind {
	case command.PSM:
		out.PSMActiveTimer = secs(cmp(m.ActiveTime, command.DefaultActiveTime))
	case command.EDRX:
		out.PSMActiveTimer = secs(cmp(m.ActiveTime, command.DefaultActiveTime))
		out.EDRXCycle = secs(cmp(m.Cycle, command.DefaultCycle))
		out.PagingTimeWindow = secs(cmp(m.PagingWindow, command.DefaultPagingWindow))
	}
}

// eachDevice calls f for every registered device, a page at a time.
func (p *Platform) eachDevice(ctx context.Context, f func(registry.Device)) error {
	const size = 1000
	for page := 0; ; page++ {
		ds, total, err := p.reg.List(ctx, registry.Query{PageNo: page, PageSize: size})
		if err != nil {
			return err
		}
		for _, d := range ds {
			f(d)
		}
		if (page+1)*size >= total || len(ds) == 0 {
			return nil
		}
	}
}

// ownMode returns the device's own mode name from the registry; a value
// stored as free text before CMD-11 that names no mode counts as none.
func (p *Platform) ownMode(d registry.Device) string {
	name, err := parseModeName("deviceInfo.mode", d.Info.Mode)
	if err != nil {
		p.logger.Warn("device mode is not PSM, DRX or EDRX; the application's default applies", "device", d.ID, "mode", d.Info.Mode)
		return ""
	}
	return name
}

// applyModes applies every device's mode to the command engine (at
// start): its own, else its app's default. A device the engine knows
// nothing about and that would be PSM costs no write.
func (p *Platform) applyModes(ctx context.Context) error {
	only := p.onlyApp()
	var errs int
	err := p.eachDevice(ctx, func(d registry.Device) {
		if err := p.applyMode(ctx, d, only, ""); err != nil {
			errs++
			p.logger.Error("applying a device's power-saving mode", "device", d.ID, "err", err)
		}
	})
	if err == nil && errs > 0 {
		err = fmt.Errorf("%d devices' modes not applied", errs)
	}
	return err
}

// applyMode sets the device's mode from its own mode name and stored
// timers; only: the platform's only app or "". With app set, only devices
// that follow app are changed (an app's default changed).
func (p *Platform) applyMode(ctx context.Context, d registry.Device, only, app string) error {
	own := p.ownMode(d)
	cur, ok, err := p.cmds.Mode(ctx, d.ID)
	if err != nil {
		return err
	}
	if !ok {
		cur = command.Mode{}
	}
	follows := cur.Follows
	if follows == "" && !ok {
		follows = only
		if d.AppID != "" {
			follows = d.AppID // its owner (APP-3)
		}
	}
	switch {
	case app != "" && (own != "" || follows != app):
		return nil
	case own == "" && follows == "":
		return nil // no app to follow: the engine's default, PSM
	}
	m := p.modeRecord(own, cur, follows)
	if !ok && m.Kind == command.PSM && own == "" {
		return nil // what the engine assumes anyway
	}
	return p.cmds.SetMode(ctx, d.ID, m)
}

// appSettings changes the calling app's own switches: historyEnabled and
// defaultMode (APP-3, CMD-11). A new default mode applies at once to every
// device that follows the app.
func (p *Platform) appSettings(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		HistoryEnabled *bool   `json:"historyEnabled"`
		DefaultMode    *string `json:"defaultMode"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	var mode string
	if body.DefaultMode != nil {
		var err error
		if mode, err = parseModeName("defaultMode", *body.DefaultMode); err != nil {
			return err
		}
	}
	id := appOf(r)
	before, _ := p.auth.App(id)
	app, ok := p.auth.Change(id, func(a *App) {
		if body.HistoryEnabled != nil {
			a.HistoryEnabled = *body.HistoryEnabled
		}
		if body.DefaultMode != nil {
			a.DefaultMode = mode
		}
	})
	if !ok {
		return notFound("app_not_found", "app %s is not known", id)
	}
	if err := p.saveApps(); err != nil {
		return err
	}
	if kindOf(before.DefaultMode) != kindOf(app.DefaultMode) {
		p.defaultModeChanged(id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"appId": app.ID, "historyEnabled": app.HistoryEnabled,
		"defaultMode": modeNames[kindOf(app.DefaultMode)]})
	return nil
}

// defaultModeChanged applies app id's new default mode, in the
// background, to every device that follows it.
func (p *Platform) defaultModeChanged(id string) {
	p.background(func(ctx context.Context) {
		only := p.onlyApp()
		err := p.eachDevice(ctx, func(d registry.Device) {
			if err := p.applyMode(ctx, d, only, id); err != nil {
				p.logger.Error("applying an app's default mode", "app", id, "device", d.ID, "err", err)
			}
		})
		if err != nil {
			p.logger.Error("applying an app's default mode", "app", id, "err", err)
		}
	})
}
