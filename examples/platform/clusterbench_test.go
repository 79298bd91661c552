package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/store/postgres"
	"github.com/stretchr/testify/require"
)

// clusterBenchDevices is how many DTLS meters BenchmarkClusterUplinks
// spreads over the nodes of each run: the same number whatever the node
// count, so every run has as many uplinks in flight.
var clusterBenchDevices = flag.Int("clusterbench.devices", 96, "DTLS meters of BenchmarkClusterUplinks, spread over the nodes")

// clusterBenchPool, when not 0, is each node's PostgreSQL pool size
// (pgxpool's pool_max_conns in the -store URL; its default is the larger of
// 4 and the number of CPUs).
var clusterBenchPool = flag.Int("clusterbench.pool", 0, "PostgreSQL connections per node of BenchmarkClusterUplinks; 0: pgxpool's default")

// BenchmarkClusterUplinks measures end-to-end uplinks per second of the
// platform binary: one node on bbolt (the baseline), one node on a fresh
// PostgreSQL schema, and three nodes sharing one. The same DTLS meters
// (-clusterbench.devices, device i talking to node i mod N) each send
// confirmable reports of the demo product one after another; an uplink
// counts once the node acknowledged it (the durable inbox write) and its
// deviceDatasChanged push reached the webhook sink of this process. Each
// b.Loop iteration hands one uplink to a free meter; after the loop every
// acknowledged uplink must be pushed (checked per device and reading).
//
// Metrics: uplinks/s (acknowledged uplinks ÷ first send → last push),
// ack/s (÷ first send → last acknowledgement), ns/op (the end-to-end time
// per uplink), x1node (nodes=3 against nodes=1 on PostgreSQL, same run),
// and the CPU per uplink of the nodes (node-µs/up), of their PostgreSQL
// backends (pg-µs/up, found by application_name) and of this process (the
// meters and the sink, drv-µs/up), with the machine's busy share
// (busy-%). The PostgreSQL runs report bytes per history row and per
// device (B/hist-row, B/device) from pg_total_relation_size, and log each
// table's size and what the nodes did to it (pg_stat_user_tables).
// docs/benchmarks.md has the figures:
//
//	go test ./examples/platform -run '^$' -bench ClusterUplinks -benchtime 6000x
func BenchmarkClusterUplinks(b *testing.B) {
	first := newCrashPlatform(b) // builds the binary once
	var pgOne float64
	for _, run := range []struct {
		name  string
		nodes int
		pg    bool
	}{{"store=bbolt/nodes=1", 1, false}, {"store=postgres/nodes=1", 1, true}, {"store=postgres/nodes=3", 3, true}} {
		b.Run(run.name, func(b *testing.B) {
			perSec := clusterBench(b, first.bin, run.nodes, run.pg)
			switch {
			case run.pg && run.nodes == 1:
				pgOne = perSec
			case run.pg && pgOne > 0:
				b.ReportMetric(perSec/pgOne, "x1node")
			}
		})
	}
}

