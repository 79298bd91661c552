package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// fwMeter is a device whose firmware behaviour follows OMA LwM2M object 5
// and is spelled out here, not left to transport.Client: writing /5/0/1
// moves it to Downloading (State 1, Update Result 0) and it downloads the
// package blockwise on its socket; then Downloaded (2). Execute /5/0/2 is
// allowed only when Downloaded; the device then reboots: the client is
// closed (its DTLS session and every observation die) and a NEW client
// registers anew from a new source port, running the new version in
// /3/0/3, with State 0 and Update Result 1. Flash (version, object 5
// values, the package) survives the reboot. State changes are notified
// to observers, or, with sendOnly, sent with LwM2M Send (SenML JSON).
type fwMeter struct {
	t        *testing.T
	server   string
	imei     string
	psk      []byte
	sendOnly bool

	mu      sync.Mutex
	c       *transport.Client
	running string // /3/0/3
	state   int    // /5/0/3
	result  int    // /5/0/5
	image   []byte
	ports   []string // local address of each registration
	wg      sync.WaitGroup
}

func (m *fwMeter) text(f func() string) func() (transport.Content, error) {
	return func() (transport.Content, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return transport.Content{Format: lwm2m.FormatText, Payload: []byte(f())}, nil
	}
}

// boot starts the device: a new client, registered.
func (m *fwMeter) boot() {
	c, err := transport.NewClient(transport.ClientConfig{Server: m.server, Endpoint: m.imei, Key: m.psk,
		Objects: "</3/0>,</5/0>,</19/0>,</19/1>"})
	require.NoError(m.t, err)
	c.Handle("/3/0/3", transport.Resource{Read: m.text(func() string { return m.running })})
	c.Handle("/5/0/3", transport.Resource{Read: m.text(func() string { return strconv.Itoa(m.state) })})
	c.Handle("/5/0/5", transport.Resource{Read: m.text(func() string { return strconv.Itoa(m.result) })})
	c.Handle("/5/0/7", transport.Resource{Read: m.text(func() string { return "" })})
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) { return transport.Content{Format: lwm2m.FormatOpaque}, nil }})
	c.Handle("/5/0/1", transport.Resource{Write: func(v transport.Content) error {
		uri := string(v.Payload)
		i := strings.Index(uri, "/fw/")
		if i < 0 {
			return fmt.Errorf("package URI %q has no /fw/ path", uri)
		}
		m.wg.Go(func() { m.set(1, 0); m.download(c, uri[i:]) })
		return nil
	}})
	c.Handle("/5/0/2", transport.Resource{Execute: func([]byte) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.state != 2 {
			return fmt.Errorf("execute in State %d; only Downloaded (2) updates", m.state)
		}
		m.state = 3
		m.wg.Go(m.reboot) // may cut the 2.04 off: the platform copes
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(m.t, c.Connect(ctx))
	require.NoError(m.t, c.Register(ctx))
	m.mu.Lock()
	m.c = c
	m.ports = append(m.ports, c.LocalAddr().String())
	m.mu.Unlock()
}

func (m *fwMeter) download(c *transport.Client, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := c.Download(ctx, path, 256)
	if err != nil {
		m.set(0, 4) // connection lost during download
		return
	}
	m.mu.Lock()
	m.image = img
	m.mu.Unlock()
	m.set(2, 0)
}

func (m *fwMeter) reboot() {
	m.mu.Lock()
	c := m.c
	m.running = strings.TrimSpace(strings.SplitN(string(m.image), "\n", 2)[0])
	m.state, m.result = 0, 1
	m.mu.Unlock()
	c.Close()
	m.boot()
}

// set changes State and Update Result and tells the server.
func (m *fwMeter) set(state, result int) {
	m.mu.Lock()
	m.state, m.result = state, result
	c := m.c
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m.sendOnly {
		body := fmt.Sprintf(`[{"n":"/5/0/3","v":%d},{"n":"/5/0/5","v":%d}]`, state, result)
		c.Send(ctx, transport.Content{Format: lwm2m.FormatSenMLJSON, Payload: []byte(body)})
		return
	}
	for path, v := range map[string]int{"/5/0/3": state, "/5/0/5": result} {
		if c.Observed(path) {
			c.Notify(ctx, path, transport.Content{Format: lwm2m.FormatText, Payload: []byte(strconv.Itoa(v))})
		}
	}
}

func (m *fwMeter) close() {
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.c.Close()
}

// TestFirmwareRebootFlow: a firmware upgrade of a device that reboots
// after Execute and registers anew from a new port ends SUCCESS with the
// version read from /3/0/3 (issue 20 item 2 (a)); with a device that
// reports State and Update Result only by LwM2M Send, the Send drives it
// (d).
func TestFirmwareRebootFlow(t *testing.T) {
	for i, sendOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("sendOnly=%v", sendOnly), func(t *testing.T) {
			tp := startPlatform(t)
			imei := fmt.Sprintf("86833303000070%d", i)
			id, psk := registerDevice(t, tp, imei)
			m := &fwMeter{t: t, server: tp.lwm.DTLSAddr().String(), imei: imei, psk: psk, sendOnly: sendOnly, running: "FW1.0"}
			m.boot()
			t.Cleanup(m.close)

			image := make([]byte, 3000)
			rand.Read(image)
			fw := tp.upload(t, append([]byte("FW2.0\n"), image...), map[string]string{"fileType": "firmwarePackage", "version": "FW2.0",
				"deviceType": demoDeviceType, "manufacturerName": "Doze Labs", "model": demoModel, "protocolType": "LWM2M"})
			var op struct {
				OperationID string `json:"operationId"`
			}
			require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/firmwareUpgrade",
				map[string]any{"fileId": fw, "targets": map[string]any{"devices": []string{id}}}, &op))
			row := tp.waitSubOperation(t, op.OperationID)
			require.Equal(t, "success", row["status"], "sub-operation %v", row)
			require.Equal(t, "FW2.0", row["currentVersion"])
			require.Equal(t, "FW1.0", row["sourceVersion"])
			require.EqualValues(t, 100, row["progress"])
			m.mu.Lock()
			ports := m.ports
			m.mu.Unlock()
			require.Len(t, ports, 2, "the device registered again after Execute")
			require.NotEqual(t, ports[0], ports[1], "from a new source port")
			// The device record follows from the /3/0 read after the new
			// registration, which may finish just after the sub-task.
			require.Eventually(t, func() bool {
				var d deviceJSON
				tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &d)
				return d.DeviceInfo.FWVersion == "FW2.0"
			}, 10*time.Second, 10*time.Millisecond, "the device record shows FW2.0")
		})
	}
}

