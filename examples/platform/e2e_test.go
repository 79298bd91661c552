package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// testPlatform is a platform on loopback ports with its REST API served by
// httptest, and the demo app and product installed.
type testPlatform struct {
	*Platform
	api    *httptest.Server
	app    App
	token  string
	cancel context.CancelFunc
	done   chan error
}

func startPlatform(t testing.TB, mutate ...func(*Config)) *testPlatform {
	t.Helper()
	return startPlatformWith(t, nil, mutate...)
}

// startPlatformWith is startPlatform calling prepare, when not nil, between
// New and Run.
func startPlatformWith(t testing.TB, prepare func(*Platform), mutate ...func(*Config)) *testPlatform {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.CoAPAddr = "127.0.0.1:0"
	cfg.DTLSAddr = "127.0.0.1:0"
	cfg.MQTTAddr = "127.0.0.1:0"
	for _, m := range mutate {
		m(&cfg)
	}
	p, err := New(cfg, nil)
	require.NoError(t, err)
	if prepare != nil {
		prepare(p)
	}
	require.NoError(t, p.Listen())
	tp := &testPlatform{Platform: p, api: httptest.NewServer(p.Handler()), app: p.auth.Apps()[0], done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	tp.cancel = cancel
	go func() { tp.done <- p.Run(ctx, nil) }()
	t.Cleanup(tp.stop)
	tp.token = tp.login(t)
	return tp
}

func (tp *testPlatform) stop() {
	if tp.cancel == nil {
		return
	}
	tp.cancel()
	<-tp.done
	tp.api.Close()
	tp.Close()
	tp.cancel = nil
}

func (tp *testPlatform) login(t testing.TB) string {
	t.Helper()
	resp, err := http.PostForm(tp.api.URL+"/iocm/app/sec/v1.1.0/login", url.Values{"appId": {tp.app.ID}, "secret": {tp.app.Secret}})
	require.NoError(t, err)
	defer resp.Body.Close()
	var tok tokenAnswer
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, tok.AccessToken)
	return tok.AccessToken
}

// call makes an authenticated API call and decodes the answer into out
// (when not nil); it returns the status.
func (tp *testPlatform) call(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	return tp.jsonCall(t, tp.appHeader("application/json"), method, path, body, out)
}

// sink is an application server receiving pushes.
type sink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []map[string]any
	ids  []string
	more chan struct{}
}

func newSink(t testing.TB) *sink {
	s := &sink{more: make(chan struct{}, 1000)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		s.mu.Lock()
		s.got = append(s.got, m)
		s.ids = append(s.ids, r.Header.Get("webhook-id"))
		s.mu.Unlock()
		select { // a wake-up for wait, which looks at every push received
		case s.more <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// wait waits until match is true for a received push, and returns it.
func (s *sink) wait(t *testing.T, what string, match func(m map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		for _, m := range s.got {
			if match(m) {
				s.mu.Unlock()
				return m
			}
		}
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("no push %s within 30s; got %v", what, s.got)
		}
	}
}

// meter is a simulated water meter on the lwm2m client: it reports through
// /19/0/0 and answers commands written to /19/1/0 with the codec.
type meter struct {
	client *transport.Client
	codec  *codec.Declarative
	cmds   chan *codec.Command
}

func newMeter(t *testing.T, tp *testPlatform, imei string, psk []byte) *meter {
	t.Helper()
	return newMeterAt(t, tp.lwm.DTLSAddr().String(), imei, psk)
}

// newMeterAt is newMeter for a platform whose DTLS listener is at addr.
func newMeterAt(t *testing.T, addr, imei string, psk []byte) *meter {
	t.Helper()
	return newMeterWith(t, meterConfig(addr, imei, psk))
}

// meterConfig is the demo meter's client configuration: queue mode, the
// objects of the demo product.
func meterConfig(addr, imei string, psk []byte) transport.ClientConfig {
	return transport.ClientConfig{Server: addr, Endpoint: imei, Key: psk,
		Queue: true, Objects: "</1/0>,</3/0>,</19/0>,</19/1>"}
}

// newMeterWith registers a demo meter with client configuration cfg and
// waits until the platform observes its data resource.
func newMeterWith(t testing.TB, cfg transport.ClientConfig) *meter {
	t.Helper()
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	c, err := transport.NewClient(cfg)
	require.NoError(t, err)
	m := &meter{client: c, codec: cd, cmds: make(chan *codec.Command, 10)}
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) {
		return transport.Content{Format: lwm2m.FormatOpaque}, nil
	}})
	c.Handle("/19/1/0", transport.Resource{Write: func(ct transport.Content) error {
		msg, err := cd.DecodeDownlink(ct.Payload)
		if err != nil {
			return err
		}
		if cmd, ok := msg.(*codec.Command); ok {
			m.cmds <- cmd
		}
		return nil
	}})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	require.Eventually(t, func() bool { return c.Observed("/19/0/0") }, 20*time.Second, 10*time.Millisecond,
		"the platform observes /19/0/0 after registration (LWM-5)")
	return m
}

