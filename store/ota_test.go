package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/otatest"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

func openOTA(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "doze.db"), &Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOTAConformance(t *testing.T) {
	otatest.Run(t, func(t *testing.T) ota.Store { return openOTA(t).OTA() })
}

// otaLink is a Channel queueing frames per device.
type otaLink struct {
	mu     sync.Mutex
	inbox  map[string][][]byte
	blocks map[string][]uint16 // blocks served per device, in order
}

func newOTALink() *otaLink {
	return &otaLink{inbox: map[string][][]byte{}, blocks: map[string][]uint16{}}
}

func (l *otaLink) SendFrame(_ context.Context, id string, frame []byte) error {
	m, err := pcp.DecodeMessage(frame, pcp.Downlink)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := m.(pcp.BlockAnswer); ok && b.Result == pcp.ResultOK {
		l.blocks[id] = append(l.blocks[id], b.Block)
	}
	l.inbox[id] = append(l.inbox[id], bytes.Clone(frame))
	return nil
}

// drive hands queued frames to the device until none is left or stop.
func (l *otaLink) drive(t *testing.T, e *ota.Engine, id string, dl *download.Downloader, stop func() bool) {
	for stop == nil || !stop() {
		l.mu.Lock()
		if len(l.inbox[id]) == 0 {
			l.mu.Unlock()
			return
		}
		f := l.inbox[id][0]
		l.inbox[id] = l.inbox[id][1:]
		l.mu.Unlock()
		out, err := dl.Handle(f)
		require.NoError(t, err)
		for _, o := range out {
			require.NoError(t, e.HandleFrame(context.Background(), id, o))
		}
	}
}

// TestOTAEngineRestart: an engine restarted mid-task (a new process over
// the same bbolt file) carries on: devices resume at their next block and
// the task ends in success (OTA-7, STO durability).
func TestOTAEngineRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "doze.db")
	files := ota.Dir(filepath.Join(dir, "packages"))
	require.NoError(t, os.Mkdir(string(files), 0o700))
	body := make([]byte, 10_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	n, err := files.Put("pkg", bytes.NewReader(body))
	require.NoError(t, err)
	require.Equal(t, int64(len(body)), n)

	db, err := Open(path, nil)
	require.NoError(t, err)
	l1 := newOTALink()
	e1, err := ota.New(db.OTA(), files, l1, ota.Config{})
	require.NoError(t, err)
	p, err := e1.AddPackage(ctx, ota.Package{ID: "pkg", Kind: ota.Software, Version: "V2.0", BlockSize: 250})
	require.NoError(t, err)
	require.Equal(t, 40, p.Blocks())
	devs := []string{"d-early", "d-mid", "d-silent"}
	progress := map[string]*download.MemProgress{}
	storage := map[string]*download.MemStorage{}
	for _, id := range devs {
		progress[id], storage[id] = &download.MemProgress{}, &download.MemStorage{}
	}
	_, err = e1.CreateTask(ctx, ota.TaskSpec{ID: "task", PackageID: "pkg", Devices: devs})
	require.NoError(t, err)
	stopAt := map[string]int{"d-early": 5, "d-mid": 22}
	for id, at := range stopAt {
		dl := download.New("V1.0", progress[id], storage[id], nil)
		l1.drive(t, e1, id, dl, func() bool { st, _ := progress[id].Load(); return st.Next == at })
	}
	// The process dies: frames in flight are lost, nothing is closed
	// gracefully beyond the file.
	require.NoError(t, e1.Close())
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	l2 := newOTALink()
	e2, err := ota.New(db.OTA(), files, l2, ota.Config{})
	require.NoError(t, err)
	defer e2.Close()
	for _, id := range devs {
		require.True(t, e2.Upgrading(id), "device %s after restart", id)
	}
	s, err := db.OTA().SubTask(ctx, "task", "d-mid")
	require.NoError(t, err)
	require.Equal(t, ota.StepDownload, s.Step)
	require.GreaterOrEqual(t, s.Blocks, 20, "progress is saved every tenth of the blocks")

	for _, id := range devs {
		dl := download.New("V1.0", progress[id], storage[id], nil) // the device rebooted too
		e2.DeviceOnline(ctx, id)
		out, err := dl.Resume()
		require.NoError(t, err)
		for _, o := range out {
			require.NoError(t, e2.HandleFrame(ctx, id, o))
		}
		l2.drive(t, e2, id, dl, nil)
		require.Equal(t, "V2.0", dl.Version(), "device %s", id)
		require.Equal(t, body, storage[id].Bytes(int64(len(body))), "device %s", id)
		served := l2.blocks[id]
		require.Equal(t, uint16(stopAt[id]), served[0], "device %s resumes at its next block", id)
		require.Len(t, served, 40-stopAt[id], "device %s: blocks served after the restart", id)
	}
	task, err := e2.Task(ctx, "task")
	require.NoError(t, err)
	require.Equal(t, ota.TaskSuccess, task.State)
	subs, err := e2.SubTasks(ctx, "task")
	require.NoError(t, err)
	for _, s := range subs {
		require.Equal(t, ota.SubSuccess, s.State, "%s", s)
	}
	require.NoError(t, db.Check())
}
