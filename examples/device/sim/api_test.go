package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/examples/device/sim"
)

// TestAPIRegisterDevice: RegisterDevice sends the token, app_key, nodeId,
// deviceInfo and the asked-for psk (docs/api.md deviceCredentials), retries a
// 429 (APP-1: 100 calls/s per app) and returns the key; other error
// answers are *APIError with the body's code.
func TestAPIRegisterDevice(t *testing.T) {
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /iocm/app/sec/v1.1.0/login", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("appId") != "app1" || r.FormValue("secret") != "s" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error_code":"100208","error_desc":"appId or secret is not right"}`)
			return
		}
		fmt.Fprint(w, `{"accessToken":"tok","expiresIn":3600}`)
	})
	mux.HandleFunc("POST /iocm/app/reg/v1.1.0/deviceCredentials", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		var req struct {
			NodeID     string         `json:"nodeId"`
			DeviceInfo sim.DeviceInfo `json:"deviceInfo"`
			PSK        string         `json:"psk"`
		}
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("app_key") != "app1" ||
			json.NewDecoder(r.Body).Decode(&req) != nil || req.DeviceInfo != sim.WaterMeterInfo || req.PSK != "00ff" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error_code":"100022","error_desc":"bad request"}`)
			return
		}
		if req.NodeID == "dup" {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error_code":"100416","error_desc":"the device has already been bound"}`)
			return
		}
		fmt.Fprintf(w, `{"deviceId":"d1","verifyCode":"%s","timeout":180,"psk":"00ff"}`, req.NodeID)
	})
	srv := httptest.NewServer(mux)
	tr := &http.Transport{}
	defer func() { srv.Close(); tr.CloseIdleConnections() }()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx := context.Background()

	bad := &sim.API{URL: srv.URL, AppID: "app1", Secret: "wrong", HTTP: hc}
	err := bad.Login(ctx)
	require.ErrorIs(t, err, sim.ErrAPI)
	var ae *sim.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusUnauthorized, ae.Status)
	require.Equal(t, "100208", ae.Code)

	api := &sim.API{URL: srv.URL, AppID: "app1", Secret: "s", HTTP: hc}
	require.NoError(t, api.Login(ctx))
	cr, err := api.RegisterDevice(ctx, "868333030000401", sim.WaterMeterInfo, "00ff")
	require.NoError(t, err)
	require.Equal(t, int32(3), calls.Load(), "two 429 answers retried")
	key, err := cr.Key()
	require.NoError(t, err)
	require.Equal(t, []byte{0x00, 0xff}, key)

	_, err = api.RegisterDevice(ctx, "dup", sim.WaterMeterInfo, "00ff")
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusConflict, ae.Status)
	require.EqualError(t, err, "sim: POST /iocm/app/reg/v1.1.0/deviceCredentials: HTTP 409 (100416: the device has already been bound)")

	_, err = sim.Credentials{DeviceID: "d1", PSK: "zz"}.Key()
	require.ErrorContains(t, err, `psk "zz" of device d1 is not hex`)
}
