package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// stdDevice is a standard LwM2M 1.1 client without object 19: Device (3)
// and Temperature (3303), strict about what it is sent — a write must be
// one value at the path written, in a format that names it (OMA LwM2M
// 1.1 Core §7.4.3 / TS Transport §6.4).
type stdDevice struct {
	t      *testing.T
	client *transport.Client

	mu       sync.Mutex
	calls    []string
	appType  string
	rebooted int
}

func (d *stdDevice) record(s string) {
	d.mu.Lock()
	d.calls = append(d.calls, s)
	d.mu.Unlock()
}

func (d *stdDevice) callList() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

// instance answers a read of an object instance in SenML CBOR.
func (d *stdDevice) instance(path string, recs func() []lwm2m.Record) func() (transport.Content, error) {
	return func() (transport.Content, error) {
		d.record("read " + path)
		b, err := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.MustPath(path), recs())
		return transport.Content{Format: lwm2m.FormatSenMLCBOR, Payload: b}, err
	}
}

func startStdDevice(t *testing.T, tp *testPlatform, imei string, psk []byte, queue bool) *stdDevice {
	t.Helper()
	d := &stdDevice{t: t, appType: "indoor"}
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: imei, Key: psk,
		Queue: queue, Objects: "</1/0>,</3/0>,</3303/0>"})
	require.NoError(t, err)
	dev := func() []lwm2m.Record {
		return []lwm2m.Record{
			{Path: lwm2m.MustPath("/3/0/0"), Value: lwm2m.StringValue("Doze Labs")},
			{Path: lwm2m.MustPath("/3/0/1"), Value: lwm2m.StringValue("T100")},
			{Path: lwm2m.MustPath("/3/0/3"), Value: lwm2m.StringValue("fw-1.4.2")},
			{Path: lwm2m.MustPath("/3/0/19"), Value: lwm2m.StringValue("sw-2.0")},
		}
	}
	temp := func() []lwm2m.Record {
		d.mu.Lock()
		defer d.mu.Unlock()
		return []lwm2m.Record{
			{Path: lwm2m.MustPath("/3303/0/5700"), Value: lwm2m.FloatValue(21.5)},
			{Path: lwm2m.MustPath("/3303/0/5701"), Value: lwm2m.StringValue("Cel")},
			{Path: lwm2m.MustPath("/3303/0/5750"), Value: lwm2m.StringValue(d.appType)},
		}
	}
	c.Handle("/3/0", transport.Resource{Read: d.instance("/3/0", dev)})
	c.Handle("/3/0/4", transport.Resource{Execute: func([]byte) error {
		d.record("execute /3/0/4")
		d.mu.Lock()
		d.rebooted++
		d.mu.Unlock()
		return nil
	}})
	c.Handle("/3303/0", transport.Resource{Read: d.instance("/3303/0", temp)})
	c.Handle("/3303/0/5700", transport.Resource{Read: func() (transport.Content, error) {
		d.record("read /3303/0/5700")
		return transport.Content{Format: lwm2m.FormatText, Payload: []byte("21.5")}, nil
	}})
	c.Handle("/3303/0/5750", transport.Resource{Write: func(ct transport.Content) error {
		recs, err := lwm2m.Decode(ct.Format, lwm2m.MustPath("/3303/0/5750"), ct.Payload, nil)
		if err != nil {
			return err
		}
		if len(recs) != 1 || recs[0].Path.String() != "/3303/0/5750" || recs[0].Value.Type() != lwm2m.TypeString {
			return fmt.Errorf("a write of /3303/0/5750 takes one String value at that path, got %v", recs)
		}
		d.mu.Lock()
		d.appType = recs[0].Value.String()
		d.mu.Unlock()
		d.record("write /3303/0/5750 " + recs[0].Value.String())
		return nil
	}})
	c.Handle("/3303", transport.Resource{Create: func(ct transport.Content) (uint16, error) {
		recs, err := lwm2m.Decode(ct.Format, lwm2m.MustPath("/3303"), ct.Payload, nil)
		if err != nil || len(recs) == 0 {
			return 0, fmt.Errorf("create of /3303 needs the new instance's resources: %v", err)
		}
		inst, _ := recs[0].Path.Instance()
		d.record(fmt.Sprintf("create /3303/%d", inst))
		return inst, nil
	}})
	c.Handle("/3303/1", transport.Resource{})
	d.client = c
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	return d
}

type opAnswer struct {
	Status       string         `json:"status"`
	Success      bool           `json:"success"`
	Code         string         `json:"code"`
	Content      map[string]any `json:"content"`
	Location     string         `json:"location"`
	ObjectLinks  []string       `json:"objectLinks"`
	ErrorMessage string         `json:"errorMessage"`
	OperationID  string         `json:"operationId"`
}

