package main

// The administrator API of applications (APP-3, basics): create, list,
// read, change and delete apps under /doze/v1/apps with the administrator
// credential. The credential is the platform's adminToken when the config
// sets one; otherwise the platform creates one on its first start, prints
// it once, and keeps only its SHA-256 in <dataDir>/admin.json.
//
// Every resource belongs to the app that created it (api_owner.go); an
// app's maxDevices bounds the devices it owns (apps_quota.go).

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/doze-io/doze/push"
)

// adminFile keeps the SHA-256 of the administrator token.
type adminFile struct {
	TokenSHA256 string `json:"tokenSha256"`
}

// loadAdmin returns the SHA-256 of the administrator credential: of
// cfg.AdminToken when set, else of the token in <dataDir>/admin.json,
// created (and returned in created, to be printed once) when absent.
func loadAdmin(cfg Config) (hash [32]byte, created string, err error) {
	if cfg.AdminToken != "" {
		return sha256.Sum256([]byte(cfg.AdminToken)), "", nil
	}
	path := filepath.Join(cfg.DataDir, "admin.json")
	b, err := os.ReadFile(path)
	if err == nil {
		var f adminFile
		h, herr := []byte(nil), json.Unmarshal(b, &f)
		if herr == nil {
			h, herr = hex.DecodeString(f.TokenSHA256)
		}
		if herr != nil || len(h) != 32 {
			return hash, "", fmt.Errorf("admin file %s: want {\"tokenSha256\": <64 hex digits>}; delete it to get a new token", path)
		}
		copy(hash[:], h)
		return hash, "", nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return hash, "", err
	}
	tok := "adm_" + randomHex(24)
	hash = sha256.Sum256([]byte(tok))
	b, _ = json.MarshalIndent(adminFile{TokenSHA256: hex.EncodeToString(hash[:])}, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return hash, "", err
	}
	return hash, tok, nil
}

// checkAdmin authorizes an administrator call: Authorization: Bearer
// <admin token>.
func (p *Platform) checkAdmin(r *http.Request) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(tok))
	if !ok || tok == "" || subtle.ConstantTimeCompare(sum[:], p.adminHash[:]) != 1 {
		return &httpError{Status: http.StatusUnauthorized, Code: "unauthorized",
			Err: errors.New("the apps API needs Authorization: Bearer <admin token> (printed on the platform's first start, or the config's adminToken)")}
	}
	return nil
}

// appJSON is an app as the administrator API shows it: no secret.
type appJSON struct {
	AppID          string `json:"appId"`
	Name           string `json:"name"`
	HistoryEnabled bool   `json:"historyEnabled"`
	DefaultMode    string `json:"defaultMode"`
	RateLimit      int    `json:"rateLimit"`
	MaxDevices     int    `json:"maxDevices"` // 0: no limit
	CallbackCAs    int    `json:"callbackCAs"`
}

func (p *Platform) appView(a App) appJSON {
	mode := a.DefaultMode
	if mode == "" {
		mode = "PSM"
	}
	rate := a.RateLimit
	if rate == 0 {
		rate = p.cfg.RateLimit
	}
	return appJSON{AppID: a.ID, Name: a.Name, HistoryEnabled: a.HistoryEnabled, DefaultMode: mode, RateLimit: rate,
		MaxDevices: a.MaxDevices, CallbackCAs: len(a.CallbackCAs)}
}

// appSettingsJSON is the body of creating or changing an app; absent
// fields are left as they are (at creation: history off, PSM, the
// platform's rate limit).
type appSettingsJSON struct {
	Name           *string `json:"name"`
	HistoryEnabled *bool   `json:"historyEnabled"`
	DefaultMode    *string `json:"defaultMode"`
	RateLimit      *int    `json:"rateLimit"`
	MaxDevices     *int    `json:"maxDevices"`
}

// maxAppRate bounds an app's rateLimit (our choice).
const maxAppRate = 10000

// apply checks the settings and writes them to a.
func (s appSettingsJSON) apply(a *App) error {
	if s.MaxDevices != nil {
		if *s.MaxDevices < 0 || *s.MaxDevices > maxDeviceQuota {
			return badRequest("invalid_maxDevices", "maxDevices is %d; it must be 0 (no limit) to %d devices", *s.MaxDevices, maxDeviceQuota)
		}
		a.MaxDevices = *s.MaxDevices
	}
	if s.Name != nil {
		n := strings.TrimSpace(*s.Name)
		if n == "" || utf8.RuneCountInString(n) > 64 || !utf8.ValidString(n) {
			return badRequest("invalid_name", "name %q must be 1 to 64 characters", *s.Name)
		}
		a.Name = n
	}
	if s.HistoryEnabled != nil {
		a.HistoryEnabled = *s.HistoryEnabled
	}
	if s.DefaultMode != nil {
		m, err := parseModeName("defaultMode", *s.DefaultMode)
		if err != nil {
			return err
		}
		a.DefaultMode = m
	}
	if s.RateLimit != nil {
		if *s.RateLimit < 1 || *s.RateLimit > maxAppRate {
			return badRequest("invalid_rateLimit", "rateLimit is %d; it must be 1 to %d API calls per second", *s.RateLimit, maxAppRate)
		}
		a.RateLimit = *s.RateLimit
	}
	return nil
}

