package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/registry/registrytest"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func openTemp(t testing.TB, opts *Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "doze.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, db.Check(), "bbolt consistency check")
		db.Close()
	})
	return db
}

// TestRegistryConformance: the bbolt registry store passes registrytest
// (STO-1).
func TestRegistryConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store { return openTemp(t, &Options{NoSync: true}).Registry() })
}

var products = registry.ProductsFunc(func(m, model string) bool { return m == "acme" && model == "WM1" })

var meter = registry.Info{ManufacturerID: "acme", DeviceType: "WaterMeter", Model: "WM1", ProtocolType: "CoAP"}

// TestRegistrySurvivesReopen: what Register acknowledged is there after
// Close and Open (STO-1), indexes included.
func TestRegistrySurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doze.db")
	db, err := Open(path, nil)
	require.NoError(t, err)
	r, err := registry.New(db.Registry(), products, registry.Config{})
	require.NoError(t, err)
	ctx := context.Background()
	g, err := r.CreateGroup(ctx, "north", "")
	require.NoError(t, err)
	d, err := r.Register(ctx, registry.Enrollment{NodeID: "urn:imei:861", Info: meter, Groups: []string{g.ID}})
	require.NoError(t, err)
	_, err = r.Connect(ctx, "861", registry.Connection{PSK: d.PSK})
	require.NoError(t, err)
	plain, err := r.Register(ctx, registry.Enrollment{NodeID: "862", Info: meter, Security: registry.SecurityNone})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	r, err = registry.New(db.Registry(), products, registry.Config{})
	require.NoError(t, err)
	got, err := r.GetByNodeID(ctx, "861")
	require.NoError(t, err)
	require.Equal(t, d.ID, got.ID)
	require.Equal(t, d.PSK.Hex(), got.PSK.Hex())
	require.Equal(t, registry.StatusOnline, got.Status)
	require.True(t, got.Bound)
	require.Equal(t, registry.SecurityPSK, got.Security)
	got, err = r.Get(ctx, plain.ID)
	require.NoError(t, err)
	require.Equal(t, registry.SecurityNone, got.Security, "security survives a reopen (SEC-1)")
	require.Empty(t, got.PSK)
	members, _, err := r.Members(ctx, g.ID, registry.Query{Status: registry.StatusOnline})
	require.NoError(t, err)
	require.Len(t, members, 1)
	require.NoError(t, db.Check())
}

// TestRegistryGroupCommit: concurrent Registers share bbolt commits
// (DB.commit), so n callers cost far fewer than n fsyncs (STO-1).
// Commits are counted by bbolt's transaction id, which every commit
// raises by one.
func TestRegistryGroupCommit(t *testing.T) {
	db := openTemp(t, nil) // with fsync
	r, err := registry.New(db.Registry(), products, registry.Config{})
	require.NoError(t, err)
	before := lastTxID(t, db)
	const n = 64
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := r.Register(context.Background(), registry.Enrollment{NodeID: fmt.Sprintf("86%013d", i), Info: meter})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "Register")
	}
	commits := lastTxID(t, db) - before
	devs, total, err := db.Registry().List(context.Background(), registry.Query{PageSize: 2 * n})
	require.NoError(t, err)
	require.Equal(t, n, total, "every Register wrote its device")
	require.Len(t, devs, n)
	require.Positive(t, commits)
	require.Less(t, commits, n/2, "%d Registers used %d commits; the group commit should share them", n, commits)
	t.Logf("%d concurrent Registers, %d commits", n, commits)
}

// lastTxID is the id of db's last committed write transaction.
func lastTxID(t testing.TB, db *DB) int {
	t.Helper()
	var id int
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }))
	return id
}

// The crash test (STO-1): a child process registers devices from 8
// goroutines and prints each deviceId after Register returned; the parent
// kills it with SIGKILL at a random moment, reopens the file, and finds
// every printed device; bbolt's consistency check passes. Three rounds on
// one file.
const crashEnv = "DOZE_STORE_CRASH_CHILD"

func TestRegistryCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("run by TestRegistryCrash in a child process")
	}
	db, err := Open(path, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	if os.Getenv(crashEnv+"_ROUND") == "hold" { // TestOpenLockedByAnotherProcess
		os.Stdout.WriteString("holding\n")
		select {}
	}
	r, err := registry.New(db.Registry(), products, registry.Config{})
	if err != nil {
		os.Exit(3)
	}
	var out sync.Mutex
	var seq atomic.Int64
	var wg sync.WaitGroup
	round := os.Getenv(crashEnv + "_ROUND")
	for range 8 {
		wg.Go(func() {
			for {
				n := seq.Add(1)
				d, err := r.Register(context.Background(), registry.Enrollment{NodeID: fmt.Sprintf("r%s-%d", round, n), Info: meter})
				if err != nil {
					fmt.Println("register:", err)
					os.Exit(3)
				}
				out.Lock()
				os.Stdout.WriteString("ok " + d.ID + "\n")
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestRegistryCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	total := 0
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRegistryCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, fmt.Sprintf("%s_ROUND=%d", crashEnv, round))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		var acked []string
		lines := make(chan string)
		go func() {
			defer close(lines)
			br := bufio.NewReader(stdout)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return // a line cut by the kill has no '\n': not acknowledged
				}
				lines <- strings.TrimSuffix(line, "\n")
			}
		}()
		want := 100 + rand.IntN(200) // kill at a random point
		deadline := time.After(60 * time.Second)
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("round %d: child exited early after %d devices", round, len(acked))
				}
				if id, ok := strings.CutPrefix(line, "ok "); ok {
					acked = append(acked, id)
				} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "register:") {
					t.Fatalf("round %d: child: %s", round, line)
				}
				if len(acked) >= want {
					break read
				}
			case <-deadline:
				t.Fatalf("round %d: child acknowledged only %d devices in 60 s", round, len(acked))
			}
		}
		require.NoError(t, cmd.Process.Kill()) // SIGKILL
		// Lines written before the kill landed are acknowledged too.
		for line := range lines {
			if id, ok := strings.CutPrefix(line, "ok "); ok {
				acked = append(acked, id)
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "the child must die by the signal")

		db, err := Open(path, nil)
		require.NoError(t, err, "round %d: reopen after SIGKILL", round)
		require.NoError(t, db.Check(), "round %d: bbolt consistency check", round)
		st := db.Registry()
		for _, id := range acked {
			_, err := st.Get(context.Background(), id)
			require.NoError(t, err, "round %d: device %s was acknowledged before the kill", round, id)
		}
		_, n, err := st.List(context.Background(), registry.Query{})
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, total+len(acked))
		total = n
		t.Logf("round %d: %d acknowledged, %d stored", round, len(acked), n)
		require.NoError(t, db.Close())
	}
}

