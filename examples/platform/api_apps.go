package main

// HTTPS callbacks with the application's own CA (APP-6, FAQ §5.5, §5.10,
// §5.11). An application uploads the CA certificates (PEM) that sign its
// callback servers' certificates; its pushes then trust the system roots
// plus those CAs, with the host name checked as always. The CAs are kept
// with the app in apps.json.

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// CA upload limits (APP-6, our choice).
const (
	maxCAUpload   = 64 << 10 // bytes of one upload
	maxCAsPerCall = 8        // certificates in one upload
	maxCAsPerApp  = 16       // certificates an app keeps
)

// CallbackCA is a CA certificate an app trusts for its HTTPS callbacks.
type CallbackCA struct {
	ID  string `json:"id"`  // the SHA-256 fingerprint of the DER certificate, hex
	PEM string `json:"pem"` // the certificate
}

// caJSON is a CallbackCA as the API shows it.
type caJSON struct {
	ID        string `json:"id"`
	Subject   string `json:"subject"`
	Issuer    string `json:"issuer"`
	NotBefore string `json:"notBefore"`
	NotAfter  string `json:"notAfter"`
	IsCA      bool   `json:"isCA"`
	SHA256    string `json:"sha256"`
}

func caView(id string, c *x509.Certificate) caJSON {
	return caJSON{ID: id, Subject: c.Subject.String(), Issuer: c.Issuer.String(), NotBefore: apiTime(c.NotBefore),
		NotAfter: apiTime(c.NotAfter), IsCA: c.IsCA, SHA256: id}
}