// nameTaken reports whether another app than id has name.
func (p *Platform) nameTaken(name, id string) bool {
	return slices.ContainsFunc(p.auth.Apps(), func(a App) bool { return a.ID != id && a.Name != "" && a.Name == name })
}

// createApp creates an app and answers its id and secret, shown only here.
func (p *Platform) createApp(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkAdmin(r); err != nil {
		return err
	}
	var body appSettingsJSON
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Name == nil {
		return badRequest("invalid_name", "name is required: the administrator's name for the app, 1 to 64 characters")
	}
	app := App{ID: "app-" + randomHex(8), Secret: randomHex(16)}
	if err := body.apply(&app); err != nil {
		return err
	}
	p.appsMu.Lock()
	defer p.appsMu.Unlock()
	if p.nameTaken(app.Name, "") {
		return conflict("app_exists", "an app named %q exists", app.Name)
	}
	if !p.auth.Add(app) {
		return conflict("app_exists", "app id %s exists; try again", app.ID)
	}
	if err := p.saveApps(); err != nil {
		p.auth.Delete(app.ID)
		return err
	}
	p.logger.Info("app created", "app", app.ID, "name", app.Name)
	writeJSON(w, http.StatusCreated, map[string]any{"appId": app.ID, "secret": app.Secret, "app": p.appView(app)})
	return nil
}

func (p *Platform) listApps(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkAdmin(r); err != nil {
		return err
	}
	out := []appJSON{}
	for _, a := range p.auth.Apps() {
		out = append(out, p.appView(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(out), "apps": out})
	return nil
}

func (p *Platform) getApp(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkAdmin(r); err != nil {
		return err
	}
	a, ok := p.auth.App(pathValue(r, "appId"))
	if !ok {
		return notFound("app_not_found", "no app %q", pathValue(r, "appId"))
	}
	writeJSON(w, http.StatusOK, p.appView(a))
	return nil
}

func (p *Platform) changeApp(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkAdmin(r); err != nil {
		return err
	}
	var body appSettingsJSON
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	id := pathValue(r, "appId")
	check, _ := p.auth.App(id)
	before := check
	if err := body.apply(&check); err != nil {
		return err
	}
	p.appsMu.Lock()
	defer p.appsMu.Unlock()
	if body.Name != nil && p.nameTaken(check.Name, id) {
		return conflict("app_exists", "an app named %q exists", check.Name)
	}
	app, ok := p.auth.Change(id, func(a *App) { body.apply(a) })
	if !ok {
		return notFound("app_not_found", "no app %q", id)
	}
	p.quota.forget(id)
	if err := p.saveApps(); err != nil {
		return err
	}
	if kindOf(before.DefaultMode) != kindOf(app.DefaultMode) {
		p.defaultModeChanged(id) // the devices that follow the app (CMD-11)
	}
	writeJSON(w, http.StatusOK, p.appView(app))
	return nil
}

// deleteApp deletes an app: its tokens stop working at once and its
// subscriptions are removed, so nothing more is pushed for it. An app that
// still owns devices, groups, products or upgrade packages is not deleted
// (409 app_in_use): they would be left without an owner, reachable by no
// app; the app deletes them first.
func (p *Platform) deleteApp(w http.ResponseWriter, r *http.Request) error {
	if err := p.checkAdmin(r); err != nil {
		return err
	}
	id := pathValue(r, "appId")
	p.appsMu.Lock()
	defer p.appsMu.Unlock()
	if _, ok := p.auth.App(id); !ok {
		return notFound("app_not_found", "no app %q", id)
	}
	if err := p.checkAppEmpty(r.Context(), id); err != nil {
		return err
	}
	if !p.auth.Delete(id) {
		return notFound("app_not_found", "no app %q", id)
	}
	if err := p.saveApps(); err != nil {
		return err
	}
	n, err := p.push.UnsubscribeAll(context.WithoutCancel(r.Context()), push.Filter{AppID: id})
	if err != nil {
		p.logger.Error("removing the subscriptions of a deleted app", "app", id, "err", err)
	}
	p.trust.forget(id)
	p.logger.Info("app deleted", "app", id, "subscriptions", n)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkAppEmpty refuses, with 409 app_in_use, to delete an app that owns
// devices, groups, products or upgrade packages.
func (p *Platform) checkAppEmpty(ctx context.Context, id string) error {
	var held []string
	if n, err := p.countDevices(ctx, id); err != nil {
		return err
	} else if n > 0 {
		held = append(held, fmt.Sprintf("%d devices", n))
	}
	for _, k := range []struct{ kind, what string }{{kindGroup, "groups"}, {kindProduct, "products"}, {kindPackage, "upgrade packages"}} {
		ids, err := p.db.Owners().IDs(ctx, id, k.kind)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			held = append(held, fmt.Sprintf("%d %s", len(ids), k.what))
		}
	}
	if len(held) > 0 {
		return conflict("app_in_use", "app %s still owns %s: delete them with the app's own credentials first, then the app", id, strings.Join(held, ", "))
	}
	return nil
}