func sampleDevice() registry.Device {
	at := time.Date(2026, 5, 1, 8, 0, 0, 123, time.UTC)
	return registry.Device{
		ID: "0196a1b2-0000-7000-8000-000000000001", NodeID: "urn:imei:861234567890123", VerifyCode: "code",
		PSK:       registry.PSK{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		Info:      registry.Info{ManufacturerID: "acme", ManufacturerName: "Acme", DeviceType: "WaterMeter", Model: "WM1", ProtocolType: "CoAP", Name: "水表", SWVersion: "1", FWVersion: "2", Mode: "PSM"},
		GatewayID: "gw", NodeType: registry.Endpoint, Groups: []string{"a", "b"}, Status: registry.StatusOnline,
		Timeout: 180 * time.Second, Bound: true, Connected: true,
		CreatedAt: at, LastModified: at.Add(time.Second), LastSeen: at.Add(time.Hour), DisconnectedAt: time.Time{}, Deadline: at.Add(26 * time.Hour),
	}
}

func TestDeviceRecordRoundTrip(t *testing.T) {
	for _, d := range []registry.Device{sampleDevice(), {ID: "x", NodeID: "y"}} {
		rec := appendDevice(nil, &d)
		got, err := decodeDevice(rec)
		require.NoError(t, err)
		require.Equal(t, appendDevice(nil, &got), rec, "decode then encode gives the same bytes")
		require.Equal(t, d.PSK.Hex(), got.PSK.Hex())
		require.True(t, d.Deadline.Equal(got.Deadline))
		require.Equal(t, d.Groups, got.Groups)
	}
	rec := appendDevice(nil, new(sampleDevice()))
	for _, bad := range [][]byte{nil, {2}, rec[:len(rec)-1], append(slices.Clone(rec), 0)} {
		_, err := decodeDevice(bad)
		require.ErrorIs(t, err, errRecord, "decodeDevice(% x)", bad)
	}
}

// TestDeviceRecordBeforeSecurity: a record written before SEC-1 (the
// sample device, encoded by the code of that time and kept in testdata)
// still decodes, as a PSK device with its key, and re-encodes to the same
// bytes; only a NONE device sets the new flag bit.
func TestDeviceRecordBeforeSecurity(t *testing.T) {
	h, err := os.ReadFile("testdata/device-record-v1.hex")
	require.NoError(t, err)
	rec, err := hex.DecodeString(strings.TrimSpace(string(h)))
	require.NoError(t, err)
	got, err := decodeDevice(rec)
	require.NoError(t, err)
	want := sampleDevice()
	require.Equal(t, registry.SecurityPSK, got.Security, "an old record is a PSK device")
	require.Equal(t, want.PSK.Hex(), got.PSK.Hex())
	require.Equal(t, want.NodeID, got.NodeID)
	require.True(t, want.Deadline.Equal(got.Deadline))
	require.Equal(t, rec, appendDevice(nil, &got), "a PSK device is written as before")

	got.Security, got.PSK = registry.SecurityNone, nil
	again, err := decodeDevice(appendDevice(nil, &got))
	require.NoError(t, err)
	require.Equal(t, registry.SecurityNone, again.Security)
}

// TestDeviceRecordOwner: the testdata record from before ownership decodes
// with no AppID (APP-3: the platform gives it its default app); a record
// with an AppID keeps it, with every other security too.
func TestDeviceRecordOwner(t *testing.T) {
	h, err := os.ReadFile("testdata/device-record-v1.hex")
	require.NoError(t, err)
	rec, err := hex.DecodeString(strings.TrimSpace(string(h)))
	require.NoError(t, err)
	old, err := decodeDevice(rec)
	require.NoError(t, err)
	require.Empty(t, old.AppID, "an old record has no owner")
	for _, sec := range []registry.Security{registry.SecurityPSK, registry.SecurityNone, registry.SecuritySecret} {
		d := sampleDevice()
		d.AppID, d.Security = "app-a", sec
		if sec != registry.SecurityPSK {
			d.PSK = nil
		}
		if sec == registry.SecuritySecret {
			d.SecretHash = registry.HashSecret("a secret of sixteen")
		}
		got, err := decodeDevice(appendDevice(nil, &d))
		require.NoError(t, err)
		require.Equal(t, "app-a", got.AppID, "%s", sec)
		require.Equal(t, sec, got.Security)
	}
}

// FuzzDecodeDevice: a damaged record is an error, never a panic; a record
// that decodes re-encodes to the same bytes.
func FuzzDecodeDevice(f *testing.F) {
	d := sampleDevice()
	f.Add(appendDevice(nil, &d))
	f.Add(appendDevice(nil, &registry.Device{ID: "x"}))
	f.Add(appendDevice(nil, &registry.Device{ID: "x", AppID: "app-a"}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDevice(b)
		if err != nil {
			return
		}
		if again := appendDevice(nil, &d); !bytes.Equal(again, b) {
			// Non-canonical varints decode but re-encode shorter; the
			// second round must be stable.
			d2, err := decodeDevice(again)
			require.NoError(t, err)
			require.Equal(t, again, appendDevice(nil, &d2))
		}
	})
}

// FuzzDecodeGroup: as FuzzDecodeDevice, for group records.
func FuzzDecodeGroup(f *testing.F) {
	f.Add(appendGroup(nil, &registry.Group{ID: "g-1", Name: "north", Description: "north side", CreatedAt: time.Unix(1700000000, 5)}))
	f.Add(appendGroup(nil, &registry.Group{}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGroup(b)
		if err != nil {
			require.ErrorIs(t, err, errRecord)
			return
		}
		again := appendGroup(nil, &g)
		g2, err := decodeGroup(again)
		require.NoError(t, err)
		require.Equal(t, again, appendGroup(nil, &g2), "re-encoding is stable")
	})
}

// Benchmarks for the figures in registry/doc.go: Register and Get per
// second on bbolt with 1, 8 and 64 concurrent callers (Register with fsync,
// as in production), and the file size per device.
//
//	go test ./store -run '^$' -bench Registry -benchtime 2s

func benchParallel(b *testing.B, n int, fn func(i int64)) {
	b.ReportAllocs()
	var seq atomic.Int64
	if n == 1 {
		for b.Loop() {
			fn(seq.Add(1))
		}
	} else {
		b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				fn(seq.Add(1))
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkRegistryRegister(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("bbolt/callers=%d", n), func(b *testing.B) {
			db := openTemp(b, nil)
			r, err := registry.New(db.Registry(), products, registry.Config{})
			if err != nil {
				b.Fatal(err)
			}
			benchParallel(b, n, func(i int64) {
				if _, err := r.Register(context.Background(), registry.Enrollment{NodeID: fmt.Sprintf("86%013d", i), Info: meter}); err != nil {
					b.Error(err)
				}
			})
		})
	}
}

func BenchmarkRegistryGet(b *testing.B) {
	const devices = 10000
	db := openTemp(b, &Options{NoSync: true})
	r, err := registry.New(db.Registry(), products, registry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ids := fill(b, r, devices)
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("bbolt/callers=%d", n), func(b *testing.B) {
			benchParallel(b, n, func(i int64) {
				if _, err := r.Get(context.Background(), ids[i%devices]); err != nil {
					b.Error(err)
				}
			})
		})
	}
}

