package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const caPath = "/doze/v1/app/callbackCAs"

// postPEM sends body as text to the CA upload and returns the status and
// the answer.
func (tp *testPlatform) postPEM(t *testing.T, body []byte) (int, map[string]any) {
	t.Helper()
	resp := tp.appRequest(t, "POST", caPath, "application/x-pem-file", bytes.NewReader(body))
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	return resp.StatusCode, out
}

// httpsHook is an application server over HTTPS with a self-signed
// certificate (for 127.0.0.1, ::1 and example.com), as the FAQ suggests for
// testing (§5.10). It records the notify types it got.
func httpsHook(t *testing.T) (*httptest.Server, chan string) {
	t.Helper()
	got := make(chan string, 100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		nt, _ := m["notifyType"].(string)
		got <- nt
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, got
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestHTTPSCallbackOwnCA (APP-6): pushes to an HTTPS server with a
// self-signed certificate fail with a readable error in the endpoint
// state until the app uploads the certificate's CA; then they arrive.
// Another app does not see that CA, and its pushes to the same server
// still fail. The CA can be listed and deleted.
func TestHTTPSCallbackOwnCA(t *testing.T) {
	tp, as := twoApps(t)
	srv, got := httpsHook(t)
	hookA, hookB := srv.URL+"/a", srv.URL+"/b"
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceAdded", "callbackUrl": hookA}, nil))
	registerDevice(t, tp, "868333030002911")

	lastError := func(url string) string {
		var eps []map[string]any
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/endpoints", nil, &eps))
		for _, e := range eps {
			if e["callbackUrl"] == url {
				s, _ := e["lastError"].(string)
				return s
			}
		}
		return ""
	}
	var msg string
	require.Eventually(t, func() bool { msg = lastError(hookA); return msg != "" }, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, msg, `is not trusted for application "app-a"`)
	require.Contains(t, msg, "certificate signed by unknown authority")
	require.Empty(t, got, "nothing passed the handshake")

	status, out := tp.postPEM(t, certPEM(srv.Certificate()))
	require.Equal(t, http.StatusCreated, status, "%v", out)
	cas := out["callbackCAs"].([]any)
	require.Len(t, cas, 1)
	id := cas[0].(map[string]any)["id"].(string)
	require.Len(t, id, 64, "the id is the SHA-256 fingerprint")
	select {
	case nt := <-got:
		require.Equal(t, "deviceAdded", nt, "the waiting push went through once the CA was uploaded")
	case <-time.After(20 * time.Second):
		t.Fatalf("no push within 20 s of the CA upload; endpoint error %q", lastError(hookA))
	}
	status, out = tp.postPEM(t, certPEM(srv.Certificate()))
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "ca_exists", out["error_code"])

	as("app-b")
	var list struct {
		TotalCount int `json:"totalCount"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", caPath, nil, &list))
	require.Zero(t, list.TotalCount, "app-b does not see app-a's CA")
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceAdded", "callbackUrl": hookB}, nil))
	name, zipped := demoVariant(t, "WM-B", nil) // the demo products are app-a's (APP-3)
	postProfile(t, tp, name, zipped)
	registerModel(t, tp, "868333030002912", "WM-B")
	require.Eventually(t, func() bool { return strings.Contains(lastError(hookB), `not trusted for application "app-b"`) },
		10*time.Second, 10*time.Millisecond, "app-a's CA does not verify app-b's pushes: %q", lastError(hookB))

	as("app-a")
	require.Equal(t, http.StatusOK, tp.call(t, "GET", caPath, nil, &list))
	require.Equal(t, 1, list.TotalCount)
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", caPath+"/"+id, nil, nil))
	require.Equal(t, http.StatusNotFound, tp.call(t, "DELETE", caPath+"/"+id, nil, nil))
	require.Equal(t, http.StatusOK, tp.call(t, "GET", caPath, nil, &list))
	require.Zero(t, list.TotalCount)
	require.Nil(t, tp.tlsFor("app-a"), "without CAs the app is back to the system roots")
}

// selfSigned makes a CA certificate valid from notBefore to notAfter.
func selfSigned(t *testing.T, cn string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// TestCallbackCARefusals: an upload that is not a valid certificate, holds
// a private key, has expired, holds too many, or would give the app more
// than 16 CAs is refused naming the problem, and nothing is kept.
func TestCallbackCARefusals(t *testing.T) {
	tp := startPlatform(t)
	now := time.Now()
	valid := func(cn string) []byte { return certPEM(selfSigned(t, cn, now.Add(-time.Hour), now.Add(time.Hour))) }
	var nine []byte
	for i := range maxCAsPerCall + 1 {
		nine = append(nine, valid("ca-"+itoa(i))...)
	}
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		code   string
		desc   string
	}{
		{"not PEM", []byte("hello"), 400, "invalid_certificate", "block 1 is not PEM"},
		{"empty", nil, 400, "invalid_certificate", "no certificate"},
		{"private key", append(valid("x"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})...), 400, "invalid_certificate", "block 2 is a EC PRIVATE KEY: never upload a private key"},
		{"not a certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 400, "invalid_certificate", "certificate 1 does not parse"},
		{"expired", certPEM(selfSigned(t, "old", now.Add(-48*time.Hour), now.Add(-24*time.Hour))), 400, "invalid_certificate", "expired on"},
		{"not yet valid", certPEM(selfSigned(t, "new", now.Add(24*time.Hour), now.Add(48*time.Hour))), 400, "invalid_certificate", "valid only from"},
		{"nine at once", nine, 400, "too_many_certificates", "more than 8"},
		{"over 64 KiB", bytes.Repeat([]byte("A"), maxCAUpload+1), 413, "upload_too_large", "64 KiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := tp.postPEM(t, c.body)
			require.Equal(t, c.status, status, "%v", out)
			require.Equal(t, c.code, out["error_code"])
			require.Contains(t, out["error_desc"], c.desc)
		})
	}
	app, _ := tp.auth.App(tp.app.ID)
	require.Empty(t, app.CallbackCAs, "no refused upload kept anything")

	for i := range maxCAsPerApp / 2 {
		status, out := tp.postPEM(t, append(valid("a-"+itoa(i)), valid("b-"+itoa(i))...))
		require.Equal(t, http.StatusCreated, status, "%v", out)
	}
	status, out := tp.postPEM(t, valid("seventeenth"))
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "too_many_certificates", out["error_code"])
	require.Contains(t, out["error_desc"], "may keep 16")

	// An unknown id is 404; after a delete, a JSON body {"certificate": PEM} is taken too.
	var e apiError
	require.Equal(t, http.StatusNotFound, tp.call(t, "DELETE", caPath+"/00ff", nil, &e))
	require.Equal(t, "ca_not_found", e.Code)
	app, _ = tp.auth.App(tp.app.ID)
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", caPath+"/"+app.CallbackCAs[0].ID, nil, nil))
	var added map[string]any
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", caPath, map[string]any{"certificate": string(valid("json"))}, &added))
	require.Equal(t, "CN=json", added["callbackCAs"].([]any)[0].(map[string]any)["subject"])
}

// FuzzParseCAs: any upload gives 1 to 8 certificates or an httpError.
func FuzzParseCAs(f *testing.F) {
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, s := range [][]byte{good, append(good, good...), []byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"), nil, []byte("x")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := parseCAs(b, now)
		if err != nil {
			var he *httpError
			require.ErrorAs(t, err, &he)
			return
		}
		require.NotEmpty(t, certs)
		require.LessOrEqual(t, len(certs), maxCAsPerCall)
	})
}