// TestLwM2MOperationsAwake (LWM-11): every operation on an awake standard
// device through the API, results in Leshan's JSON; the device record has
// /3/0's versions after the registration.
func TestLwM2MOperationsAwake(t *testing.T) {
	tp := startPlatform(t)
	const imei = "868333030001101"
	id, psk := registerDevice(t, tp, imei)
	d := startStdDevice(t, tp, imei, psk, false)
	base := "/doze/v1/devices/" + id + "/lwm2m"

	require.Eventually(t, func() bool {
		dev, err := tp.reg.Get(context.Background(), id)
		return err == nil && dev.Info.FWVersion == "fw-1.4.2" && dev.Info.SWVersion == "sw-2.0" && dev.Info.ManufacturerName == "Doze Labs"
	}, 10*time.Second, 20*time.Millisecond, "the device record holds /3/0's versions after the registration")

	var a opAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", base+"/3303/0", nil, &a))
	require.True(t, a.Success, "read /3303/0: %+v", a)
	require.Equal(t, "CONTENT", a.Status)
	require.Equal(t, "instance", a.Content["kind"])
	res := a.Content["resources"].([]any)
	require.Len(t, res, 3)
	require.Equal(t, map[string]any{"kind": "singleResource", "id": float64(5700), "type": "FLOAT", "value": 21.5}, res[0])

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", base+"/3303/0/5700?format=TEXT", nil, &a))
	require.Equal(t, map[string]any{"kind": "singleResource", "id": float64(5700), "type": "FLOAT", "value": 21.5}, a.Content)

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", base+"/3303/0/5750", map[string]any{"id": 5750, "value": "outdoor"}, &a))
	require.Equal(t, opAnswer{Status: "CHANGED", Success: true, Code: "2.04"}, a)

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", base+"/3/0/4", nil, &a))
	require.Equal(t, "CHANGED", a.Status)

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", base+"/3303/discover", nil, &a))
	require.Contains(t, a.ObjectLinks, "</3303/0/5700>")

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", base+"/3303/0/5700/attributes?pmin=10&pmax=60", nil, &a))
	require.Equal(t, "CHANGED", a.Status)

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", base+"/3303/0/5700/observe", nil, &a))
	require.Equal(t, "CONTENT", a.Status)
	require.Eventually(t, func() bool { return d.client.Observed("/3303/0/5700") }, 5*time.Second, 10*time.Millisecond, "the device holds the observation")
	// This product maps nothing: the notification is said on the device
	// log, not dropped silently (SEC-6).
	nctx, ncancel := context.WithTimeout(context.Background(), 10*time.Second)
	require.NoError(t, d.client.Notify(nctx, "/3303/0/5700", transport.Content{Format: lwm2m.FormatText, Payload: []byte("22.5")}))
	ncancel()
	require.Eventually(t, func() bool { return hasLog(tp, id, "reaches no application") }, 10*time.Second, 10*time.Millisecond)
	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "DELETE", base+"/3303/0/5700/observe", nil, &a))
	require.Equal(t, "CHANGED", a.Status)
	require.False(t, d.client.Observed("/3303/0/5700"), "cancel-observe ended the device's observation")

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", base+"/3303", map[string]any{"id": 1,
		"resources": []any{map[string]any{"id": 5750, "value": "spare"}}}, &a))
	require.Equal(t, opAnswer{Status: "CREATED", Success: true, Code: "2.01", Location: "/3303/1"}, a)

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "DELETE", base+"/3303/1", nil, &a))
	require.Equal(t, "DELETED", a.Status)

	// The device's refusal is a result with its code, as in Leshan.
	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", base+"/3303/7", nil, &a))
	require.Equal(t, "NOT_FOUND", a.Status)
	require.Equal(t, "4.04", a.Code)
	require.False(t, a.Success)

	// Bad input gets a clear error before anything is sent.
	var e apiError
	require.Equal(t, http.StatusBadRequest, tp.call(t, "PUT", base+"/3303/0/5750", map[string]any{"value": 12}, &e))
	require.Contains(t, e.Desc, "not a JSON string")
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", base+"/3303/0/5700?format=XML", nil, &e))

	require.Equal(t, []string{"read /3/0", "read /3303/0", "read /3303/0/5700", "write /3303/0/5750 outdoor",
		"execute /3/0/4", "read /3303/0/5700", "read /3303/0/5700", "create /3303/1"}, d.callList(),
		"observe and cancel-observe are each a GET the device answers with the value (RFC 7641 §3.6)")
}