// fill registers n devices from 64 goroutines and returns their ids.
func fill(b *testing.B, r *registry.Registry, n int) []string {
	ids := make([]string, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				d, err := r.Register(context.Background(), registry.Enrollment{NodeID: fmt.Sprintf("86%013d", i), Info: meter})
				if err != nil {
					b.Error(err)
					return
				}
				ids[i] = d.ID
			}
		})
	}
	wg.Wait()
	return ids
}

// BenchmarkRegistryFileSize registers 100,000 devices (deviceInfo of about
// 40 bytes, no groups) and reports the bbolt file size per device.
func BenchmarkRegistryFileSize(b *testing.B) {
	const devices = 100_000
	for b.Loop() {
		db := openTemp(b, &Options{NoSync: true})
		r, err := registry.New(db.Registry(), products, registry.Config{})
		if err != nil {
			b.Fatal(err)
		}
		fill(b, r, devices)
		fi, err := os.Stat(db.Path())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/devices, "file-B/device")
	}
}

// BenchmarkCommit compares ways to make concurrent small writes durable,
// in one run: one bbolt Update per write, bbolt's Batch (10 ms
// MaxBatchDelay), and DB.commit (group commit without a timer), which
// every write of the store uses.
func BenchmarkCommit(b *testing.B) {
	val := make([]byte, 200)
	ways := []struct {
		name string
		do   func(db *DB, fn func(*bolt.Tx) error) error
	}{
		{"update", func(db *DB, fn func(*bolt.Tx) error) error { return db.bolt.Update(fn) }},
		{"bolt-batch", func(db *DB, fn func(*bolt.Tx) error) error { return db.bolt.Batch(fn) }},
		{"group-commit", func(db *DB, fn func(*bolt.Tx) error) error { return db.commit(fn) }},
	}
	for _, n := range []int{1, 8, 64} {
		for _, w := range ways {
			b.Run(fmt.Sprintf("%s/callers=%d", w.name, n), func(b *testing.B) {
				db := openTemp(b, nil)
				require.NoError(b, db.bolt.Update(func(tx *bolt.Tx) error {
					_, err := tx.CreateBucketIfNotExists([]byte("bench"))
					return err
				}))
				benchParallel(b, n, func(i int64) {
					err := w.do(db, func(tx *bolt.Tx) error {
						return tx.Bucket([]byte("bench")).Put(binary.BigEndian.AppendUint64(nil, uint64(i)), val)
					})
					if err != nil {
						b.Error(err)
					}
				})
			})
		}
	}
}

