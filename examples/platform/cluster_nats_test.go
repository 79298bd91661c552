package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/internal/brokertest"
)

// startPGNodes starts n platform processes on one fresh PostgreSQL schema,
// with the config file cfgJSON and the extra flags of each node, and
// returns their APIs (logged in as the demo app) and DTLS addresses.
func startPGNodes(t *testing.T, n int, cfgJSON string, extra func(i int) []string) ([]*testPlatform, []string) {
	t.Helper()
	dsn := pgStore(t)
	cfgFile := filepath.Join(t.TempDir(), "node.json")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfgJSON), 0o600))
	first := newCrashPlatform(t)
	nodes := make([]*testPlatform, n)
	dtls := make([]string, n)
	var app App
	for i := range n {
		proc := first
		if i > 0 {
			proc = &crashPlatform{t: t, bin: first.bin, data: t.TempDir()}
		}
		port := freePort(t)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		dtls[i] = freeUDPAddr(t)
		proc.args = append([]string{"-config", cfgFile, "-store", dsn, "-node-id", "node-" + strconv.Itoa(i+1),
			"-http", "127.0.0.1:" + strconv.Itoa(port), "-coap", "127.0.0.1:0", "-dtls", dtls[i],
			"-mqtt", "off", "-mqtts", "off", "-admin", "off"}, extra(i)...)
		proc.ready = answers(base + "/openapi.json")
		a := proc.start()
		if i == 0 {
			app = a
			require.NotEmpty(t, app.Secret, "node 1 creates the demo app")
		} else {
			require.Equal(t, app.ID, a.ID, "node %d finds the demo app in the store", i+1)
			require.Empty(t, a.Secret, "and creates none")
		}
		nodes[i] = &testPlatform{api: &httptest.Server{URL: base}, app: app}
		nodes[i].token = nodes[i].login(t)
	}
	return nodes, dtls
}

