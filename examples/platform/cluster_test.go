package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/internal/brokertest"
	"github.com/stretchr/testify/require"
)

// clusterDevices is how many DTLS devices TestClusterNodeDies spreads over
// its three nodes: 30 by default to keep CI's time (the figure is
// 300: go test -run TestClusterNodeDies -cluster.devices 300).
var clusterDevices = flag.Int("cluster.devices", 30, "DTLS devices of TestClusterNodeDies, spread over three nodes")

// deviceLB is a UDP load balancer in front of the nodes for one device:
// the device sends to front, the balancer forwards from one upstream
// socket (the address the nodes see) to the current backend and returns
// what comes back. It counts the ClientHellos the device sends: its
// handshakes, as the device side sees them.
type deviceLB struct {
	front, up *net.UDPConn
	backend   atomic.Pointer[net.UDPAddr]
	device    atomic.Pointer[net.UDPAddr]
	hellos    atomic.Int64
	wg        sync.WaitGroup
}

func newDeviceLB(t *testing.T, backend string) *deviceLB {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	front, err := net.ListenUDP("udp", lo)
	require.NoError(t, err)
	up, err := net.ListenUDP("udp", lo)
	require.NoError(t, err)
	b := &deviceLB{front: front, up: up}
	b.to(backend)
	b.wg.Add(2)
	go func() { // device → node
		defer b.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			// a DTLS handshake record of epoch 0 carrying a ClientHello
			if n > 13 && buf[0] == 22 && buf[3] == 0 && buf[4] == 0 && buf[13] == 1 {
				b.hellos.Add(1)
			}
			b.device.Store(from)
			_, _ = up.WriteToUDP(buf[:n], b.backend.Load())
		}
	}()
	go func() { // node → device
		defer b.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, _, err := up.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if d := b.device.Load(); d != nil {
				_, _ = front.WriteToUDP(buf[:n], d)
			}
		}
	}()
	t.Cleanup(func() { _ = front.Close(); _ = up.Close(); b.wg.Wait() })
	return b
}

// to sends the device's later datagrams to backend.
func (b *deviceLB) to(backend string) {
	a, err := net.ResolveUDPAddr("udp", backend)
	if err != nil {
		panic(err)
	}
	b.backend.Store(a)
}

// clusterAdminToken is the nodes' adminToken (the same on every node).
const clusterAdminToken = "adm_cluster_test_token"

// clusterNode is one platform process of the cluster.
type clusterNode struct {
	proc  *crashPlatform
	api   *testPlatform
	dtls  string
	admin string
}