// TestOpenLockedByAnotherProcess: a file another process holds open fails
// with ErrLocked, naming the file.
func TestOpenLockedByAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "held.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRegistryCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path, crashEnv+"_ROUND=hold")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "holding\n", line)

	_, err = Open(path, &Options{LockTimeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), path)
}

// TestGroupCommitFailuresStayApart: in a shared commit, a write that fails
// gets its own error and the others are committed; a write that panics
// panics in its own goroutine and the commit path keeps working.
func TestGroupCommitFailuresStayApart(t *testing.T) {
	db := openTemp(t, &Options{NoSync: true})
	bad := errors.New("bad write")
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.commit(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("t"))
				if err != nil {
					return err
				}
				if err := b.Put([]byte{byte(i)}, []byte("v")); err != nil {
					return err
				}
				if i%4 == 0 {
					return bad // after writing: the write must be rolled back
				}
				return nil
			})
		})
	}
	wg.Wait()
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		for i := range n {
			got := tx.Bucket([]byte("t")).Get([]byte{byte(i)})
			if i%4 == 0 {
				require.ErrorIs(t, errs[i], bad)
				require.Nil(t, got, "write %d failed; its put must be rolled back", i)
			} else {
				require.NoError(t, errs[i])
				require.Equal(t, "v", string(got), "write %d", i)
			}
		}
		return nil
	}))

	require.PanicsWithValue(t, "boom", func() {
		db.commit(func(*bolt.Tx) error { panic("boom") })
	})
	require.NoError(t, db.commit(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("t")).Put([]byte("after"), []byte("v"))
	}), "commits still work after a panic")
}

// TestRegistryMatchesMemStore applies one random sequence of writes to the
// bbolt store and to registry.MemStore and compares every index-backed
// query after each step: the indexes must never drift from the records.
func TestRegistryMatchesMemStore(t *testing.T) {
	ctx := context.Background()
	bst := openTemp(t, &Options{NoSync: true}).Registry()
	mem := registry.NewMemStore()
	stores := []registry.Store{bst, mem}
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	statuses := []registry.Status{registry.StatusInactive, registry.StatusOnline, registry.StatusOffline, registry.StatusAbnormal}
	groups := []string{"g0", "g1", "g2"}
	for _, g := range groups {
		for _, st := range stores {
			require.NoError(t, st.CreateGroup(ctx, registry.Group{ID: g, Name: "name-" + g}))
		}
	}
	applied := 0
	id := func(n int) string { return fmt.Sprintf("d%02d", n) }
	// both applies op to each store and requires the same outcome.
	both := func(step int, op func(st registry.Store) error) {
		var errs [2]error
		for i, st := range stores {
			errs[i] = op(st)
		}
		require.Equal(t, errs[1] == nil, errs[0] == nil, "step %d: bbolt %v, memory %v", step, errs[0], errs[1])
		if errs[0] == nil {
			applied++
		}
	}
	for step := range 400 {
		n := rng.IntN(20)
		switch k := rng.IntN(10); {
		case k < 3:
			d := registry.Device{ID: id(n), NodeID: fmt.Sprint("node", n), Status: statuses[rng.IntN(4)],
				Info:     registry.Info{ManufacturerID: "m", Model: fmt.Sprint("model", rng.IntN(3))},
				NodeType: registry.Endpoint, Deadline: base.Add(time.Duration(rng.IntN(100)) * time.Minute)}
			if rng.IntN(3) == 0 {
				d.GatewayID = id(rng.IntN(20))
			}
			if rng.IntN(2) == 0 {
				d.Groups = []string{groups[rng.IntN(3)]}
			}
			both(step, func(st registry.Store) error { return st.Create(ctx, d) })
		case k < 7:
			status, model, g, dl := statuses[rng.IntN(4)], fmt.Sprint("model", rng.IntN(3)), groups[rng.IntN(3)], rng.IntN(100)
			join := rng.IntN(2) == 0
			both(step, func(st registry.Store) error {
				_, err := st.Update(ctx, id(n), func(d *registry.Device) error {
					d.Status, d.Info.Model = status, model
					d.Deadline = base.Add(time.Duration(dl) * time.Minute)
					if dl%5 == 0 {
						d.Deadline = time.Time{}
					}
					if join {
						d.Groups = append(d.Groups, g)
					} else {
						d.Groups = slices.DeleteFunc(d.Groups, func(x string) bool { return x == g })
					}
					return nil
				})
				return err
			})
		case k < 9:
			both(step, func(st registry.Store) error { _, err := st.Delete(ctx, id(n), nil); return err })
		default:
			g := groups[rng.IntN(3)]
			both(step, func(st registry.Store) error { return st.DeleteGroup(ctx, g) })
			both(step, func(st registry.Store) error { return st.CreateGroup(ctx, registry.Group{ID: g, Name: "name-" + g}) })
		}
		queries := []registry.Query{{}, {PageNo: 1, PageSize: 3}}
		for _, s := range statuses {
			queries = append(queries, registry.Query{Status: s})
		}
		for i := range 3 {
			queries = append(queries, registry.Query{ManufacturerID: "m", Model: fmt.Sprint("model", i)},
				registry.Query{GroupID: groups[i], Status: registry.StatusOnline}, registry.Query{GroupID: groups[i]})
		}
		for i := range 20 {
			queries = append(queries, registry.Query{GatewayID: id(i)})
		}
		for _, q := range queries {
			a, na, err := bst.List(ctx, q)
			require.NoError(t, err)
			b, nb, err := mem.List(ctx, q)
			require.NoError(t, err)
			require.Equal(t, nb, na, "step %d: total of %+v", step, q)
			require.Equal(t, deviceIDs(b), deviceIDs(a), "step %d: List(%+v)", step, q)
		}
		a, err := bst.Due(ctx, base.Add(50*time.Minute), 100)
		require.NoError(t, err)
		b, err := mem.Due(ctx, base.Add(50*time.Minute), 100)
		require.NoError(t, err)
		require.ElementsMatch(t, deviceIDs(b), deviceIDs(a), "step %d: Due", step)
	}
	require.Greater(t, applied, 150, "enough of the random writes succeeded to test something")
	t.Logf("%d of the random writes succeeded", applied)
}

