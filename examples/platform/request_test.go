package main

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// doRequest sends a request to url with header and returns the answer;
// the caller closes its body.
func doRequest(t testing.TB, method, url string, header http.Header, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	maps.Copy(req.Header, header)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// bearer is the Authorization header of token; none for an empty token.
func bearer(token string) http.Header {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return h
}

// appHeader authenticates as the test app (app_key and its token), with
// contentType when not empty.
func (tp *testPlatform) appHeader(contentType string) http.Header {
	h := bearer(tp.token)
	h.Set("app_key", tp.app.ID)
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return h
}

// appRequest sends body of contentType to the API as the test app and
// returns the answer; the caller closes its body.
func (tp *testPlatform) appRequest(t testing.TB, method, path, contentType string, body io.Reader) *http.Response {
	t.Helper()
	return doRequest(t, method, tp.api.URL+path, tp.appHeader(contentType), body)
}

// jsonCall sends body (when not nil) marshalled as JSON to the API with
// header, decodes the answer into out (when not nil) and returns the
// status.
func (tp *testPlatform) jsonCall(t testing.TB, header http.Header, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	resp := doRequest(t, method, tp.api.URL+path, header, rd)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, out), "%s %s answered %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// postProfile uploads a product profile (name, zipped) as the multipart
// field "profile" and requires 201.
func postProfile(t *testing.T, tp *testPlatform, name string, zipped []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("profile", name)
	require.NoError(t, err)
	fw.Write(zipped)
	require.NoError(t, mw.Close())
	resp := tp.appRequest(t, "POST", "/doze/v1/products", mw.FormDataContentType(), &buf)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}