func (m *meter) uplink(t *testing.T, msg codec.Message) {
	t.Helper()
	b, err := m.codec.Encode(msg)
	require.NoError(t, err)
	// Generous: a confirmable notification waits for the node's durable
	// ACK, which on a loaded CI machine with three nodes can take long.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, m.client.Notify(ctx, "/19/0/0", transport.Content{Format: lwm2m.FormatOpaque, Payload: b}))
}

func registerDevice(t testing.TB, tp *testPlatform, imei string) (deviceID string, psk []byte) {
	t.Helper()
	var reg struct {
		DeviceID string `json:"deviceId"`
		PSK      string `json:"psk"`
	}
	status := tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": imei, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType,
			"model": demoModel, "protocolType": "LWM2M", "name": "meter " + imei}}, &reg)
	require.Equal(t, http.StatusOK, status)
	psk, err := hex.DecodeString(reg.PSK)
	require.NoError(t, err)
	require.Len(t, psk, 16, "a 16-byte PSK is generated (REG-1)")
	return reg.DeviceID, psk
}

// TestWalkthrough runs README's walkthrough in-process on loopback: log in,
// subscribe, register a device, the device connects over DTLS and reports,
// the report arrives at the webhook and in history, a command to the PSM
// device goes PENDING → SENT → DELIVERED → SUCCESSFUL.
func TestWalkthrough(t *testing.T) { walkthrough(t, startPlatform(t), newSink(t)) }

