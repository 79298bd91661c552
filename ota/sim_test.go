package ota_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

// link is a Channel that queues frames for simulated devices and counts
// the block bytes served to each.
type link struct {
	mu     sync.Mutex
	inbox  map[string][][]byte
	sent   map[string]map[uint16]int // device → block → times served
	resent map[string]int64          // device → bytes served again
	down   map[string]bool           // links that lose everything sent
	log    map[string][]pcp.Message  // every downlink message per device
	order  []pcp.Message             // every downlink message, all devices
}

func newLink() *link {
	return &link{inbox: map[string][][]byte{}, sent: map[string]map[uint16]int{}, resent: map[string]int64{},
		down: map[string]bool{}, log: map[string][]pcp.Message{}}
}

func (l *link) SendFrame(_ context.Context, id string, frame []byte) error {
	m, err := pcp.DecodeMessage(frame, pcp.Downlink)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log[id] = append(l.log[id], m)
	l.order = append(l.order, m)
	if b, ok := m.(pcp.BlockAnswer); ok && b.Result == pcp.ResultOK {
		if l.sent[id] == nil {
			l.sent[id] = map[uint16]int{}
		}
		if l.sent[id][b.Block] > 0 {
			l.resent[id] += int64(len(b.Data))
		}
		l.sent[id][b.Block]++
	}
	if l.down[id] {
		return nil // lost on the way
	}
	l.inbox[id] = append(l.inbox[id], bytes.Clone(frame))
	return nil
}

func (l *link) pop(id string) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.inbox[id]
	if len(q) == 0 {
		return nil
	}
	l.inbox[id] = q[1:]
	return q[0]
}

// drop loses what is queued for the device.
func (l *link) drop(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inbox[id] = nil
}

func (l *link) messages(id string) []pcp.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]pcp.Message(nil), l.log[id]...)
}

func (l *link) clearLog(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log[id] = nil
}

// device is a simulated PCP device.
type device struct {
	id       string
	dl       *download.Downloader
	progress *download.MemProgress
	storage  *download.MemStorage
	uplink   []pcp.Message // every frame it sent
	trace    func(pcp.Message)
}

func newDevice(id, version string) *device {
	d := &device{id: id, progress: &download.MemProgress{}, storage: &download.MemStorage{}}
	d.dl = download.New(version, d.progress, d.storage, nil)
	return d
}

// send delivers device frames to the engine.
func (d *device) send(t testing.TB, e *ota.Engine, frames [][]byte) {
	for _, f := range frames {
		m, err := pcp.DecodeMessage(f, pcp.Uplink)
		require.NoError(t, err)
		d.uplink = append(d.uplink, m)
		if d.trace != nil {
			d.trace(m)
		}
		require.NoError(t, e.HandleFrame(context.Background(), d.id, f))
	}
}

// step handles one queued frame; it returns false when nothing was queued.
func (d *device) step(t testing.TB, e *ota.Engine, l *link) bool {
	f := l.pop(d.id)
	if f == nil {
		return false
	}
	out, err := d.dl.Handle(f)
	require.NoError(t, err)
	d.send(t, e, out)
	return true
}

// run handles frames until none is queued, or until stop says so.
func (d *device) run(t testing.TB, e *ota.Engine, l *link, stop func() bool) {
	for (stop == nil || !stop()) && d.step(t, e, l) {
	}
}

// wake is the device coming back: the platform hears it is online and the
// device sends what its progress says is next.
func (d *device) wake(t testing.TB, e *ota.Engine) {
	e.DeviceOnline(context.Background(), d.id)
	out, err := d.dl.Resume()
	require.NoError(t, err)
	d.send(t, e, out)
}

// runFlaky runs the device to the end of its upgrade over a link that
// drops with probability p per frame (each way): a drop loses that frame
// and everything in flight, then the device wakes again. It returns the
// number of drops.
func (d *device) runFlaky(t testing.TB, e *ota.Engine, l *link, rnd *rand.Rand, p float64) (drops int) {
	ctx := context.Background()
	for idle := 0; idle < 100; {
		f := l.pop(d.id)
		if f == nil {
			if !e.Upgrading(d.id) {
				return drops
			}
			idle++
			d.wake(t, e)
			continue
		}
		if rnd.Float64() < p {
			drops++
			l.drop(d.id)
			d.wake(t, e)
			continue
		}
		out, err := d.dl.Handle(f)
		require.NoError(t, err)
		for _, o := range out {
			if rnd.Float64() < p {
				drops++ // the rest of this batch is lost with the link
				l.drop(d.id)
				d.wake(t, e)
				break
			}
			d.send(t, e, [][]byte{o})
		}
	}
	t.Fatalf("device %s made no progress after 100 wakes", d.id)
	_ = ctx
	return drops
}

func content(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// setup returns an engine over an in-memory store with one software
// package of body at version and a link.
func setup(t testing.TB, cfg ota.Config, pkgs ...ota.Package) (*ota.Engine, *link, *ota.MemFiles) {
	l := newLink()
	files := &ota.MemFiles{}
	e, err := ota.New(ota.NewMemStore(), files, l, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e, l, files
}

func addPackage(t testing.TB, e *ota.Engine, files *ota.MemFiles, p ota.Package, body []byte) ota.Package {
	files.Put(p.ID, body)
	if p.Kind == "" {
		p.Kind = ota.Software
	}
	p, err := e.AddPackage(context.Background(), p)
	require.NoError(t, err)
	return p
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