// parseCAs reads the certificates of a PEM upload. Every block must be a
// CERTIFICATE that parses and is valid at now; anything else is refused
// naming the block.
func parseCAs(b []byte, now time.Time) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(b)
	for n := 1; len(rest) > 0; n++ {
		blk, r := pem.Decode(rest)
		if blk == nil {
			return nil, badRequest("invalid_certificate", "block %d is not PEM: send certificates as -----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----", n)
		}
		rest = bytes.TrimSpace(r)
		switch {
		case strings.Contains(blk.Type, "PRIVATE KEY"):
			return nil, badRequest("invalid_certificate", "block %d is a %s: never upload a private key; the platform needs only the CA certificate", n, blk.Type)
		case blk.Type != "CERTIFICATE":
			return nil, badRequest("invalid_certificate", "block %d is a %q; only CERTIFICATE blocks are taken", n, blk.Type)
		case len(certs) == maxCAsPerCall:
			return nil, badRequest("too_many_certificates", "the upload holds more than %d certificates, the most one call takes", maxCAsPerCall)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, badRequest("invalid_certificate", "certificate %d does not parse: %v", n, err)
		}
		if now.After(c.NotAfter) {
			return nil, badRequest("invalid_certificate", "certificate %d (%s) expired on %s", n, c.Subject, apiTime(c.NotAfter))
		}
		if now.Before(c.NotBefore) {
			return nil, badRequest("invalid_certificate", "certificate %d (%s) is valid only from %s", n, c.Subject, apiTime(c.NotBefore))
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, badRequest("invalid_certificate", "the upload holds no certificate: send the CA certificate as PEM")
	}
	return certs, nil
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// readCAUpload reads the PEM of an upload: the body as is, or the
// "certificate" member of a JSON body.
func readCAUpload(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCAUpload))
	if isMaxBytes(err) {
		return nil, tooLarge("the certificate upload", maxCAUpload)
	}
	if err != nil {
		return nil, badRequest("bad_body", "reading the request body: %v", err)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		var body struct {
			Certificate string `json:"certificate"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, badRequest("bad_json", `send {"certificate":"<PEM>"} or the PEM itself: %v`, err)
		}
		return []byte(body.Certificate), nil
	}
	return b, nil
}

// addCallbackCAs stores the uploaded CA certificates of the calling app.
func (p *Platform) addCallbackCAs(w http.ResponseWriter, r *http.Request) error {
	b, err := readCAUpload(w, r)
	if err != nil {
		return err
	}
	certs, err := parseCAs(b, time.Now())
	if err != nil {
		return err
	}
	id := appOf(r)
	var refused error
	app, ok := p.auth.Change(id, func(a *App) {
		have := map[string]bool{}
		for _, ca := range a.CallbackCAs {
			have[ca.ID] = true
		}
		var add []CallbackCA
		for i, c := range certs {
			fp := fingerprint(c)
			if have[fp] {
				refused = conflict("ca_exists", "certificate %d (%s) is already a callback CA of this app, id %s", i+1, c.Subject, fp)
				return
			}
			have[fp] = true
			add = append(add, CallbackCA{ID: fp, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))})
		}
		if n := len(a.CallbackCAs) + len(add); n > maxCAsPerApp {
			refused = conflict("too_many_certificates", "the app would have %d callback CAs; it may keep %d: delete some first", n, maxCAsPerApp)
			return
		}
		a.CallbackCAs = append(slices.Clone(a.CallbackCAs), add...)
	})
	if !ok {
		return notFound("app_not_found", "app %s is not known", id)
	}
	if refused != nil {
		return refused
	}
	if err := p.saveApps(); err != nil {
		return err
	}
	p.trust.forget(id)
	out := make([]caJSON, len(certs))
	for i, c := range certs {
		out[i] = caView(fingerprint(c), c)
	}
	p.logger.Info("callback CAs added", "app", id, "added", len(certs), "total", len(app.CallbackCAs))
	writeJSON(w, http.StatusCreated, map[string]any{"callbackCAs": out})
	return nil
}

// listCallbackCAs lists the calling app's callback CAs.
func (p *Platform) listCallbackCAs(w http.ResponseWriter, r *http.Request) error {
	app, ok := p.auth.App(appOf(r))
	if !ok {
		return notFound("app_not_found", "app %s is not known", appOf(r))
	}
	out := []caJSON{}
	for _, ca := range app.CallbackCAs {
		if c := caCert(ca); c != nil {
			out = append(out, caView(ca.ID, c))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(out), "callbackCAs": out})
	return nil
}

// deleteCallbackCA deletes one of the calling app's callback CAs.
func (p *Platform) deleteCallbackCA(w http.ResponseWriter, r *http.Request) error {
	id, caID := appOf(r), strings.ToLower(pathValue(r, "id"))
	found := false
	_, ok := p.auth.Change(id, func(a *App) {
		i := slices.IndexFunc(a.CallbackCAs, func(ca CallbackCA) bool { return ca.ID == caID })
		if i >= 0 {
			found = true
			a.CallbackCAs = slices.Delete(slices.Clone(a.CallbackCAs), i, i+1)
		}
	})
	if !ok || !found {
		return notFound("ca_not_found", "app %s has no callback CA %q; GET /doze/v1/app/callbackCAs lists them", id, caID)
	}
	if err := p.saveApps(); err != nil {
		return err
	}
	p.trust.forget(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// caCert parses a stored CA; nil when it no longer parses (logged by the
// trust that skips it).
func caCert(ca CallbackCA) *x509.Certificate {
	blk, _ := pem.Decode([]byte(ca.PEM))
	if blk == nil {
		return nil
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil
	}
	return c
}

// appTrust caches each app's TLS settings for its HTTPS callbacks: the
// system roots plus the app's CAs. The push engine keeps one transport per
// *tls.Config, so an app's settings are built once and rebuilt only when
// its CAs change (forget).
type appTrust struct {
	mu   sync.Mutex
	cfgs map[string]*tls.Config // app → settings; absent: not built yet
}

// forget drops app's settings: its CAs changed.
func (t *appTrust) forget(app string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.cfgs, app)
}

// tlsFor is push.Config.TLSConfig: nil (the system roots) for an app
// without CAs, else the system roots plus its CAs, with TLS 1.2 at least
// and the host name verified.
func (p *Platform) tlsFor(app string) *tls.Config {
	t := &p.trust
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.cfgs[app]; ok {
		return c
	}
	a, _ := p.auth.App(app)
	var c *tls.Config
	if len(a.CallbackCAs) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			p.logger.Warn("no system roots for HTTPS callbacks; only the app's own CAs are trusted", "app", app, "err", err)
			pool = x509.NewCertPool()
		}
		for _, ca := range a.CallbackCAs {
			cert := caCert(ca)
			if cert == nil {
				p.logger.Error("a stored callback CA does not parse; skipped", "app", app, "id", ca.ID)
				continue
			}
			pool.AddCert(cert)
		}
		c = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if t.cfgs == nil {
		t.cfgs = map[string]*tls.Config{}
	}
	t.cfgs[app] = c
	return c
}