func deviceIDs(ds []registry.Device) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// A registry kept in a bbolt file survives a restart.
func ExampleDB_Registry() {
	dir, err := os.MkdirTemp("", "doze-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "doze.db")
	ctx := context.Background()
	catalog := registry.ProductsFunc(func(m, model string) bool { return m == "acme" && model == "WM1" })

	db, err := Open(path, nil)
	if err != nil {
		panic(err)
	}
	r, err := registry.New(db.Registry(), catalog, registry.Config{})
	if err != nil {
		panic(err)
	}
	d, err := r.Register(ctx, registry.Enrollment{
		NodeID: "861234567890123",
		Info:   registry.Info{ManufacturerID: "acme", DeviceType: "WaterMeter", Model: "WM1", ProtocolType: "CoAP"},
	})
	if err != nil {
		panic(err)
	}
	r.Close()
	db.Close() // Register returned: the device is on disk

	db, err = Open(path, nil)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	r, err = registry.New(db.Registry(), catalog, registry.Config{})
	if err != nil {
		panic(err)
	}
	got, err := r.GetByNodeID(ctx, "urn:imei:861234567890123")
	if err != nil {
		panic(err)
	}
	fmt.Println(got.ID == d.ID, got.Status, got.PSK.Hex() == d.PSK.Hex(), db.Check())
	// Output: true INACTIVE true <nil>
}

// TestGroupCommitPanicInQueuedWrite: a write that panics while it waits
// in the queue behind another commit (so another goroutine leads the
// commit it is part of) still panics in its own goroutine, not as an
// error value, and the writes beside it are committed.
func TestGroupCommitPanicInQueuedWrite(t *testing.T) {
	db := openTemp(t, &Options{NoSync: true})
	release, first := holdCommit(db)
	panicked := make(chan any, 1)
	result := make(chan error, 1)
	queued := func(fn func(*bolt.Tx) error, out chan error) {
		defer func() {
			if p := recover(); p != nil {
				panicked <- p
			}
		}()
		out <- db.commit(fn)
	}
	queuedLen := func(n int) func() bool { return func() bool { return queueLen(db) == n } }
	ok := make(chan error, 1)
	go queued(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("t"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}, ok)
	require.Eventually(t, queuedLen(1), 5*time.Second, time.Millisecond, "the first write queues behind the held commit")
	// Queued second, the panicking write does not lead the next commit.
	go queued(func(*bolt.Tx) error { panic("boom") }, result)
	require.Eventually(t, queuedLen(2), 5*time.Second, time.Millisecond, "the second write queues too")
	close(release)
	require.NoError(t, <-first)
	require.NoError(t, <-ok, "the write beside the panicking one is committed")
	select {
	case p := <-panicked:
		require.Equal(t, "boom", p)
	case err := <-result:
		t.Fatalf("the panicking write returned %v instead of panicking", err)
	}
}

// TestRegistryAfterClose: a registry store used after DB.Close fails with
// ErrClosed, as errors.go promises, for reads and writes.
func TestRegistryAfterClose(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "doze.db"), &Options{NoSync: true})
	require.NoError(t, err)
	st := db.Registry()
	require.NoError(t, db.Close())
	ctx := context.Background()
	_, err = st.Get(ctx, "x")
	require.ErrorIs(t, err, ErrClosed, "Get after Close")
	err = st.CreateGroup(ctx, registry.Group{ID: "g", Name: "g"})
	require.ErrorIs(t, err, ErrClosed, "CreateGroup after Close")
	require.ErrorIs(t, db.Check(), ErrClosed, "Check after Close")
}

