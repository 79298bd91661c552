package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// backend is one implementation's views, for BenchmarkOps.
type backend struct {
	name     string
	registry registry.Store
	commands command.Store
	push     push.Store
	history  interface {
		Append(...store.HistoryRecord) error
	}
	inbox interface {
		Put(context.Context, store.InboxEntry) (uint64, error)
		Delete(context.Context, ...uint64) error
	}
}

func backends(b *testing.B) []backend {
	bolt, err := store.Open(filepath.Join(b.TempDir(), "doze.db"), nil) // synced, like PostgreSQL's commit
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bolt.Close() })
	pg := openTest(b)
	return []backend{
		{"bbolt", bolt.Registry(), bolt.Commands(), bolt.Push(), bolt.History(), bolt.Inbox()},
		{"postgres", pg.Registry(), pg.Commands(), pg.Push(), pg.History(), pg.Inbox()},
	}
}

// BenchmarkOps measures each main store operation on bbolt and on
// PostgreSQL in the same run, one caller at a time (the latency a request
// sees); the package doc quotes the ratios.
func BenchmarkOps(b *testing.B) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for _, be := range backends(b) {
		dev := func(i int) registry.Device {
			return registry.Device{ID: fmt.Sprintf("%s-%09d", be.name, i), NodeID: fmt.Sprintf("86833303%07d", i),
				PSK: registry.PSK("0123456789abcdef"), Info: registry.Info{ManufacturerID: "acme", Model: "WM1"},
				NodeType: registry.NodeType("ENDPOINT"), Status: registry.Status("OFFLINE"), CreatedAt: t0}
		}
		n := 0
		b.Run("DevicePut/"+be.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n++
				if err := be.registry.Create(ctx, dev(n)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("DeviceGet/"+be.name, func(b *testing.B) {
			b.ReportAllocs()
			d := dev(0) // DevicePut starts at 1
			if err := be.registry.Create(ctx, d); err != nil && !errors.Is(err, registry.ErrExists) {
				b.Fatal(err)
			}
			id := d.ID
			for b.Loop() {
				if _, err := be.registry.Get(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
		seq := uint64(0)
		b.Run("CommandEnqueue/"+be.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				seq++
				c := commandtest.Cmd(commandtest.Device(int(seq%100)), seq)
				if err := be.commands.Write(ctx, command.Write{Commands: []command.Command{c}}); err != nil {
					b.Fatal(err)
				}
			}
		})
		var pseq atomic.Uint64
		pseq.Store(1 << 40)
		b.Run("CommandEnqueue8/"+be.name, func(b *testing.B) {
			// Eight callers at once (b.SetParallelism × GOMAXPROCS ≥ 8):
			// how commits are shared under load.
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					seq := pseq.Add(1)
					c := commandtest.Cmd(commandtest.Device(int(seq%100)), seq)
					if err := be.commands.Write(ctx, command.Write{Commands: []command.Command{c}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("CommandFront/"+be.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := be.commands.Front(ctx, commandtest.Device(1), 1, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("PushPutDelete/"+be.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				m := push.Message{ID: fmt.Sprintf("m%09d", i), URL: "https://app.example/cb", Body: []byte(`{"notifyType":"deviceDataChanged"}`),
					Created: t0, Expires: t0.Add(time.Hour)}
				if err := be.push.PutMessages(ctx, m); err != nil {
					b.Fatal(err)
				}
				if err := be.push.DeleteMessages(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("HistoryAppend/"+be.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				r := store.HistoryRecord{DeviceID: fmt.Sprintf("d%04d", i%1000), ServiceID: "Meter",
					Data: json.RawMessage(`{"v":1}`), Time: t0.Add(time.Duration(i) * time.Second)}
				if err := be.history.Append(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("InboxPutDelete/"+be.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := be.inbox.Put(ctx, store.InboxEntry{Endpoint: "ep", Path: "/19/0/0", Payload: []byte{1, 2, 3}, Time: t0})
				if err != nil {
					b.Fatal(err)
				}
				if err := be.inbox.Delete(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
