package push

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newTestEngine(t *testing.T, cfg Config) (*Engine, *MemoryStore) {
	t.Helper()
	st := NewMemoryStore()
	e, err := New(st, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e, st
}

// TestSubscribe covers PSH-1: an id on creation, get, list all and by type.
func TestSubscribe(t *testing.T) {
	e, _ := newTestEngine(t, Config{})
	ctx := context.Background()
	a, err := e.Subscribe(ctx, Subscription{AppID: "app1", NotifyType: DeviceDataChanged, CallbackURL: "http://203.0.113.7:8080/data"})
	require.NoError(t, err)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, a.ID, "a UUIDv7 id")
	require.False(t, a.Created.IsZero())
	b, err := e.Subscribe(ctx, Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7:8080/devices"})
	require.NoError(t, err)
	require.NotEqual(t, a.ID, b.ID)
	// §5.17: different URLs may receive the same type.
	c, err := e.Subscribe(ctx, Subscription{AppID: "app1", NotifyType: DeviceDataChanged, CallbackURL: "http://203.0.113.7:8080/data2"})
	require.NoError(t, err)

	got, err := e.Subscription(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a.CallbackURL, got.CallbackURL)

	all, err := e.Subscriptions(ctx, Filter{AppID: "app1"})
	require.NoError(t, err)
	require.Len(t, all, 3)
	data, err := e.Subscriptions(ctx, Filter{AppID: "app1", NotifyType: DeviceDataChanged})
	require.NoError(t, err)
	require.Equal(t, []string{a.ID, c.ID}, []string{data[0].ID, data[1].ID})

	// The same app, type and URL again: the existing subscription, not a second one.
	again, err := e.Subscribe(ctx, Subscription{AppID: "app1", NotifyType: DeviceDataChanged, CallbackURL: "http://203.0.113.7:8080/data", Secret: "k"})
	require.NoError(t, err)
	require.Equal(t, a.ID, again.ID)
	require.Equal(t, Secret("k"), again.Secret, "the new secret replaces the old")
	all, err = e.Subscriptions(ctx, Filter{AppID: "app1"})
	require.NoError(t, err)
	require.Len(t, all, 3)
}

// TestSubscribeRefuses covers PSH-1/PSH-2 refusals, each with its own error.
func TestSubscribeRefuses(t *testing.T) {
	e, _ := newTestEngine(t, Config{})
	ctx := context.Background()
	_, err := e.Subscribe(ctx, Subscription{AppID: "app1", NotifyType: DeviceDataChanged, CallbackURL: "http://203.0.113.7:8080/"})
	require.NoError(t, err)
	cases := []struct {
		s    Subscription
		want error
	}{
		{Subscription{AppID: "app1", NotifyType: "deviceChanged", CallbackURL: "http://203.0.113.7:8080/"}, ErrNotifyType},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7:8080"}, ErrURLNoPath},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7/a"}, ErrURLNoPort},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "mqtt://203.0.113.7:1883/a"}, ErrURLScheme},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://:8080/a"}, ErrURLNoHost},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://169.254.169.254:80/latest"}, ErrAddressDenied},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://127.0.0.1:8080/"}, ErrAddressDenied},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7:8080/", Secret: "whsec_%%%"}, ErrSecret},
		// §4.5: one app, one host and port.
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7:9090/"}, ErrOriginConflict},
		{Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.8:8080/"}, ErrOriginConflict},
	}
	for _, c := range cases {
		_, err := e.Subscribe(ctx, c.s)
		require.ErrorIs(t, err, c.want, "Subscribe(%+v)", c.s)
	}
	// Another application may use another host.
	_, err = e.Subscribe(ctx, Subscription{AppID: "app2", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.8:8080/"})
	require.NoError(t, err)
	// Host case and scheme do not matter, host and port do.
	_, err = e.Subscribe(ctx, Subscription{AppID: "app2", NotifyType: BindDevice, CallbackURL: "https://203.0.113.8:8080/b"})
	require.NoError(t, err)

	var oe *OriginError
	_, err = e.Subscribe(ctx, Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7:9090/"})
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "203.0.113.7:8080", oe.Want)
	require.Equal(t, "203.0.113.7:9090", oe.Got)
}

// TestCheckCallback covers the CMD-6 rule: a command's callbackUrl shares
// host and port with the app's subscriptions.
func TestCheckCallback(t *testing.T) {
	e, _ := newTestEngine(t, Config{})
	ctx := context.Background()
	require.NoError(t, e.CheckCallback(ctx, "app1", "http://203.0.113.7:8080/cmd"), "no subscriptions yet: any valid URL")
	_, err := e.Subscribe(ctx, Subscription{AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7:8080/"})
	require.NoError(t, err)
	require.NoError(t, e.CheckCallback(ctx, "app1", "http://203.0.113.7:8080/cmd"))
	require.ErrorIs(t, e.CheckCallback(ctx, "app1", "http://203.0.113.7:8081/cmd"), ErrOriginConflict)
	require.ErrorIs(t, e.CheckCallback(ctx, "app1", "http://203.0.113.7:8080"), ErrURLNoPath)
}

// TestUnsubscribe covers §5.10: delete one, delete in bulk by type and/or URL.
func TestUnsubscribe(t *testing.T) {
	e, _ := newTestEngine(t, Config{})
	ctx := context.Background()
	mk := func(app string, nt NotifyType, url string) Subscription {
		s, err := e.Subscribe(ctx, Subscription{AppID: app, NotifyType: nt, CallbackURL: url})
		require.NoError(t, err)
		return s
	}
	u1, u2 := "http://203.0.113.7:8080/1", "http://203.0.113.7:8080/2"
	a := mk("app1", DeviceAdded, u1)
	mk("app1", DeviceDeleted, u1)
	mk("app1", DeviceAdded, u2)
	mk("app1", DeviceDataChanged, u2)
	other := mk("app2", DeviceAdded, u1)

	require.NoError(t, e.Unsubscribe(ctx, a.ID))
	_, err := e.Subscription(ctx, a.ID)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, e.Unsubscribe(ctx, a.ID), ErrNotFound, "twice")

	n, err := e.UnsubscribeAll(ctx, Filter{AppID: "app1", NotifyType: DeviceAdded})
	require.NoError(t, err)
	require.Equal(t, 1, n, "by type: only app1's remaining deviceAdded (on u2)")
	n, err = e.UnsubscribeAll(ctx, Filter{AppID: "app1", CallbackURL: u1})
	require.NoError(t, err)
	require.Equal(t, 1, n, "by URL")
	n, err = e.UnsubscribeAll(ctx, Filter{AppID: "app1"})
	require.NoError(t, err)
	require.Equal(t, 1, n, "everything left of app1")
	_, err = e.Subscription(ctx, other.ID)
	require.NoError(t, err, "app2 untouched")
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []Config{
		{KeepTime: -1}, {Timeout: -1}, {FailureThreshold: -1}, {ProbeInterval: -1},
		{RetrySchedule: []time.Duration{}}, {RetrySchedule: []time.Duration{-1}}, {Workers: -1},
	} {
		_, err := New(NewMemoryStore(), cfg)
		require.Error(t, err, "New(%+v)", cfg)
	}
	_, err := New(nil, Config{})
	require.Error(t, err)
}

func TestConfigDefaults(t *testing.T) {
	e, _ := newTestEngine(t, Config{})
	c := e.Config()
	require.Equal(t, 10*time.Minute, c.KeepTime, "PSH-4 keep time")
	require.Equal(t, 15*time.Second, c.Timeout, "PSH-4 timeout")
	require.Equal(t, 10, c.FailureThreshold, "PSH-4 threshold")
	require.Equal(t, 30*time.Second, c.ProbeInterval)
	require.Equal(t, time.Second, c.Backoff(1))
	require.Equal(t, time.Minute, c.Backoff(5))
	require.Equal(t, time.Minute, c.Backoff(50), "the last entry repeats")
}

// TestTooManyFailures is the invalidation rule as a table (PSH-4).
func TestTooManyFailures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(secs ...int) []time.Time {
		var out []time.Time
		for _, s := range secs {
			out = append(out, t0.Add(time.Duration(s)*time.Second))
		}
		return out
	}
	keep := 10 * time.Minute
	cases := []struct {
		times []time.Time
		now   time.Time
		want  bool
	}{
		{at(0, 1, 2), t0.Add(3 * time.Second), false},                                          // 3 < 10
		{at(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), t0.Add(10 * time.Second), true},                     // 10 within keep
		{at(0, 100, 200, 300, 400, 500, 550, 560, 570, 600), t0.Add(600 * time.Second), true},  // exactly keep
		{at(0, 100, 200, 300, 400, 500, 550, 560, 570, 601), t0.Add(601 * time.Second), false}, // first one too old
		{at(-50, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9), t0.Add(10 * time.Second), true},                // only the last 10 count
	}
	for i, c := range cases {
		require.Equal(t, c.want, TooManyFailures(c.times, c.now, 10, keep), "case %d", i)
	}
}

// TestSubscriptionJSON: the API's {subscriptionId, notifyType, callbackUrl}
// (docs/api.md); the secret and the application never appear.
func TestSubscriptionJSON(t *testing.T) {
	s := Subscription{ID: "s1", AppID: "app1", NotifyType: DeviceAdded, CallbackURL: "http://203.0.113.7:8080/cb",
		Secret: "whsec_c2VjcmV0", Created: time.Now()}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	require.Equal(t, `{"subscriptionId":"s1","notifyType":"deviceAdded","callbackUrl":"http://203.0.113.7:8080/cb"}`, string(b))
}

// TestIDsSortByCreation: subscription ids made one after the other, many
// within one millisecond, are UUIDv7s that sort in creation order.
func TestIDsSortByCreation(t *testing.T) {
	prev := newID()
	for range 10000 {
		id := newID()
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)
		require.Less(t, prev, id)
		prev = id
	}
}
