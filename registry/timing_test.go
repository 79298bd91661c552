package registry_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func TestExpiresAt(t *testing.T) {
	for _, c := range []struct {
		timeout time.Duration
		want    time.Time
	}{
		{0, time.Time{}},
		{-time.Second, time.Time{}},
		{180 * time.Second, t0.Add(3 * time.Minute)},
		{registry.MaxTimeout, t0.Add(2147483647 * time.Second)},
	} {
		require.Equal(t, c.want, registry.ExpiresAt(t0, c.timeout), "ExpiresAt(t0, %v)", c.timeout)
	}
}

// TestOfflineAt: REG-3's rules as a table.
func TestOfflineAt(t *testing.T) {
	const silence, grace = 25 * time.Hour, time.Minute
	seen := t0
	for _, c := range []struct {
		name string
		d    registry.Device
		want time.Time
	}{
		{"NB-IoT online", registry.Device{Status: registry.StatusOnline, LastSeen: seen}, seen.Add(25 * time.Hour)},
		{"offline already", registry.Device{Status: registry.StatusOffline, LastSeen: seen}, time.Time{}},
		{"inactive", registry.Device{Status: registry.StatusInactive}, time.Time{}},
		{"abnormal", registry.Device{Status: registry.StatusAbnormal, LastSeen: seen}, time.Time{}},
		{"connected", registry.Device{Status: registry.StatusOnline, LastSeen: seen, Connected: true}, time.Time{}},
		{"disconnected", registry.Device{Status: registry.StatusOnline, LastSeen: seen, DisconnectedAt: seen.Add(time.Hour)}, seen.Add(time.Hour + time.Minute)},
		{"disconnected at the same instant", registry.Device{Status: registry.StatusOnline, LastSeen: seen, DisconnectedAt: seen}, seen.Add(time.Minute)},
		{"seen again after a disconnect", registry.Device{Status: registry.StatusOnline, LastSeen: seen.Add(2 * time.Hour), DisconnectedAt: seen}, seen.Add(27 * time.Hour)},
	} {
		got := registry.OfflineAt(&c.d, silence, grace)
		require.Equal(t, c.want, got, c.name)
	}
}

func TestNextDeadline(t *testing.T) {
	unbound := registry.Device{CreatedAt: t0, Timeout: 180 * time.Second, Status: registry.StatusInactive}
	require.Equal(t, t0.Add(180*time.Second), registry.NextDeadline(&unbound, time.Hour, time.Minute))
	unbound.Timeout = 0
	require.True(t, registry.NextDeadline(&unbound, time.Hour, time.Minute).IsZero())
	bound := registry.Device{CreatedAt: t0, Timeout: 180 * time.Second, Bound: true, Status: registry.StatusOnline, LastSeen: t0.Add(time.Minute)}
	require.Equal(t, t0.Add(time.Hour+time.Minute), registry.NextDeadline(&bound, time.Hour, time.Minute), "once bound, the timeout no longer applies")
}

// bubble runs fn in a synctest bubble with a Registry whose Run goroutine
// is going; it stops Run at the end.
func bubble(t *testing.T, cfg registry.Config, fn func(t *testing.T, r *registry.Registry, rec *recorder)) {
	synctest.Test(t, func(t *testing.T) {
		r, rec := newRegistry(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		fn(t, r, rec)
		cancel()
		require.NoError(t, <-done)
	})
}

// TestBindingTimeout: an unbound registration is deleted when its timeout
// passes and reported as expired (REG-2).
func TestBindingTimeout(t *testing.T) {
	bubble(t, registry.Config{}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		d := register(t, r, "861") // default 180 s
		late := register(t, r, "862")
		time.Sleep(179 * time.Second)
		synctest.Wait()
		_, err := r.Get(ctx, d.ID)
		require.NoError(t, err, "still there at 179 s")
		require.Equal(t, []string{"added 861", "added 862"}, rec.take())

		key, err := r.PSK(ctx, "862")
		require.NoError(t, err)
		_, err = r.Connect(ctx, "862", registry.Connection{PSK: key})
		require.NoError(t, err, "binds at 179 s")

		time.Sleep(2 * time.Second)
		synctest.Wait()
		_, err = r.Get(ctx, d.ID)
		require.ErrorIs(t, err, registry.ErrNotFound, "deleted after 180 s")
		_, err = r.PSK(ctx, "861")
		require.ErrorIs(t, err, registry.ErrNotFound)
		_, err = r.Get(ctx, late.ID)
		require.NoError(t, err, "a bound device does not expire")
		require.Equal(t, []string{"bound 862", "status changed 862 INACTIVE→ONLINE", "expired 861"}, rec.take())
	})
}