// clusterBench runs one configuration and returns its end-to-end
// uplinks per second.
func clusterBench(b *testing.B, bin string, nodes int, pg bool) float64 {
	devices := *clusterBenchDevices
	require.GreaterOrEqual(b, devices, nodes, "-clusterbench.devices")
	conf := filepath.Join(b.TempDir(), "node.json")
	// rateLimit: registering the meters takes hundreds of API calls. The
	// queue window is short so that the meters park once the run is over
	// (their parked sessions count in the database's size).
	require.NoError(b, os.WriteFile(conf, []byte(`{"rateLimit": 5000, "queueWindow": "3s", "adminToken": "`+clusterAdminToken+`"}`), 0o600))

	var dsn, schema string
	if pg {
		dsn = pgStore(b)
		_, schema, _ = strings.Cut(dsn, "search_path=")
		// application_name finds the nodes' backends in pg_stat_activity.
		dsn += "&application_name=" + schema
		if *clusterBenchPool > 0 {
			dsn += "&pool_max_conns=" + strconv.Itoa(*clusterBenchPool)
		}
	}
	ns := make([]*clusterNode, nodes)
	for i := range ns {
		port := freePort(b)
		cn := &clusterNode{proc: &crashPlatform{t: b, bin: bin, data: b.TempDir()}, dtls: freeUDPAddr(b),
			admin: "127.0.0.1:" + strconv.Itoa(freePort(b)),
			api:   &testPlatform{api: &httptest.Server{URL: "http://127.0.0.1:" + strconv.Itoa(port)}}}
		cn.proc.args = []string{"-config", conf, "-node-id", "bench-" + strconv.Itoa(i+1),
			"-http", "127.0.0.1:" + strconv.Itoa(port), "-coap", "127.0.0.1:0", "-dtls", cn.dtls,
			"-mqtt", "off", "-mqtts", "off", "-admin", cn.admin}
		if pg {
			cn.proc.args = append(cn.proc.args, "-store", dsn)
		}
		cn.proc.ready = func() bool { return cn.metric("doze_dtls_cookies_sent_total") != "" }
		ns[i] = cn
	}
	var app App
	for i, n := range ns {
		if a := n.proc.start(); i == 0 {
			app = a // on a shared store only the first node prints the secret
		}
		n.api.app = app
		n.api.token = n.api.login(b)
	}

	var sizes0 map[string]int64
	if pg {
		sizes0 = relationSizes(b, schema)
	}

	// The sink takes one deviceDatasChanged per report (every service in
	// one push), subscribed through the first node; every node pushes.
	hook := newSink(b)
	subscribe(b, ns[0].api, hook, "deviceDatasChanged")

	type device struct {
		id    string
		m     *meter
		acked atomic.Int64 // readings 1…acked were acknowledged
	}
	devs := make([]*device, devices)
	byID := map[string]int{}
	setup := time.Now()
	for i := range devs {
		n := ns[i%nodes]
		imei := fmt.Sprintf("86833304%07d", i)
		id, psk := registerDevice(b, n.api, imei)
		devs[i] = &device{id: id, m: newConfirmingMeter(b, n.dtls, "urn:imei:"+imei, psk)}
		byID[id] = i
	}
	b.Logf("%d nodes, %d DTLS meters registered and observed in %v", nodes, devices, time.Since(setup).Round(time.Millisecond))

	// send sends reading pulse of device d and waits for its ACK.
	send := func(ctx context.Context, d *device, pulse int) error {
		p, err := d.m.codec.Encode(&codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
			{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.5, "flowRate": 0.5, "pulseCount": pulse}},
			{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 80}},
			{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -90}},
		}})
		if err != nil {
			return err
		}
		return d.m.client.Notify(ctx, "/19/0/0", transport.Content{Format: lwm2m.FormatOpaque, Payload: p})
	}

	// pushed waits until every device's readings from…acked are in a
	// push (called once the acknowledgements are in), reading the sink's
	// pushes from where it left off, and returns when the last one
	// arrived. The readings still missing are counted once and then
	// counted down, so the wait costs little CPU per push.
	seen := make([]map[int]bool, devices)
	for i := range seen {
		seen[i] = map[int]bool{}
	}
	scanned := 0
	pushed := func(from int, timeout time.Duration) time.Time {
		b.Helper()
		deadline := time.After(timeout)
		missing := -1 // not counted yet
		for {
			hook.mu.Lock()
			fresh := hook.got[scanned:]
			scanned = len(hook.got)
			hook.mu.Unlock()
			at := time.Now()
			for _, p := range fresh {
				i, ok := byID[fmt.Sprint(p["deviceId"])]
				if !ok || p["notifyType"] != "deviceDatasChanged" {
					continue
				}
				svcs, _ := p["services"].([]any)
				for _, s := range svcs {
					s, _ := s.(map[string]any)
					data, _ := s["data"].(map[string]any)
					v, ok := data["pulseCount"]
					if !ok || s["serviceId"] != "Meter" {
						continue
					}
					r := int(toInt(v))
					if !seen[i][r] && missing > 0 && r >= from && r <= int(devs[i].acked.Load()) {
						missing--
					}
					seen[i][r] = true
				}
			}
			if missing < 0 {
				missing = 0
				for i, d := range devs {
					for r := from; r <= int(d.acked.Load()); r++ {
						if !seen[i][r] {
							missing++
						}
					}
				}
			}
			if missing == 0 {
				return at
			}
			select {
			case <-hook.more:
			case <-deadline:
				hook.mu.Lock()
				got := len(hook.got)
				var sample map[string]any
				if got > 0 {
					sample = hook.got[got-1]
				}
				hook.mu.Unlock()
				b.Fatalf("%d acknowledged readings not pushed within %v (%d pushes received, the last %v)", missing, timeout, got, sample)
			}
		}
	}

	// Warm-up, untimed: reading 1 of every device (the product's
	// pulseCount starts at 1), acknowledged and pushed (every node has
	// read the subscription by then).
	ctx := b.Context()
	for _, d := range devs {
		require.NoError(b, send(ctx, d, 1))
		d.acked.Store(1)
	}
	pushed(1, 60*time.Second)

	// The measured run: b.Loop hands uplinks to whichever meter is free.
	work := make(chan struct{})
	var (
		wg       sync.WaitGroup
		failed   atomic.Pointer[error]
		lastAck  atomic.Int64
		uplinks  atomic.Int64
		sendCtx  context.Context
		stopSend context.CancelFunc
	)
	sendCtx, stopSend = context.WithCancel(ctx)
	defer stopSend()
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				pulse := int(d.acked.Load()) + 1
				if pulse > 65535 {
					err := errors.New("a meter's uint16 pulseCount wrapped: use more -clusterbench.devices or a shorter -benchtime")
					failed.CompareAndSwap(nil, &err)
					stopSend()
					continue
				}
				c, cancel := context.WithTimeout(sendCtx, time.Minute)
				err := send(c, d, pulse)
				cancel()
				if err != nil {
					err = fmt.Errorf("device %s reading %d: %w", d.id, pulse, err)
					failed.CompareAndSwap(nil, &err)
					stopSend()
					continue
				}
				d.acked.Store(int64(pulse))
				uplinks.Add(1)
				lastAck.Store(time.Now().UnixNano())
			}
		}()
	}
	pids := nodePIDs(ns)
	pgPIDs := map[int]bool{}
	if pg {
		pgPIDs = backendPIDs(b, schema)
	}
	cpu0 := cpuOf(pids, pgPIDs)
	start := time.Now()
	for b.Loop() {
		if failed.Load() != nil {
			break // reported below
		}
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if e := failed.Load(); e != nil {
		b.Fatal(*e)
	}
	last := pushed(2, 2*time.Minute)
	if pg {
		for p := range backendPIDs(b, schema) {
			pgPIDs[p] = true
		}
	}
	cpu1 := cpuOf(pids, pgPIDs)

	n := float64(uplinks.Load())
	e2e, ack := last.Sub(start), time.Unix(0, lastAck.Load()).Sub(start)
	b.ReportMetric(n/e2e.Seconds(), "uplinks/s")
	b.ReportMetric(n/ack.Seconds(), "ack/s")
	b.ReportMetric(float64(e2e.Nanoseconds())/n, "ns/op")
	b.ReportMetric((cpu1.nodes-cpu0.nodes).Seconds()*1e6/n, "node-µs/up")
	b.ReportMetric((cpu1.self-cpu0.self).Seconds()*1e6/n, "drv-µs/up")
	if pg {
		b.ReportMetric((cpu1.pg-cpu0.pg).Seconds()*1e6/n, "pg-µs/up")
	}
	if total := cpu1.machine - cpu0.machine; total > 0 {
		b.ReportMetric(100*float64(cpu1.busy-cpu0.busy)/float64(total), "busy-%")
	}
	b.Logf("%d nodes: %.0f uplinks in %v end to end (%v to the last ACK); CPU: nodes %v, PostgreSQL backends %v (%d), this process %v; load %s",
		nodes, n, e2e.Round(time.Millisecond), ack.Round(time.Millisecond), (cpu1.nodes - cpu0.nodes).Round(time.Millisecond),
		(cpu1.pg - cpu0.pg).Round(time.Millisecond), len(pgPIDs), (cpu1.self - cpu0.self).Round(time.Millisecond), loadAvg())

	if pg {
		// The meters park after the queue window; then the database holds
		// what a sleeping fleet keeps.
		require.Eventually(b, func() bool {
			parked := 0
			for _, nd := range ns {
				v, _ := strconv.Atoi(nd.metric("doze_lwm2m_parked_sessions"))
				parked += v
			}
			return parked == devices
		}, time.Minute, 100*time.Millisecond, "every meter's session parked")
		logSizes(b, schema, sizes0, devices)
	}
	return n / e2e.Seconds()
}