// TestLwM2MOperationsQueued (LWM-11): a read, a write and an execute asked
// while the queue-mode device sleeps are queued (202), performed in order
// at its next wake-up, readable with their results and pushed as
// lwm2mOperationResult; one still queued survives a platform restart.
func TestLwM2MOperationsQueued(t *testing.T) {
	dir := t.TempDir()
	window := func(c *Config) { c.DataDir = dir; c.QueueWindow = Duration(1500 * time.Millisecond) }
	tp := startPlatform(t, window)
	hook := newSink(t)
	subscribe(t, tp, hook, "lwm2mOperationResult")
	const imei = "868333030001102"
	id, psk := registerDevice(t, tp, imei)
	d := startStdDevice(t, tp, imei, psk, true)
	base := "/doze/v1/devices/" + id + "/lwm2m"

	asleep := func(tp *testPlatform) func() bool {
		return func() bool { r, ok := tp.lwm.Registration(imei); return ok && !r.Awake(time.Now()) }
	}
	require.Eventually(t, asleep(tp), 10*time.Second, 20*time.Millisecond, "the device falls asleep")
	before := len(d.callList())

	var ids []string
	for _, c := range []struct {
		method, path string
		body         any
	}{{"GET", "/3303/0", nil}, {"PUT", "/3303/0/5750", map[string]any{"value": "freezer"}}, {"POST", "/3/0/4", nil}} {
		var a opAnswer
		require.Equal(t, http.StatusAccepted, tp.call(t, c.method, base+c.path, c.body, &a), "%s %s on a sleeping device", c.method, c.path)
		require.NotEmpty(t, a.OperationID)
		ids = append(ids, a.OperationID)
	}
	var op operation
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/devices/"+id+"/lwm2m-operations/"+ids[0], nil, &op))
	require.Equal(t, "PENDING", op.Status, "%+v; device calls %v", op, d.callList())
	require.Equal(t, before, len(d.callList()), "nothing reached the sleeping device")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.client.Update(ctx)) // the device wakes up
	for _, oid := range ids {
		hook.wait(t, "lwm2mOperationResult of "+oid, func(m map[string]any) bool {
			return m["notifyType"] == "lwm2mOperationResult" && m["operationId"] == oid && m["status"] == "SUCCESSFUL"
		})
	}
	require.Equal(t, []string{"read /3303/0", "write /3303/0/5750 freezer", "execute /3/0/4"}, d.callList()[before:],
		"performed in the order asked")
	op = operation{}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/devices/"+id+"/lwm2m-operations/"+ids[0], nil, &op))
	require.Equal(t, "SUCCESSFUL", op.Status)
	require.Contains(t, string(op.Result), `"kind":"instance"`)
	require.Contains(t, string(op.Result), `"value":"indoor"`)

	// Queued, then the platform restarts before the device wakes.
	require.Eventually(t, asleep(tp), 10*time.Second, 20*time.Millisecond, "the device falls asleep again")
	var a opAnswer
	require.Equal(t, http.StatusAccepted, tp.call(t, "PUT", base+"/3303/0/5750", map[string]any{"value": "after-restart"}, &a))
	tp.stop()
	d.client.Close()

	tp2 := startPlatform(t, window)
	d2 := startStdDevice(t, tp2, imei, psk, true) // registers again: awake
	// The device wakes again every 2 s, as a sleeping device does now and
	// then: on a loaded machine the first 1.5 s window may pass before
	// the restarted platform gets to the operation.
	polls := 0
	require.Eventually(t, func() bool {
		var op operation
		tp2.call(t, "GET", "/doze/v1/devices/"+id+"/lwm2m-operations/"+a.OperationID, nil, &op)
		if polls++; op.Status != "SUCCESSFUL" && polls%100 == 0 {
			uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
			require.NoError(t, d2.client.Update(uctx))
			ucancel()
		}
		return op.Status == "SUCCESSFUL"
	}, 30*time.Second, 20*time.Millisecond, "the operation queued before the restart ran at a wake-up after it")
	require.Contains(t, d2.callList(), "write /3303/0/5750 after-restart")
}

// A queued LwM2M operation whose device lookup fails because the try's
// context ended (the device's window closed under load) waits for the
// next try; only a device that is gone fails it (found by
// TestLwM2MOperationsQueued under load: "encode failed: context deadline
// exceeded").
func TestOpSenderLookupFailureWaits(t *testing.T) {
	tp := startPlatform(t)
	id, _ := registerDevice(t, tp, "868333030001199")
	op := command.Command{DeviceID: id, Body: command.Body{ServiceID: opService, Method: "read", Paras: []byte(`{"op":"read","path":"/3/0"}`)}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := opSender{tp.Platform}.Transmit(ctx, op, func() {})
	require.Error(t, err)
	require.NotErrorIs(t, err, command.ErrEncode, "a lookup cut short is no reason to fail the operation")
	op.DeviceID = "no-such-device"
	require.ErrorIs(t, opSender{tp.Platform}.Transmit(context.Background(), op, func() {}), command.ErrEncode, "a deleted device's operation fails")
}
