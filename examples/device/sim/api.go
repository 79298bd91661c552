package sim

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// API is a client of the platform's northbound REST API (docs/api.md)
// for what the simulator needs: log in, register devices, learn where
// devices connect, subscribe a webhook. It is safe for concurrent use.
type API struct {
	URL    string       // e.g. "http://127.0.0.1:8743"
	AppID  string       // appId, also the app_key header
	Secret string       // the app's secret
	HTTP   *http.Client // nil means a client with a 30 s timeout

	mu    sync.Mutex
	token string
}

// DeviceInfo is the deviceInfo of a device registration.
type DeviceInfo struct {
	ManufacturerID string `json:"manufacturerId"`
	DeviceType     string `json:"deviceType"`
	Model          string `json:"model"`
	ProtocolType   string `json:"protocolType"`
}

// WaterMeterInfo is the demo water meter's product (profile
// WaterMeter_DozeLabs_WM100).
var WaterMeterInfo = DeviceInfo{ManufacturerID: "DozeLabs", DeviceType: "WaterMeter", Model: "WM100", ProtocolType: "CoAP"}

// Credentials is the answer to a device registration.
type Credentials struct {
	DeviceID   string `json:"deviceId"`
	VerifyCode string `json:"verifyCode"`
	Timeout    int    `json:"timeout"`
	PSK        string `json:"psk"`    // hex
	Secret     string `json:"secret"` // an MQTT device's secret (protocolType MQTT)
}

// Key returns the PSK as bytes.
func (c Credentials) Key() ([]byte, error) {
	k, err := hex.DecodeString(c.PSK)
	if err != nil {
		return nil, fmt.Errorf("sim: psk %q of device %s is not hex: %w", c.PSK, c.DeviceID, err)
	}
	return k, nil
}

func (a *API) client() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Login gets an access token (POST /iocm/app/sec/v1.1.0/login).
func (a *API) Login(ctx context.Context) error {
	form := url.Values{"appId": {a.AppID}, "secret": {a.Secret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.URL, "/")+"/iocm/app/sec/v1.1.0/login", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sim: API URL %q: %w", a.URL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"accessToken"`
	}
	if err := a.do(req, "POST /iocm/app/sec/v1.1.0/login", &out); err != nil {
		return err
	}
	if out.AccessToken == "" {
		return &APIError{Call: "POST /iocm/app/sec/v1.1.0/login", Status: 200, Code: "no-token", Desc: "the answer has no accessToken"}
	}
	a.mu.Lock()
	a.token = out.AccessToken
	a.mu.Unlock()
	return nil
}

// RegisterDevice registers nodeID (POST
// /iocm/app/reg/v1.1.0/deviceCredentials). psk, when not empty, asks for
// that key (hex). A 429 answer is retried after a short wait until ctx
// ends.
func (a *API) RegisterDevice(ctx context.Context, nodeID string, info DeviceInfo, psk string) (Credentials, error) {
	body := map[string]any{"nodeId": nodeID, "deviceInfo": info}
	if psk != "" {
		body["psk"] = psk
	}
	var out Credentials
	err := a.call(ctx, http.MethodPost, "/iocm/app/reg/v1.1.0/deviceCredentials", body, &out)
	return out, err
}

// Subscribe subscribes callbackURL to notifyType (POST
// /iocm/app/sub/v1.2.0/subscriptions).
func (a *API) Subscribe(ctx context.Context, notifyType, callbackURL string) error {
	return a.call(ctx, http.MethodPost, "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": notifyType, "callbackUrl": callbackURL}, nil)
}

// DeviceAddress is a socket devices connect to. Host is empty when the
// platform listens on every address.
type DeviceAddress struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// DeviceAddresses asks the platform where devices connect (GET
// /doze/v1/deviceAddresses): "coap", "coaps", "bootstrap" and
// "bootstrapDtls", each present when that socket is on.
func (a *API) DeviceAddresses(ctx context.Context) (map[string]DeviceAddress, error) {
	var out map[string]DeviceAddress
	err := a.call(ctx, http.MethodGet, "/doze/v1/deviceAddresses", nil, &out)
	return out, err
}

// call makes an authenticated call; body nil sends none.
func (a *API) call(ctx context.Context, method, path string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var rd io.Reader
		if b != nil {
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.URL, "/")+path, rd)
		if err != nil {
			return fmt.Errorf("sim: API URL %q: %w", a.URL, err)
		}
		a.mu.Lock()
		req.Header.Set("Authorization", "Bearer "+a.token)
		a.mu.Unlock()
		req.Header.Set("app_key", a.AppID)
		if b != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		err = a.do(req, method+" "+path, out)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (a *API) do(req *http.Request, call string, out any) error {
	resp, err := a.client().Do(req)
	if err != nil {
		return fmt.Errorf("sim: %s: %w", call, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("sim: %s: reading the answer: %w", call, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Call: call, Status: resp.StatusCode}
		var body struct {
			Code string `json:"error_code"`
			Desc string `json:"error_desc"`
		}
		if json.Unmarshal(b, &body) == nil {
			e.Code, e.Desc = body.Code, body.Desc
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("sim: %s: answer %.200q: %w", call, b, err)
		}
	}
	return nil
}