// nodePIDs are the process ids of the nodes.
func nodePIDs(ns []*clusterNode) []int {
	var pids []int
	for _, n := range ns {
		pids = append(pids, n.proc.cmd.Process.Pid)
	}
	return pids
}

// cpuTimes is CPU time used so far: by the nodes, by PostgreSQL backends,
// by this process; and the machine's busy and total jiffies.
type cpuTimes struct {
	nodes, pg, self time.Duration
	busy, machine   int64
}

func cpuOf(nodes []int, pg map[int]bool) cpuTimes {
	var c cpuTimes
	for _, p := range nodes {
		c.nodes += procCPU(p)
	}
	for p := range pg {
		c.pg += procCPU(p)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseInt(f, 10, 64)
			c.machine += v
			if i != 3 && i != 4 { // idle, iowait
				c.busy += v
			}
		}
	}
	return c
}

// procCPU is the user and system time of process pid (0 when gone).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: state is
	// the first, utime the 12th, stime the 13th (clock ticks of 10 ms).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// loadAvg is the machine's load average (1, 5, 15 min).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// openSchema opens the benchmark's schema for the measurements.
func openSchema(b *testing.B, schema string) *postgres.DB {
	db, err := postgres.Open(b.Context(), pgDSN(), &postgres.Options{Schema: schema, MaxConns: 1})
	require.NoError(b, err)
	return db
}