// TestDataChannelAfterUpdate: the value of the first Observe answer after
// the Register lands in history (issue 15 item 5); an Update whose object
// list drops </19/0> ends the data channel (logged); one that brings it
// back has /19/0/0 observed again, and the value of the Observe answer
// lands in history
// with the app's id (issue 20 items 6 (e), 7 (g)). A client without
// object 19 gets a device log line (f).
func TestDataChannelAfterUpdate(t *testing.T) {
	tp := startPlatform(t)
	tp.enableHistory()
	const imei = "868333030000710"
	id, psk := registerDevice(t, tp, imei)
	report := demoReport(t)

	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: imei, Key: psk,
		Objects: "</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) {
		return transport.Content{Format: lwm2m.FormatOpaque, Payload: report}, nil
	}})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	require.Eventually(t, func() bool { return tp.dataObserved(imei) }, 10*time.Second, 10*time.Millisecond)
	// The value of the answer to the server's observe after the Register
	// lands in history (issue 15 item 5).
	var recs []store.HistoryRecord
	require.Eventually(t, func() bool {
		recs, _, err = tp.db.History().Query(store.HistoryQuery{DeviceID: id, Page: -1})
		return err == nil && len(recs) == 3
	}, 10*time.Second, 10*time.Millisecond, "the value of the first Observe answer is stored (three services)")

	// The lwm2m client sends no object list with Update: the events of
	// the two Updates are handed to the platform as the server makes them.
	r, ok := tp.lwm.Registration(imei)
	require.True(t, ok)
	without := r
	without.Links = "</3/0>,</19/1>"
	without.Objects, err = lwm2m.ParseClientObjects([]byte(without.Links))
	require.NoError(t, err)
	tp.handleEvent(ctx, transport.Event{Kind: transport.EventUpdated, Endpoint: imei, Time: time.Now(), Registration: without})
	require.False(t, tp.dataObserved(imei), "the removed object's observation is forgotten")
	require.True(t, hasLog(tp, id, "no data channel"), "the device log says the data channel is gone")

	tp.handleEvent(ctx, transport.Event{Kind: transport.EventUpdated, Endpoint: imei, Time: time.Now(), Registration: r})
	require.Eventually(t, func() bool {
		recs, _, err = tp.db.History().Query(store.HistoryQuery{DeviceID: id, Page: -1})
		return err == nil && len(recs) == 6
	}, 10*time.Second, 10*time.Millisecond, "the value of the new Observe answer is stored too (three more services)")
	require.True(t, tp.dataObserved(imei))
	for _, rec := range recs {
		require.Equal(t, tp.app.ID, rec.AppID, "history carries the owning app: %+v", rec)
	}

	// (f) A client with no object 19 at all.
	const bare = "868333030000711"
	bareID, barePSK := registerDevice(t, tp, bare)
	b, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: bare, Key: barePSK, Objects: "</3/0>,</5/0>"})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.NoError(t, b.Connect(ctx))
	require.NoError(t, b.Register(ctx))
	require.Eventually(t, func() bool { return hasLog(tp, bareID, "no data channel") }, 10*time.Second, 10*time.Millisecond)
}

func hasLog(tp *testPlatform, deviceID, text string) bool {
	for _, e := range tp.log.Recent(deviceID, 100) {
		if strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}
