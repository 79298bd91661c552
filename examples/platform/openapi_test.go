package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPIMatchesRoutes checks the hand-written openapi.json against the
// routes the platform serves, both ways: every route is documented, and
// every documented operation is served (not answered 404/405).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := assets.ReadFile("openapi.json")
	require.NoError(t, err)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "an OpenAPI 3 document")

	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	served := map[string]bool{"GET /openapi.json": true}
	for _, rt := range routes() {
		served[rt.method+" "+rt.path] = true
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	require.Empty(t, missing, "routes served but not in openapi.json")
	require.Empty(t, extra, "operations in openapi.json that no route serves")

	// Every documented operation reaches a handler: without a token the
	// protected ones answer 401, never 404 or 405.
	tp := startPlatform(t)
	for k := range documented {
		method, path, _ := strings.Cut(k, " ")
		path = strings.NewReplacer("{deviceId}", "d", "{commandId}", "c", "{taskID}", "t", "{subscriptionId}", "s",
			"{devGroupId}", "g", "{manufacturerId}", "m", "{model}", "x", "{fileId}", "f", "{operationId}", "o").Replace(path)
		req := httptest.NewRequest(method, path, nil)
		rec := httptest.NewRecorder()
		tp.Handler().ServeHTTP(rec, req)
		require.NotContains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, rec.Code, "%s answered %d", k, rec.Code)
	}
}

// TestErrorCodesDocumented: every error_code the handlers can answer is in
// the document's enum.
func TestErrorCodesDocumented(t *testing.T) {
	raw, err := assets.ReadFile("openapi.json")
	require.NoError(t, err)
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"error_code"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	enum := map[string]bool{}
	for _, c := range doc.Components.Schemas.Error.Properties.Code.Enum {
		enum[c] = true
	}
	for _, code := range errorCodesInSource(t) {
		if strings.HasPrefix(code, "invalid_") && !enum[code] {
			require.True(t, enum["invalid_<field>"], code)
			continue
		}
		require.True(t, enum[code], "error code %q is not listed in openapi.json", code)
	}
}
