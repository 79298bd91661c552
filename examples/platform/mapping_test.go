package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

// tempSensor is a standard LwM2M 1.1 temperature sensor (IPSO object 3303)
// without object 19, as strict as OMA LwM2M 1.1 Core §6.3 and TS Transport
// §6.4 make it: a write of a resource is one value at that path in a
// format that names it, an execute of 5605 takes no arguments.
type tempSensor struct {
	client *transport.Client

	mu      sync.Mutex
	value   float64
	appType string
	resets  int
	calls   []string
}

func (s *tempSensor) record(c string) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

func (s *tempSensor) callList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *tempSensor) did(c string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.calls {
		if x == c {
			return true
		}
	}
	return false
}

// text answers a read of a single resource in plain text (content format
// 0), which every LwM2M client has.
func (s *tempSensor) text(path string, v func() string) transport.Resource {
	return transport.Resource{Read: func() (transport.Content, error) {
		s.record("read " + path)
		return transport.Content{Format: lwm2m.FormatText, Payload: []byte(v())}, nil
	}}
}

func registerTempSensor(t *testing.T, tp *testPlatform, imei string) (string, []byte) {
	t.Helper()
	var reg struct {
		DeviceID string `json:"deviceId"`
		PSK      string `json:"psk"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": imei, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoTempDeviceType,
			"model": demoTempModel, "protocolType": "LWM2M"}}, &reg))
	psk, err := hex.DecodeString(reg.PSK)
	require.NoError(t, err)
	return reg.DeviceID, psk
}

func startTempSensor(t *testing.T, tp *testPlatform, imei string, psk []byte) *tempSensor {
	t.Helper()
	s := &tempSensor{value: 21.5, appType: "indoor"}
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: imei, Key: psk,
		Objects: "</1/0>,</3/0>,</3303/0>"})
	require.NoError(t, err)
	num := func(f func() float64) func() string {
		return func() string { s.mu.Lock(); defer s.mu.Unlock(); return fmt.Sprint(f()) }
	}
	c.Handle("/3303/0/5700", s.text("/3303/0/5700", num(func() float64 { return s.value })))
	c.Handle("/3303/0/5601", s.text("/3303/0/5601", num(func() float64 { return 18.25 })))
	c.Handle("/3303/0/5602", s.text("/3303/0/5602", num(func() float64 { return 24 })))
	c.Handle("/3303/0/5701", s.text("/3303/0/5701", func() string { return "Cel" }))
	c.Handle("/3303/0/5750", transport.Resource{
		Read: s.text("/3303/0/5750", func() string { s.mu.Lock(); defer s.mu.Unlock(); return s.appType }).Read,
		Write: func(ct transport.Content) error {
			recs, err := lwm2m.Decode(ct.Format, lwm2m.MustPath("/3303/0/5750"), ct.Payload, nil)
			if err != nil {
				return err
			}
			if len(recs) != 1 || recs[0].Path.String() != "/3303/0/5750" || recs[0].Value.Type() != lwm2m.TypeString {
				return fmt.Errorf("a write of /3303/0/5750 takes one String value at that path, got %v", recs)
			}
			s.mu.Lock()
			s.appType = recs[0].Value.String()
			s.mu.Unlock()
			s.record("write /3303/0/5750 " + recs[0].Value.String())
			return nil
		}})
	c.Handle("/3303/0/5605", transport.Resource{Execute: func(args []byte) error {
		if len(args) > 0 {
			return fmt.Errorf("5605 takes no arguments, got %q", args)
		}
		s.mu.Lock()
		s.resets++
		s.mu.Unlock()
		s.record("execute /3303/0/5605")
		return nil
	}})
	c.Handle("/3/0", transport.Resource{Read: func() (transport.Content, error) {
		b, err := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.MustPath("/3/0"), []lwm2m.Record{
			{Path: lwm2m.MustPath("/3/0/0"), Value: lwm2m.StringValue("Doze Labs")}})
		return transport.Content{Format: lwm2m.FormatSenMLCBOR, Payload: b}, err
	}})
	s.client = c
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	return s
}

// temperatureOf matches a deviceDataChanged of the device's Temperature
// service whose data has property = want.
func temperatureOf(id, property string, want any) func(m map[string]any) bool {
	return func(m map[string]any) bool {
		if m["notifyType"] != "deviceDataChanged" || m["deviceId"] != id {
			return false
		}
		svc, _ := m["service"].(map[string]any)
		data, _ := svc["data"].(map[string]any)
		return svc["serviceId"] == "Temperature" && data[property] == want
	}
}

// TestMappedTemperature (LWM-12): a standard temperature sensor on the demo
// product TS3303, over DTLS. Its mapped resources are observed at
// registration; the Observe answers, a notification and a Send (/dp, SenML
// JSON as RFC 8428 writes it) arrive as deviceDataChanged at the webhook
// and in history; a Send's unmapped value is said on the device log; the
// product's commands become a Write of 5750 and an Execute of 5605.
func TestMappedTemperature(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	const imei = "868333030002101"
	id, psk := registerTempSensor(t, tp, imei)
	s := startTempSensor(t, tp, imei, psk)

	// Registration: the mapped resources are observed, the rest read once.
	require.Eventually(t, func() bool {
		return s.client.Observed("/3303/0/5700") && s.client.Observed("/3303/0/5601") && s.client.Observed("/3303/0/5602") &&
			s.did("read /3303/0/5701") && s.did("read /3303/0/5750")
	}, 20*time.Second, 10*time.Millisecond, "the platform observes 5700, 5601, 5602 and reads 5701, 5750 after the registration")
	require.False(t, s.client.Observed("/3303/0/5701"), `"observe": false resources are read, not observed`)
	hook.wait(t, "of the Observe answer of 5700", temperatureOf(id, "temperature", 21.5))
	hook.wait(t, "of the read of 5701", temperatureOf(id, "units", "Cel"))
	hook.wait(t, "of the Observe answer of 5602", temperatureOf(id, "maxMeasured", 24.0))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A notification.
	require.NoError(t, s.client.Notify(ctx, "/3303/0/5700", transport.Content{Format: lwm2m.FormatText, Payload: []byte("22.25")}))
	hook.wait(t, "of the notification", temperatureOf(id, "temperature", 22.25))

	// A Send with a mapped value, and one no mapping takes.
	send := `[{"bn":"/3303/0/","n":"5700","v":23.5},{"n":"5701","vs":"Cel"},{"bn":"/3/0/","n":"9","v":87}]`
	require.NoError(t, s.client.Send(ctx, transport.Content{Format: lwm2m.FormatSenMLJSON, Payload: []byte(send)}))
	got := hook.wait(t, "of the Send", temperatureOf(id, "temperature", 23.5))
	require.Equal(t, map[string]any{"temperature": 23.5, "units": "Cel"}, got["service"].(map[string]any)["data"],
		"the Send's mapped values are one report")
	require.Eventually(t, func() bool { return hasLog(tp, id, "maps no property to /3/0/9") }, 10*time.Second, 10*time.Millisecond,
		"the unmapped /3/0/9 of the Send is said on the device log")

	// History and shadow hold them.
	var hist historyAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &hist))
	var temps []any
	for _, d := range hist.DTOs {
		if v, ok := d.Data["temperature"]; ok {
			require.Equal(t, "Temperature", d.ServiceID)
			temps = append(temps, v)
		}
	}
	require.Subset(t, temps, []any{21.5, 22.25, 23.5}, "history holds every mapped temperature")

	// A value that breaks the model (min -273.15) is no report.
	require.NoError(t, s.client.Notify(ctx, "/3303/0/5700", transport.Content{Format: lwm2m.FormatText, Payload: []byte("-300")}))
	require.Eventually(t, func() bool { return hasLog(tp, id, "does not fit the product model") }, 10*time.Second, 10*time.Millisecond)

	// Commands become a Write and an Execute, and end SUCCESSFUL.
	var cmd struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "command": map[string]any{"serviceId": "Temperature", "method": "SET_APPLICATION_TYPE",
			"paras": map[string]any{"applicationType": "outdoor"}}}, &cmd))
	require.Eventually(t, func() bool { return commandStatus(t, tp, id, cmd.CommandID) == "SUCCESSFUL" }, 20*time.Second, 20*time.Millisecond)
	require.True(t, s.did("write /3303/0/5750 outdoor"), "the device got the write: %v", s.callList())

	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "command": map[string]any{"serviceId": "Temperature", "method": "RESET_MIN_MAX",
			"paras": map[string]any{"now": true}}}, &cmd))
	require.Eventually(t, func() bool { return commandStatus(t, tp, id, cmd.CommandID) == "SUCCESSFUL" }, 20*time.Second, 20*time.Millisecond)
	require.True(t, s.did("execute /3303/0/5605"))

	// A read through the API of a mapped resource is a report too.
	s.mu.Lock()
	s.value = 19.75
	s.mu.Unlock()
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/devices/"+id+"/lwm2m/3303/0/5700", nil, nil))
	hook.wait(t, "of the API read", temperatureOf(id, "temperature", 19.75))
}

// mappingUpload is a multipart product upload of the demo temperature
// sensor's JSON model with its model renamed, and a mapping.
func mappingUpload(t *testing.T, model string, mapping []byte) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("profile", model+".json")
	require.NoError(t, err)
	fw.Write(bytes.Replace(demoTempProfile, []byte(`"model": "TS3303"`), []byte(`"model": "`+model+`"`), 1))
	fw, err = mw.CreateFormFile("mapping", "mapping.json")
	require.NoError(t, err)
	fw.Write(mapping)
	require.NoError(t, mw.Close())
	r := httptest.NewRequest("POST", "/doze/v1/products", &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

// TestMappingUpload (LWM-12): a mapping that does not fit its product is
// refused with invalid_mapping and every problem with its line; a good
// one is added (hasMapping) and comes back after a restart.
func TestMappingUpload(t *testing.T) {
	dir := t.TempDir()
	tp := startPlatform(t, func(c *Config) { c.DataDir = dir })

	bad := []byte("{\"properties\": [\n {\"serviceId\": \"Temperature\", \"property\": \"units\", \"resource\": \"/3303/0/5700\"},\n" +
		" {\"serviceId\": \"Temperature\", \"property\": \"temperature\", \"resource\": \"/3303/0\"}]}")
	err := tp.addProduct(httptest.NewRecorder(), asApp(mappingUpload(t, "TS1", bad), tp.app.ID))
	var pe *problemsError
	require.ErrorAs(t, err, &pe, "addProduct with a bad mapping")
	require.Equal(t, "invalid_mapping", pe.Code)
	problems := pe.Problems.([]profile.Problem)
	require.Len(t, problems, 2, "every problem: %v", problems)
	require.Equal(t, 2, problems[0].Line)
	require.Contains(t, problems[0].Message, "LwM2M Float resource (/3303/0/5700) cannot hold")
	require.Equal(t, 3, problems[1].Line)
	require.Contains(t, problems[1].Message, "has 2 ids")
	require.False(t, tp.products.catalog.Exists(demoManufacturerID, "TS1"), "nothing is added")

	w := httptest.NewRecorder()
	require.NoError(t, tp.addProduct(w, asApp(mappingUpload(t, "TS1", demoTempMapping), tp.app.ID)))
	require.Equal(t, http.StatusCreated, w.Code, "%s", w.Body)
	var got productJSON
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.True(t, got.HasMapping)
	require.False(t, got.HasCodec)

	tp.stop()
	tp = startPlatform(t, func(c *Config) { c.DataDir = dir })
	m := tp.products.Mapping(demoManufacturerID, "TS1")
	require.NotNil(t, m, "the mapping is stored with the product")
	pm, ok := m.Property("/3303/0/5700")
	require.True(t, ok)
	require.Equal(t, "temperature", pm.Property)
}