func TestBindingTimeoutZeroNeverExpires(t *testing.T) {
	bubble(t, registry.Config{Recheck: 24 * time.Hour}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		d, err := r.Register(ctx, registry.Enrollment{NodeID: "861", Info: meterInfo, Timeout: secs(0)})
		require.NoError(t, err)
		short, err := r.Register(ctx, registry.Enrollment{NodeID: "862", Info: meterInfo, Timeout: secs(5)})
		require.NoError(t, err)
		time.Sleep(6 * time.Second) // Run sleeps 24 h but is woken for the 5 s deadline
		synctest.Wait()
		_, err = r.Get(ctx, short.ID)
		require.ErrorIs(t, err, registry.ErrNotFound, "a deadline earlier than Run's sleep wakes it")
		time.Sleep(400 * 24 * time.Hour)
		synctest.Wait()
		_, err = r.Get(ctx, d.ID)
		require.NoError(t, err, "timeout 0: still registered after 400 days")
	})
}

// TestExpiredCannotBind: a device connecting after its timeout is refused
// even if Run has not deleted it yet; a restarted registry deletes it from
// the stored deadline (absolute deadlines, DESIGN "Time").
func TestExpiredCannotBind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := registry.NewMemStore()
		rec := &recorder{}
		r1, err := registry.New(st, catalog, registry.Config{Listener: rec})
		require.NoError(t, err)
		d, err := r1.Register(ctx, registry.Enrollment{NodeID: "861", Info: meterInfo, Timeout: secs(60), Security: registry.SecurityNone})
		require.NoError(t, err)
		require.NoError(t, r1.Close()) // the process stops before the deadline

		time.Sleep(61 * time.Second)
		r2, err := registry.New(st, catalog, registry.Config{Listener: rec})
		require.NoError(t, err)
		_, err = r2.Connect(ctx, "861", registry.Connection{VerifyCode: "861"})
		require.ErrorIs(t, err, registry.ErrExpired)
		_, err = r2.PSK(ctx, "861")
		require.ErrorIs(t, err, registry.ErrExpired)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r2.Run(ctx) }()
		synctest.Wait()
		_, err = r2.Get(ctx, d.ID)
		require.ErrorIs(t, err, registry.ErrNotFound, "the new Run acts on the stored deadline")
		require.Equal(t, []string{"added 861", "expired 861"}, rec.take())
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, r2.Close())
	})
}

// TestSilenceGoesOffline: an NB-IoT device silent for 25 h becomes
// OFFLINE, and an uplink brings it back (REG-3, §3.6).
func TestSilenceGoesOffline(t *testing.T) {
	bubble(t, registry.Config{}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		d := registerPlain(t, r, "861")
		_, err := r.Connect(ctx, "861", registry.Connection{VerifyCode: "861"})
		require.NoError(t, err)
		time.Sleep(10 * time.Hour)
		_, err = r.Touch(ctx, d.ID) // an uplink restarts the 25 h
		require.NoError(t, err)
		time.Sleep(25*time.Hour - time.Second)
		synctest.Wait()
		got, err := r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOnline, got.Status, "25 h minus 1 s after the last uplink")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		got, err = r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOffline, got.Status, "25 h after the last uplink")
		require.True(t, got.Deadline.IsZero(), "nothing pending for an OFFLINE device")

		got, err = r.Touch(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOnline, got.Status, "reporting makes it ONLINE again")
		require.Equal(t, []string{"added 861", "bound 861", "status changed 861 INACTIVE→ONLINE",
			"status changed 861 ONLINE→OFFLINE", "status changed 861 OFFLINE→ONLINE"}, rec.take())
	})
}

func TestSilencePeriodIsASetting(t *testing.T) {
	bubble(t, registry.Config{SilencePeriod: time.Hour}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		d := registerPlain(t, r, "861")
		_, err := r.Connect(ctx, "861", registry.Connection{VerifyCode: "861"})
		require.NoError(t, err)
		time.Sleep(time.Hour + time.Second)
		synctest.Wait()
		got, err := r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOffline, got.Status)
	})
}

// TestDisconnectGoesOffline: a connection-oriented device stays ONLINE
// while connected and goes OFFLINE 1 min after it disconnects (REG-3).
func TestDisconnectGoesOffline(t *testing.T) {
	bubble(t, registry.Config{}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		d := registerPlain(t, r, "mqtt-1")
		_, err := r.Connect(ctx, "mqtt-1", registry.Connection{VerifyCode: "mqtt-1", Persistent: true})
		require.NoError(t, err)
		time.Sleep(48 * time.Hour)
		synctest.Wait()
		got, err := r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOnline, got.Status, "connected: no silence rule")

		_, err = r.Disconnect(ctx, d.ID)
		require.NoError(t, err)
		time.Sleep(59 * time.Second)
		synctest.Wait()
		got, err = r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOnline, got.Status, "59 s after disconnecting")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		got, err = r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOffline, got.Status, "61 s after disconnecting")

		// Reconnecting within the grace keeps it ONLINE.
		_, err = r.Connect(ctx, "mqtt-1", registry.Connection{VerifyCode: "mqtt-1", Persistent: true})
		require.NoError(t, err)
		_, err = r.Disconnect(ctx, d.ID)
		require.NoError(t, err)
		time.Sleep(30 * time.Second)
		_, err = r.Connect(ctx, "mqtt-1", registry.Connection{VerifyCode: "mqtt-1", Persistent: true})
		require.NoError(t, err)
		time.Sleep(time.Hour)
		synctest.Wait()
		got, err = r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOnline, got.Status, "reconnected within the grace")
	})
}