// backendPIDs are the PostgreSQL backends of the nodes on schema.
func backendPIDs(b *testing.B, schema string) map[int]bool {
	db := openSchema(b, schema)
	rows, err := db.Pool().Query(b.Context(), "SELECT pid FROM pg_stat_activity WHERE application_name = $1", schema)
	require.NoError(b, err)
	pids := map[int]bool{}
	for rows.Next() {
		var p int
		require.NoError(b, rows.Scan(&p))
		pids[p] = true
	}
	require.NoError(b, rows.Err())
	db.Close()
	return pids
}

// relationSizes is pg_total_relation_size of every table of schema.
func relationSizes(b *testing.B, schema string) map[string]int64 {
	db := openSchema(b, schema)
	defer db.Close()
	rows, err := db.Pool().Query(b.Context(), `SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
		JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relkind = 'r'`, schema)
	require.NoError(b, err)
	sizes := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		require.NoError(b, rows.Scan(&name, &n))
		sizes[name] = n
	}
	require.NoError(b, rows.Err())
	return sizes
}

// logSizes logs and reports what the run added to each table of schema,
// each compacted first (VACUUM FULL: the shadows' and inbox's dead rows
// of a short hot run are not what a fleet keeps): bytes per history row
// (B/hist-row) and, over the other tables, per device (B/device;
// page-granular, so coarse for few devices).
func logSizes(b *testing.B, schema string, before map[string]int64, devices int) {
	db := openSchema(b, schema)
	defer db.Close()
	ctx := b.Context()
	for name := range before {
		_, err := db.Pool().Exec(ctx, "VACUUM FULL "+name)
		require.NoError(b, err)
	}
	after := relationSizes(b, schema)
	var lines strings.Builder
	var other int64
	rows := map[string]int64{}
	names := slices.Sorted(maps.Keys(after))
	for _, name := range names {
		n := after[name]
		var r int64
		require.NoError(b, db.Pool().QueryRow(ctx, "SELECT count(*) FROM "+name).Scan(&r))
		rows[name] = r
		if r == 0 {
			continue
		}
		fmt.Fprintf(&lines, "; %s %d rows %d B (%d empty)", name, r, n, before[name])
		if name != "history" {
			other += n - before[name]
		}
	}
	if rows["history"] > 0 {
		b.ReportMetric(float64(after["history"]-before["history"])/float64(rows["history"]), "B/hist-row")
	}
	b.ReportMetric(float64(other)/float64(devices), "B/device")
	// One line each: a benchmark's output is cut after ten.
	b.Logf("tables with rows after the run (pg_total_relation_size after VACUUM FULL)%s", lines.String())
	// What the nodes did to each table, setup and warm-up included.
	st, err := db.Pool().Query(ctx, `SELECT relname, seq_scan, coalesce(idx_scan, 0), n_tup_ins, n_tup_upd, n_tup_del
		FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY relname`, schema)
	require.NoError(b, err)
	lines.Reset()
	for st.Next() {
		var name string
		var seq, idx, ins, upd, del int64
		require.NoError(b, st.Scan(&name, &seq, &idx, &ins, &upd, &del))
		if seq+idx+ins+upd+del > 0 {
			fmt.Fprintf(&lines, "; %s seq %d idx %d ins %d upd %d del %d", name, seq, idx, ins, upd, del)
		}
	}
	require.NoError(b, st.Err())
	b.Logf("table activity (pg_stat_user_tables: scans, rows inserted, updated, deleted)%s", lines.String())
}
