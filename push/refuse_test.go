package push

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// brokenStore is a MemoryStore whose writes of messages, or reads of
// subscriptions, fail on demand (a full disk, a damaged file).
type brokenStore struct {
	*MemoryStore
	failPut, failRead bool
}

var errDisk = errors.New("disk full")

func (s *brokenStore) PutMessages(ctx context.Context, msgs ...Message) error {
	if s.failPut {
		return errDisk
	}
	return s.MemoryStore.PutMessages(ctx, msgs...)
}

func (s *brokenStore) Subscriptions(ctx context.Context, f Filter) ([]Subscription, error) {
	if s.failRead {
		return nil, errDisk
	}
	return s.MemoryStore.Subscriptions(ctx, f)
}

// syncBuffer is a log sink safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestRefusedCountedLogged: a push that cannot be stored returns an error
// to the caller (who keeps the uplink), and is counted in Stats.Refused and
// logged with its reason (SEC-6). Nothing is half-stored.
func TestRefusedCountedLogged(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	st := &brokenStore{MemoryStore: NewMemoryStore()}
	// No subscriber cache: every report reads the (failing) store.
	e, err := New(st, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), SubscriptionCache: -1})
	require.NoError(t, err)
	defer e.Close()
	subscribe(t, e, "app1", DeviceDataChanged, "http://203.0.113.7:8080/one", "")
	subscribe(t, e, "app1", DeviceDatasChanged, "http://203.0.113.7:8080/all", "")

	st.failPut = true
	rep := Report{DeviceID: "d1", GatewayID: "d1", Services: []ServiceData{battery, connectivity}}
	_, err = e.PublishReport(ctx, "app1", rep)
	require.ErrorIs(t, err, errDisk, "PublishReport with the store failing")
	require.EqualValues(t, 3, e.Stats().Refused, "two deviceDataChanged and one deviceDatasChanged refused")
	require.Zero(t, e.Stats().Enqueued)
	require.Contains(t, logs.String(), `msg="push: not accepted"`)
	require.Contains(t, logs.String(), "messages=3")
	require.Contains(t, logs.String(), "disk full", "the log gives the reason")

	id, err := e.Send(ctx, "http://203.0.113.7:8080/cmd", []byte(`{}`), "")
	require.ErrorIs(t, err, errDisk)
	require.Empty(t, id, "no webhook-id for a push that was not stored")
	require.EqualValues(t, 4, e.Stats().Refused)

	st.failPut, st.failRead = false, true
	_, err = e.Publish(ctx, "app1", deleted)
	require.ErrorIs(t, err, errDisk)
	_, err = e.PublishReport(ctx, "app1", rep)
	require.ErrorIs(t, err, errDisk)
	require.EqualValues(t, 6, e.Stats().Refused, "a notification whose subscribers could not be read counts once")

	msgs, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs)
	require.Equal(t, 4, strings.Count(logs.String(), `msg="push: not accepted"`), "one log line per refused call")
}

// TestRefusedQueueFullAndClosed: the other two refusals are counted too.
func TestRefusedQueueFullAndClosed(t *testing.T) {
	hang := newHangingSink(t)
	var logs syncBuffer
	e, _ := newTestEngine(t, Config{Allow: allowLoopback, MaxQueued: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	run(t, e)
	ctx := context.Background()
	for range 2 {
		_, err := e.Send(ctx, hang.url("/"), []byte(`{}`), "")
		require.NoError(t, err)
	}
	_, err := e.Send(ctx, hang.url("/"), []byte(`{}`), "")
	require.ErrorIs(t, err, ErrQueueFull)
	require.EqualValues(t, 1, e.Stats().Refused)
	require.Contains(t, logs.String(), "MaxQueued")
	require.NoError(t, e.Close())
	_, err = e.Send(ctx, hang.url("/"), []byte(`{}`), "")
	require.ErrorIs(t, err, ErrClosed)
	require.EqualValues(t, 2, e.Stats().Refused)
	require.Contains(t, logs.String(), ErrClosed.Error())
}