// metric returns the value of the Prometheus line name (with labels) of
// the node's operator listener, "" when absent or unreachable.
func (n *clusterNode) metric(name string) string {
	req, _ := http.NewRequest("GET", "http://"+n.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+clusterAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// CLU-4: three platform processes on one PostgreSQL schema and one NATS
// (routing between the nodes, CLU-2), DTLS devices spread over
// them behind a UDP balancer; commands created through node 3 for the
// devices on node 1; node 1 is SIGKILLed and its devices' next datagrams
// go to node 2 on the same DTLS sessions. Checked: every uplink a node
// acknowledged is in history and was pushed (at least once; a push that
// came twice came with one webhook-id; those node 1 had queued arrive
// once node 1 is restarted, which takes its leased pushes back), each command reached its device
// exactly once and ended SUCCESSFUL, and no device handshook again —
// counted on the device side (ClientHellos through its balancer) and on
// node 2 (full handshakes, sessions adopted).
func TestClusterNodeDies(t *testing.T) {
	brokertest.Need(t, "NATS", brokertest.NATS)
	dsn := pgStore(t)
	cluster := brokertest.Name("t")
	n := *clusterDevices
	require.GreaterOrEqual(t, n, 3, "-cluster.devices")
	// Every device reaches the nodes from 127.0.0.1 (its balancer's
	// upstream socket), as behind a balancer that hides the devices'
	// addresses: the per-source lookup limit is raised as docs/cluster.md
	// says to.
	conf := filepath.Join(t.TempDir(), "node.json")
	require.NoError(t, os.WriteFile(conf, []byte(`{"queueWindow": "1s", "adminToken": "`+clusterAdminToken+`", "moveLookupsPerSource": 2048}`), 0o600))

	first := newCrashPlatform(t)
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		proc := first
		if i > 0 {
			proc = &crashPlatform{t: t, bin: first.bin, data: t.TempDir()}
		}
		port := freePort(t)
		cn := &clusterNode{proc: proc, dtls: freeUDPAddr(t), admin: "127.0.0.1:" + strconv.Itoa(freePort(t)),
			api: &testPlatform{api: &httptest.Server{URL: "http://127.0.0.1:" + strconv.Itoa(port)}}}
		proc.args = []string{"-config", conf, "-store", dsn, "-node-id", "node-" + strconv.Itoa(i+1),
			"-http", "127.0.0.1:" + strconv.Itoa(port), "-coap", "127.0.0.1:0", "-dtls", cn.dtls,
			"-mqtt", "off", "-mqtts", "off", "-admin", cn.admin, "-nats", "nats://" + brokertest.NATS, "-cluster", cluster}
		proc.ready = func() bool { return cn.metric("doze_dtls_cookies_sent_total") != "" }
		nodes[i] = cn
	}
	app := nodes[0].proc.start()
	require.NotEmpty(t, app.Secret)
	for i, cn := range nodes {
		if i > 0 {
			cn.proc.start()
		}
		cn.api.app = app
		cn.api.token = cn.api.login(t)
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// The webhook refuses (503) until node 1 has died, so that node 1
	// dies with pushes it acknowledged uplinks for still in the outbox.
	var hookOpen atomic.Bool
	hook := &sink{more: make(chan struct{}, 1)}
	hook.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hookOpen.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		hook.mu.Lock()
		hook.got = append(hook.got, m)
		hook.ids = append(hook.ids, r.Header.Get("webhook-id"))
		hook.mu.Unlock()
		select {
		case hook.more <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hook.srv.Close)
	subscribe(t, n3.api, hook, "deviceDataChanged")

	type device struct {
		id    string
		node  int // where its balancer sends it first
		lb    *deviceLB
		m     *meter
		acked []int // pulseCounts of the reports a node acknowledged
	}
	devs := make([]*device, n)
	for i := range devs {
		imei := fmt.Sprintf("86833303%07d", i)
		id, psk := registerDevice(t, nodes[i%3].api, imei)
		d := &device{id: id, node: i % 3, lb: newDeviceLB(t, nodes[i%3].dtls)}
		d.m = newConfirmingMeter(t, d.lb.front.LocalAddr().String(), "urn:imei:"+imei, psk)
		devs[i] = d
	}

	report := func(d *device, pulse int) {
		d.m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
			{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.5, "flowRate": 0.5, "pulseCount": pulse}},
			{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 80}},
			{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -90}},
		}})
		d.acked = append(d.acked, pulse) // a confirmable notification: the node acknowledged it
	}
	each := func(f func(i int, d *device)) {
		for i, d := range devs {
			f(i, d)
		}
	}
	each(func(i int, d *device) { report(d, i*100+1) })

	onNode1 := 0
	for _, d := range devs {
		if d.node == 0 {
			onNode1++
		}
	}
	require.Eventually(t, func() bool { return n1.metric("doze_lwm2m_parked_sessions") == strconv.Itoa(onNode1) },
		30*time.Second, 50*time.Millisecond, "node 1's %d devices asleep, their sessions parked", onNode1)

	// Commands through node 3 for the devices on node 1, which sleep.
	cmdIDs := map[string]string{}
	for _, d := range devs {
		if d.node != 0 {
			continue
		}
		var cmd struct {
			CommandID string `json:"commandId"`
		}
		require.Equal(t, http.StatusCreated, n3.api.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
			"deviceId": d.id, "expireTime": 600,
			"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 900}},
		}, &cmd))
		cmdIDs[d.id] = cmd.CommandID
	}
	hellos := make([]int64, n)
	for i, d := range devs {
		hellos[i] = d.lb.hellos.Load()
		require.Positive(t, hellos[i])
	}
	full2 := n2.metric(`doze_dtls_handshakes_total{kind="full"}`)

	n1.proc.kill()
	hookOpen.Store(true)
	for _, d := range devs {
		if d.node == 0 {
			d.lb.to(n2.dtls)
		}
	}

	// Every device reports again; node 1's reach node 2 on their sessions
	// and get their command there.
	each(func(i int, d *device) { report(d, i*100+2) })
	for _, d := range devs {
		if d.node != 0 {
			continue
		}
		var got *codec.Command
		select {
		case got = <-d.m.cmds:
		case <-time.After(30 * time.Second):
			t.Fatalf("the command for device %s created through node 3 did not reach it on node 2", d.id)
		}
		require.Equal(t, "SET_REPORT_PERIOD", got.Cmd)
		d.m.uplink(t, &codec.Response{Identifier: "0", MsgType: codec.MsgResponse, Mid: got.Mid, Body: map[string]any{"result": 0}})
	}
	for _, d := range devs {
		if d.node != 0 {
			continue
		}
		require.Eventually(t, func() bool {
			var c struct {
				Data []struct{ CommandID, Status string } `json:"data"`
			}
			n3.api.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+d.id, nil, &c)
			return len(c.Data) == 1 && c.Data[0].CommandID == cmdIDs[d.id] && c.Data[0].Status == "SUCCESSFUL"
		}, 30*time.Second, 100*time.Millisecond, "device %s's command SUCCESSFUL, read through node 3", d.id)
	}
	each(func(i int, d *device) { report(d, i*100+3) }) // and they go on

	// No handshake: device side and node side.
	for i, d := range devs {
		require.Equal(t, hellos[i], d.lb.hellos.Load(), "device %d sent a ClientHello after node 1 died", i)
	}
	require.Equal(t, full2, n2.metric(`doze_dtls_handshakes_total{kind="full"}`), "node 2 ran no full handshake")
	require.Equal(t, strconv.Itoa(onNode1), n2.metric(`doze_dtls_sessions_moved_total{kind="adopted"}`),
		"node 2 took node 1's sessions over from the store")

	t.Logf("%d devices, %d on node 1; node 2: sessions adopted %s, store lookups %s, full handshakes %s",
		n, onNode1, n2.metric(`doze_dtls_sessions_moved_total{kind="adopted"}`),
		n2.metric(`doze_dtls_store_lookups_total{outcome="looked_up"}`), n2.metric(`doze_dtls_handshakes_total{kind="full"}`))

	// Nothing acknowledged is lost: every report is in history, read
	// through node 3, and was pushed; no command went twice.
	for _, d := range devs {
		require.Eventually(t, func() bool {
			var hist historyAnswer
			n3.api.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+d.id+"&gatewayId="+d.id+"&serviceId=Meter&pageSize=100", nil, &hist)
			seen := map[int64]bool{}
			for _, h := range hist.DTOs {
				if v, ok := h.Data["pulseCount"]; ok {
					seen[toInt(v)] = true
				}
			}
			for _, p := range d.acked {
				if !seen[int64(p)] {
					return false
				}
			}
			return true
		}, 30*time.Second, 100*time.Millisecond, "device %s's acknowledged reports %v in history", d.id, d.acked)
		select {
		case c := <-d.m.cmds:
			t.Fatalf("device %s got a command twice: %+v", d.id, c)
		default:
		}
	}
	// Pushes node 1 had queued when it died are in the shared outbox
	// under node 1's lease: another node claims them once the lease ends
	// (about 75 s), node 1 at once when it starts again, as an operator
	// restarts a crashed node. The test does the latter (CI's time).
	n1.proc.start()
	pushed := func(id string, pulse int) []string {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		var ids []string
		for i, m := range hook.got {
			s, _ := m["service"].(map[string]any)
			data, _ := s["data"].(map[string]any)
			if v, ok := data["pulseCount"]; ok && m["deviceId"] == id && toInt(v) == int64(pulse) {
				ids = append(ids, hook.ids[i])
			}
		}
		return ids
	}
	for _, d := range devs {
		for _, p := range d.acked {
			require.Eventually(t, func() bool { return len(pushed(d.id, p)) > 0 }, 60*time.Second, 100*time.Millisecond,
				"the push of device %s's report %d", d.id, p)
			ids := pushed(d.id, p)
			for _, w := range ids {
				require.Equal(t, ids[0], w, "a push delivered twice keeps its webhook-id")
			}
		}
	}
}

// newConfirmingMeter is newMeterAt with confirmable notifications: a
// report's uplink returns once the node acknowledged it.
func newConfirmingMeter(t testing.TB, addr, imei string, psk []byte) *meter {
	t.Helper()
	cfg := meterConfig(addr, imei, psk)
	cfg.ConfirmableNotifications = true
	return newMeterWith(t, cfg)
}