// TestWalkthroughPostgres runs the walkthrough on a platform whose store
// is a PostgreSQL database (-store postgres://…; a schema of its own). A
// forwarding rule made before it, kept in the database, sends the
// walkthrough's Battery reports to the app's ruleEvent webhook.
func TestWalkthroughPostgres(t *testing.T) {
	dsn := pgStore(t)
	tp := startPlatform(t, func(c *Config) { c.Store, c.NodeID = dsn, "walk-1" })
	// On a shared store the node claims its work: the walkthrough's
	// pushes and forwarding messages go out through claims, one node
	// sweeps deadlines.
	require.Equal(t, "walk-1", tp.push.Config().Node)
	require.Equal(t, "walk-1", tp.reg.Config().Node)
	require.Equal(t, "walk-1", tp.fwd.Config().Delivery.Node)

	hook := newSink(t) // an app's subscriptions share one host and port
	subscribe(t, tp, hook, "ruleEvent")
	var r ruleAnswer
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/doze/v1/rules",
		map[string]any{"name": "battery", "condition": `serviceId = "Battery" AND data.batteryLevel < 90`,
			"targets": []map[string]any{{"type": "webhook"}}}, &r))
	var list struct {
		TotalCount int          `json:"totalCount"`
		Rules      []ruleAnswer `json:"rules"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/rules", nil, &list))
	require.Equal(t, 1, list.TotalCount)
	require.Equal(t, r.RuleID, list.Rules[0].RuleID)

	walkthrough(t, tp, hook)

	ev := hook.wait(t, "ruleEvent of a walkthrough report", func(p map[string]any) bool {
		return p["notifyType"] == "ruleEvent" && p["ruleId"] == r.RuleID
	})
	svcs, _ := ev["services"].([]any)
	require.Len(t, svcs, 1, "only the matching service: %v", ev)
	require.Equal(t, "Battery", svcs[0].(map[string]any)["serviceId"])
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/doze/v1/rules/"+r.RuleID, nil, nil))
}

// walkthrough pushes to hook's subscriptions.
func walkthrough(t *testing.T, tp *testPlatform, hook *sink) {
	var sub map[string]any
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceDataChanged", "callbackUrl": hook.srv.URL + "/push"}, &sub))
	require.NotEmpty(t, sub["subscriptionId"])
	subscribe(t, tp, hook, "bindDevice")

	const imei = "868333030000001"
	id, psk := registerDevice(t, tp, imei)
	var dev deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
	require.Equal(t, "INACTIVE", dev.DeviceInfo.Status)

	m := newMeter(t, tp, "urn:imei:"+imei, psk)
	hook.wait(t, "bindDevice", func(p map[string]any) bool { return p["notifyType"] == "bindDevice" && p["deviceId"] == id })
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
	require.Equal(t, "ONLINE", dev.DeviceInfo.Status, "binding makes the device ONLINE (REG-3)")

	m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 12.345, "flowRate": 1.5, "pulseCount": 77}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 87}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
	}})
	push := hook.wait(t, "deviceDataChanged for Battery", func(p map[string]any) bool {
		s, _ := p["service"].(map[string]any)
		return p["notifyType"] == "deviceDataChanged" && s["serviceId"] == "Battery"
	})
	require.Equal(t, id, push["deviceId"])
	require.EqualValues(t, 87, push["service"].(map[string]any)["data"].(map[string]any)["batteryLevel"])
	keys := []string{}
	for k := range push {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{"notifyType", "requestId", "deviceId", "gatewayId", "service"}, keys)

	var hist historyAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &hist))
	require.Equal(t, 3, hist.TotalCount, "one history record per service (STO-2)")

	var shadow struct {
		ShadowInfo []struct {
			ServiceID string `json:"serviceId"`
			Reported  struct {
				Data map[string]any `json:"data"`
			} `json:"reported"`
		} `json:"shadowInfo"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/shadow/v1.5.0/devices/"+id, nil, &shadow))
	require.Len(t, shadow.ShadowInfo, 3)

	// A command to the PSM device: it is awake right after its report.
	var cmd struct {
		CommandID string `json:"commandId"`
		Status    string `json:"status"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "callbackUrl": hook.srv.URL + "/cmd",
		"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}},
	}, &cmd))
	require.Equal(t, "PENDING", cmd.Status)

	var got *codec.Command
	select {
	case got = <-m.cmds:
	case <-time.After(30 * time.Second):
		t.Fatal("the device did not receive the command within 30 s")
	}
	require.Equal(t, "SET_REPORT_PERIOD", got.Cmd)
	require.EqualValues(t, 600, toInt(got.Paras["period"]))
	hook.wait(t, "DELIVERED", func(p map[string]any) bool { return resultCode(p) == "DELIVERED" })

	m.uplink(t, &codec.Response{Identifier: "0", MsgType: codec.MsgResponse, Mid: got.Mid, Body: map[string]any{"result": 0}})
	for _, st := range []string{"SENT", "DELIVERED", "SUCCESSFUL"} {
		p := hook.wait(t, st, func(p map[string]any) bool { return resultCode(p) == st && p["commandId"] == cmd.CommandID })
		require.Equal(t, id, p["deviceId"])
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &struct{}{}))
	var list struct {
		Data []struct {
			CommandID   string `json:"commandId"`
			Status      string `json:"status"`
			IssuedTimes int    `json:"issuedTimes"`
		} `json:"data"`
	}
	tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list)
	require.Len(t, list.Data, 1)
	require.Equal(t, "SUCCESSFUL", list.Data[0].Status)
	require.Equal(t, 1, list.Data[0].IssuedTimes)

	// Desired values (STO-3) go out as a command when the device next wakes.
	var e apiError
	require.Equal(t, http.StatusBadRequest, tp.call(t, "PUT", "/iocm/app/shadow/v1.5.0/devices/"+id,
		map[string]any{"serviceDesireds": []any{map[string]any{"serviceId": "Meter", "desired": map[string]any{"nope": 1}}}}, &e))
	require.Equal(t, "desired_mismatch", e.Code)
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/iocm/app/shadow/v1.5.0/devices/"+id,
		map[string]any{"serviceDesireds": []any{map[string]any{"serviceId": "Meter", "desired": map[string]any{"period": 120}}}}, nil))
	m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 12.5, "flowRate": 1.5, "pulseCount": 78}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 86}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
	}})
	select {
	case got = <-m.cmds:
	case <-time.After(30 * time.Second):
		t.Fatal("the desired value did not reach the device within 30 s")
	}
	require.Equal(t, "SET_REPORT_PERIOD", got.Cmd)
	require.EqualValues(t, 120, toInt(got.Paras["period"]))
	// The platform clears them right after queueing the command, which
	// may reach the device first.
	require.Eventually(t, func() bool {
		var after struct {
			ShadowInfo []struct {
				ServiceID string          `json:"serviceId"`
				Desired   json.RawMessage `json:"desired"`
			} `json:"shadowInfo"`
		}
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/shadow/v1.5.0/devices/"+id, nil, &after))
		for _, s := range after.ShadowInfo {
			if string(s.Desired) != "null" {
				return false
			}
		}
		return len(after.ShadowInfo) > 0
	}, 10*time.Second, 20*time.Millisecond, "desired values are cleared once sent")

	// Every push carried a webhook-id (PSH-5).
	hook.mu.Lock()
	for i, h := range hook.ids {
		require.NotEmpty(t, h, "push %d has no webhook-id", i)
	}
	hook.mu.Unlock()
}

func resultCode(p map[string]any) string {
	r, _ := p["result"].(map[string]any)
	s, _ := r["resultCode"].(string)
	return s
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	case int64:
		return n
	case uint64:
		return int64(n)
	case int:
		return int64(n)
	}
	panic(fmt.Sprintf("not a number: %T %v", v, v))
}

// TestAPIErrors checks the error shape and a few rules at the API edge.
func TestAPIErrors(t *testing.T) {
	tp := startPlatform(t)
	var e apiError
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": "1", "deviceInfo": map[string]any{"manufacturerId": "Nobody", "deviceType": "X", "model": "Y", "protocolType": "LWM2M"}}, &e))
	require.Equal(t, "unknown_product", e.Code)
	require.Contains(t, strings.ToLower(e.Desc), "product")

	registerDevice(t, tp, "868333030000002")
	require.Equal(t, http.StatusConflict, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": "urn:imei:868333030000002", "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
			"deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}}, &e), "urn:imei:X is the same node as X (LWM-2, REG-1)")

	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceDataChanged", "callbackUrl": "http://127.0.0.1:9999"}, &e))
	require.Equal(t, "callback_url_no_path", e.Code)
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceDataChanged", "callbackUrl": "http://127.0.0.1/x"}, &e))
	require.Equal(t, "callback_url_no_port", e.Code)

	// The product is locked while a device uses it (PRF-7).
	require.Equal(t, http.StatusConflict, tp.call(t, "DELETE", "/doze/v1/products/"+demoManufacturerID+"/"+demoModel, nil, &e))
	require.Equal(t, "product_in_use", e.Code)

	// A token of the right shape but unknown → 401 with the error body.
	tp.token = "nope"
	require.Equal(t, http.StatusUnauthorized, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices", nil, &e))
	require.Equal(t, "unauthorized", e.Code)
}