// rawCall is an API call as the app that returns the answer's status,
// headers and body.
func rawCall(t *testing.T, tp *testPlatform, method, path string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, tp.api.URL+path, nil)
	require.NoError(t, err)
	req.Header = tp.appHeader("application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// CLU-2: two nodes on one PostgreSQL store and one NATS. A device talks to
// node 1. Through node 2, an application reads the device's registration
// and performs an LwM2M read (forwarded to node 1, which has the session;
// answered as node 1 answers), and queues a command that reaches the
// device in its current awake window, without another uplink: node 2
// stores it and wakes node 1 over NATS. Without routing node 2 knows no
// registration (404) and the command waits for the device's next uplink.
func TestClusterRoutesOverNATS(t *testing.T) {
	brokertest.Need(t, "NATS", brokertest.NATS)
	cluster := brokertest.Name("t")
	nodes, dtls := startPGNodes(t, 2, `{"adminToken": "adm_nats_routing_token", "queueWindow": "5m"}`,
		func(int) []string { return []string{"-nats", "nats://" + brokertest.NATS, "-cluster", cluster} })
	tp1, tp2 := nodes[0], nodes[1]

	const imei = "868333030000778"
	id, psk := registerDevice(t, tp1, imei)
	m := newMeterAt(t, dtls[0], "urn:imei:"+imei, psk)
	m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 12.345, "flowRate": 1.5, "pulseCount": 77}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 90}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
	}})

	// The registration, as node 1 holds it, read through node 2.
	var reg struct {
		Endpoint string `json:"endpoint"`
	}
	require.Eventually(t, func() bool {
		status, h, b := rawCall(t, tp2, "GET", "/doze/v1/devices/"+id+"/lwm2m-registration")
		return status == http.StatusOK && h.Get("Doze-Node") == "node-1" && json.Unmarshal(b, &reg) == nil
	}, 20*time.Second, 100*time.Millisecond, "node 2 answers with node 1's registration")
	require.Equal(t, imei, reg.Endpoint)

	// An LwM2M read through node 2, performed by node 1 on the device.
	status, h, b := rawCall(t, tp2, "GET", "/doze/v1/devices/"+id+"/lwm2m/19/0/0?timeout=20")
	require.Equal(t, http.StatusOK, status, "%s", b)
	require.Equal(t, "node-1", h.Get("Doze-Node"))
	// Node 1 answers the same call itself.
	status, h, _ = rawCall(t, tp1, "GET", "/doze/v1/devices/"+id+"/lwm2m/19/0/0?timeout=20")
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, h.Get("Doze-Node"), "node 1 has the session: not forwarded")

	// A command through node 2 reaches the device while it is awake.
	var cmd struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp2.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "expireTime": 600,
		"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 900}},
	}, &cmd))
	var got *codec.Command
	select {
	case got = <-m.cmds:
	case <-time.After(30 * time.Second):
		t.Fatal("the command created on node 2 did not reach the device awake on node 1 (no uplink since) within 30 s")
	}
	require.Equal(t, "SET_REPORT_PERIOD", got.Cmd)
	m.uplink(t, &codec.Response{Identifier: "0", MsgType: codec.MsgResponse, Mid: got.Mid, Body: map[string]any{"result": 0}})
	require.Eventually(t, func() bool {
		var c struct {
			Data []struct{ CommandID, Status string } `json:"data"`
		}
		tp2.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &c)
		return len(c.Data) == 1 && c.Data[0].CommandID == cmd.CommandID && c.Data[0].Status == "SUCCESSFUL"
	}, 20*time.Second, 50*time.Millisecond, "node 2 reads the command SUCCESSFUL")
	select {
	case again := <-m.cmds:
		t.Fatalf("the command reached the device twice: %+v", again)
	case <-time.After(2 * time.Second):
	}

	// An immediate command (expireTime 0) through node 2: node 1, which
	// has the session, takes it and sends it now.
	req, err := json.Marshal(map[string]any{"deviceId": id, "expireTime": 0,
		"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}}})
	require.NoError(t, err)
	hreq, err := http.NewRequest("POST", tp2.api.URL+"/iocm/app/cmd/v1.4.0/deviceCommands", bytes.NewReader(req))
	require.NoError(t, err)
	hreq.Header = tp2.appHeader("application/json")
	resp, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", b)
	require.Equal(t, "node-1", resp.Header.Get("Doze-Node"), "served by the node with the session")
	select {
	case got = <-m.cmds:
		require.EqualValues(t, 600, toInt(got.Paras["period"]))
	case <-time.After(30 * time.Second):
		t.Fatal("the immediate command created on node 2 did not reach the device on node 1")
	}
}

// -nats needs a shared store and a NATS that answers; the cluster name and,
// with -nats, the node id name NATS subjects.
func TestNATSFlags(t *testing.T) {
	cfg, err := parseConfig([]string{"-store", "postgres://u@db/doze", "-nats", "nats://127.0.0.1:4222", "-cluster", "eu-1"}, nil)
	require.NoError(t, err)
	require.Equal(t, "nats://127.0.0.1:4222", cfg.NATS)
	require.Equal(t, "eu-1", cfg.Cluster)
	cfg, err = parseConfig(nil, nil)
	require.NoError(t, err)
	require.Empty(t, cfg.NATS, "no routing by default")
	require.Equal(t, "doze", cfg.Cluster)
	_, err = parseConfig([]string{"-cluster", "a.b"}, nil)
	require.ErrorContains(t, err, `cluster "a.b"`)
	_, err = parseConfig([]string{"-nats", "nats://h:4222", "-node-id", "n.1"}, nil)
	require.ErrorContains(t, err, "no dots")

	c := defaultConfig()
	c.DataDir, c.NodeID, c.NATS = t.TempDir(), "n1", "nats://127.0.0.1:4222"
	_, err = New(c, nil)
	require.ErrorContains(t, err, "it needs -store postgres://", "bbolt is one node's store")

	c.Store, c.NATS, c.Cluster = pgStore(t), "nats://doze:secret@127.0.0.1:"+strconv.Itoa(freePort(t)), "doze"
	_, err = New(c, nil)
	require.ErrorContains(t, err, "-nats nats://…@", "a NATS that does not answer is named, without its password")
	require.NotContains(t, err.Error(), "secret")
}

// clusterNodeOn is the cluster side of node id of cluster name, connected
// to the machine's NATS, without a platform behind it; it serves at most
// slots forwarded calls at once.
func clusterNodeOn(t *testing.T, name, id string, slots int) *cluster {
	t.Helper()
	p := &Platform{cfg: Config{NATS: "nats://" + brokertest.NATS, Cluster: name, NodeID: id}, logger: slog.New(slog.DiscardHandler)}
	c := &cluster{p: p, prefix: "doze." + name, node: id, log: p.logger, here: map[string]time.Time{}, slots: make(chan struct{}, slots)}
	require.NoError(t, c.connect())
	t.Cleanup(c.close)
	return c
}

// The set of sessions a node has (cluster.go): the node that heard a
// device last has it, and a node told of an older arrival than its own
// hearing keeps the device and says so again, so that the other node
// drops it.
func TestClusterArrivals(t *testing.T) {
	brokertest.Need(t, "NATS", brokertest.NATS)
	name := brokertest.Name("t")
	a, b := clusterNodeOn(t, name, "a", 1), clusterNodeOn(t, name, "b", 1)
	a.heard("dev")
	require.True(t, a.Here("dev"))
	require.False(t, b.Here("dev"))

	b.heard("dev") // the device moved to b
	require.Eventually(t, func() bool { return !a.Here("dev") }, 10*time.Second, 10*time.Millisecond, "a drops the device b heard after it")
	require.True(t, b.Here("dev"))

	// a hears the device again before b's older arrival reaches it: a
	// keeps it, and b, told again, drops it.
	a.heard("dev")
	old := arrival{Node: "b", Device: "dev", At: time.Now().Add(-time.Minute)}
	data, err := json.Marshal(old)
	require.NoError(t, err)
	a.onArrived(&nats.Msg{Data: data})
	require.True(t, a.Here("dev"), "an arrival older than a's own hearing does not take the device from a")
	require.Eventually(t, func() bool { return !b.Here("dev") }, 10*time.Second, 10*time.Millisecond, "b drops it when a says so again")

	// Which node has a device: answered by that node only.
	q, err := json.Marshal(arrival{Node: "x", Device: "dev"})
	require.NoError(t, err)
	m, err := b.nc.Request(b.prefix+".who", q, 5*time.Second)
	require.NoError(t, err)
	var who arrival
	require.NoError(t, json.Unmarshal(m.Data, &who))
	require.Equal(t, "a", who.Node)
	q, err = json.Marshal(arrival{Node: "x", Device: "nobody"})
	require.NoError(t, err)
	_, err = b.nc.Request(b.prefix+".who", q, 300*time.Millisecond)
	require.Error(t, err, "nobody has the device: no answer")
}

// A forwarded call whose node with the session cannot serve it gets a
// clear refusal: 503 node_busy when that node serves maxForwarded calls
// already, 502 node_unreachable when the node that says it has the
// session does not answer; a device no node has is served where the call
// arrived (forward reports false).
func TestClusterForwardRefusals(t *testing.T) {
	brokertest.Need(t, "NATS", brokertest.NATS)
	name := brokertest.Name("t")
	a, b := clusterNodeOn(t, name, "a", 1), clusterNodeOn(t, name, "b", 0) // b: no slot free
	b.heard("dev")
	call := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/doze/v1/devices/dev/lwm2m/3/0/0", nil)
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, "app1"))
		w := httptest.NewRecorder()
		require.True(t, a.forward(w, r, "dev", nil), "node b has the session: forwarded")
		return w
	}
	w := call()
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Contains(t, w.Body.String(), "node_busy")
	require.Equal(t, "b", w.Header().Get("Doze-Node"))

	// A node that claims the session but serves nothing. (First wait until
	// node b's own subscriptions are gone from the server: until then b
	// still answers who.)
	b.close()
	q, err := json.Marshal(arrival{Node: "a", Device: "dev"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := a.nc.Request(a.prefix+".who", q, 200*time.Millisecond)
		return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout)
	}, 10*time.Second, 20*time.Millisecond, "node b still answers after its close")
	sub, err := a.nc.Subscribe(a.prefix+".who", func(m *nats.Msg) { _ = m.Respond([]byte(`{"node":"ghost","device":"dev"}`)) })
	require.NoError(t, err)
	w = call()
	require.Equal(t, http.StatusBadGateway, w.Code)
	require.Contains(t, w.Body.String(), "node_unreachable")
	require.Contains(t, w.Body.String(), "ghost")
	require.NoError(t, sub.Unsubscribe())

	// Nobody has it: served here.
	r := httptest.NewRequest("GET", "/doze/v1/devices/dev/lwm2m/3/0/0", nil)
	require.False(t, a.forward(httptest.NewRecorder(), r, "dev", nil))
	// A call forwarded once is never forwarded again.
	a.mu.Lock()
	delete(a.here, "dev")
	a.mu.Unlock()
	r = r.WithContext(context.WithValue(r.Context(), forwardedKey{}, true))
	require.False(t, a.forward(httptest.NewRecorder(), r, "dev", nil))
}