// TestGroupCommitRerunCountsOnce: a write that shares a commit with one
// that fails is rolled back and run again without it (bolt.Batch's
// contract, kept by DB.commit); what it reports must come from the run
// that was committed. History.Prune queued in front of a failing write
// deletes each old record once and says so once; the failing write gets
// its own error and leaves nothing behind.
func TestGroupCommitRerunCountsOnce(t *testing.T) {
	db := openTemp(t, &Options{NoSync: true})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := db.History()
	for i := range 5 {
		require.NoError(t, h.Append(HistoryRecord{DeviceID: "d", ServiceID: "s", Data: []byte(`{}`), Time: t0.Add(time.Duration(i) * time.Minute)}))
	}
	release, first := holdCommit(db)
	queuedLen := func(n int) func() bool { return func() bool { return queueLen(db) == n } }
	type pruned struct {
		n   int
		err error
	}
	prune := make(chan pruned, 1)
	go func() {
		n, err := h.Prune(t0.Add(3 * time.Minute))
		prune <- pruned{n, err}
	}()
	require.Eventually(t, queuedLen(1), 5*time.Second, time.Millisecond, "Prune queues behind the held commit")
	bad := errors.New("bad write")
	failed := make(chan error, 1)
	go func() {
		failed <- db.commit(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketHistory).Put([]byte("junk"), []byte("x")); err != nil {
				return err
			}
			return bad
		})
	}()
	require.Eventually(t, queuedLen(2), 5*time.Second, time.Millisecond, "the failing write queues behind Prune")
	close(release)
	require.NoError(t, <-first)
	require.ErrorIs(t, <-failed, bad)
	p := <-prune
	require.NoError(t, p.err)
	require.Equal(t, 3, p.n, "Prune ran twice (the shared commit was rolled back) but deleted and counted 3 records")
	recs, total, err := h.Query(HistoryQuery{DeviceID: "d", Page: -1})
	require.NoError(t, err)
	require.Equal(t, 2, total)
	require.Len(t, recs, 2)
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		require.Nil(t, tx.Bucket(bucketHistory).Get([]byte("junk")), "the failing write was rolled back")
		return nil
	}))
}

// holdCommit starts a commit and holds it until release is closed, so
// that the writes made meanwhile queue for the next commit; first gets
// the held write's result.
func holdCommit(db *DB) (release chan struct{}, first chan error) {
	entered := make(chan struct{})
	release, first = make(chan struct{}), make(chan error, 1)
	go func() {
		first <- db.commit(func(tx *bolt.Tx) error {
			select {
			case <-entered:
			default:
				close(entered)
				<-release // hold the commit so the next writes queue
			}
			return nil
		})
	}()
	<-entered
	return release, first
}

// queueLen is how many writes wait for the next commit.
func queueLen(db *DB) int {
	db.group.mu.Lock()
	defer db.group.mu.Unlock()
	return len(db.group.queue)
}