// TestAbnormal: the platform can mark a device ABNORMAL (REG-3); it stays
// so through uplinks and silence until cleared.
func TestAbnormal(t *testing.T) {
	bubble(t, registry.Config{}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		d := registerPlain(t, r, "861")
		_, err := r.Connect(ctx, "861", registry.Connection{VerifyCode: "861"})
		require.NoError(t, err)
		rec.take()
		got, err := r.MarkAbnormal(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusAbnormal, got.Status)
		_, err = r.Touch(ctx, d.ID)
		require.NoError(t, err)
		time.Sleep(30 * time.Hour)
		synctest.Wait()
		got, err = r.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusAbnormal, got.Status, "ABNORMAL survives uplinks and silence")
		got, err = r.ClearAbnormal(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOffline, got.Status, "cleared after 30 h of silence: OFFLINE")
		_, err = r.Touch(ctx, d.ID)
		require.NoError(t, err)
		_, err = r.MarkAbnormal(ctx, d.ID)
		require.NoError(t, err)
		got, err = r.ClearAbnormal(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusOnline, got.Status, "cleared right after an uplink: ONLINE")
		require.Equal(t, []string{"status changed 861 ONLINE→ABNORMAL", "status changed 861 ABNORMAL→OFFLINE",
			"status changed 861 OFFLINE→ONLINE", "status changed 861 ONLINE→ABNORMAL", "status changed 861 ABNORMAL→ONLINE"}, rec.take())
		_, err = r.MarkAbnormal(ctx, "nope")
		require.ErrorIs(t, err, registry.ErrNotFound)

		fresh := register(t, r, "870")
		_, err = r.MarkAbnormal(ctx, fresh.ID)
		require.NoError(t, err)
		got, err = r.ClearAbnormal(ctx, fresh.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusInactive, got.Status, "never bound: back to INACTIVE")
		got, err = r.ClearAbnormal(ctx, fresh.ID)
		require.NoError(t, err)
		require.Equal(t, registry.StatusInactive, got.Status, "ClearAbnormal of a normal device changes nothing")
	})
}

// TestManyExpireTogether: more registrations than one sweep batch expire
// at the same moment.
func TestManyExpireTogether(t *testing.T) {
	bubble(t, registry.Config{}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		for i := range 600 {
			_, err := r.Register(ctx, registry.Enrollment{NodeID: "n" + time.Duration(i).String(), Info: meterInfo, Timeout: secs(30)})
			require.NoError(t, err)
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		_, n, err := r.List(ctx, registry.Query{})
		require.NoError(t, err)
		require.Zero(t, n)
		expired := 0
		for _, e := range rec.take() {
			if e[:7] == "expired" {
				expired++
			}
		}
		require.Equal(t, 600, expired)
	})
}

// TestRunTwice: a second Run returns at once with an error wrapping
// ErrClosed that says "Run called twice"; the first goes on (bubble checks
// that it returns nil at the end), and Run after Close returns ErrClosed.
func TestRunTwice(t *testing.T) {
	bubble(t, registry.Config{}, func(t *testing.T, r *registry.Registry, rec *recorder) {
		synctest.Wait()
		err := r.Run(ctx)
		require.Error(t, err, "a second Run is refused")
		require.ErrorIs(t, err, registry.ErrClosed)
		require.EqualError(t, err, "registry: closed: registry.Registry: Run called twice")
		d := register(t, r, "861")
		time.Sleep(181 * time.Second)
		synctest.Wait()
		_, err = r.Get(ctx, d.ID)
		require.ErrorIs(t, err, registry.ErrNotFound, "the first Run still expires registrations")
	})
	r, _ := newRegistry(t, registry.Config{})
	require.NoError(t, r.Close())
	require.Equal(t, registry.ErrClosed, r.Run(ctx), "Run after Close")
}

// TestCloseStopsRun: Close stops Run and waits for it.
func TestCloseStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newRegistry(t, registry.Config{})
		done := make(chan error)
		go func() { done <- r.Run(context.Background()) }()
		synctest.Wait()
		require.NoError(t, r.Close())
		require.NoError(t, <-done)
	})
}
