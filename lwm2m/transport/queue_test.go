package transport

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRegistrationAwake(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		r    Registration
		now  time.Time
		want bool
	}{
		{Registration{}, t0.Add(100 * time.Hour), true},
		{Registration{Queue: true, AwakeUntil: t0}, t0, true},
		{Registration{Queue: true, AwakeUntil: t0}, t0.Add(-time.Second), true},
		{Registration{Queue: true, AwakeUntil: t0}, t0.Add(time.Nanosecond), false},
	}
	for i, tc := range tests {
		require.Equal(t, tc.want, tc.r.Awake(tc.now), "case %d", i)
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b bucket
	for i := range 3 {
		ok, _ := b.allow(t0, 1, 3)
		require.True(t, ok, "burst request %d", i)
	}
	ok, wait := b.allow(t0, 1, 3)
	require.False(t, ok)
	require.Equal(t, time.Second, wait)
	ok, _ = b.allow(t0.Add(time.Second), 1, 3)
	require.True(t, ok, "refilled after 1 s at 1/s")
}

// LWM-8: a queue-mode device is reachable for AwakeWindow after each
// uplink; a request after that fails at once with ErrSleeping; every uplink
// raises a wake event.
func TestQueueModeSleepAndWake(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
	}{{"1.1 Q parameter", "1.1"}, {"1.0 b=UQ", "1.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, rec := newMemServer(t, Config{AwakeWindow: 20 * time.Second})
				l := newMemLink(t, s, ClientConfig{Endpoint: "dev1", Queue: true, Version: tc.version})
				l.cli.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("v")}, nil }})
				ctx := context.Background()
				start := time.Now()
				require.NoError(t, l.cli.Register(ctx))
				r, ok := s.Registration("dev1")
				require.True(t, ok)
				require.True(t, r.Queue, "registration with %s is in queue mode", tc.name)
				w := rec.wait(t, EventWoke, "dev1", 1)
				require.Equal(t, start.Add(20*time.Second), w.AwakeUntil)

				_, err := s.Read(ctx, "dev1", "/3/0/0", cfNone)
				require.NoError(t, err, "inside the window")

				time.Sleep(21 * time.Second)
				sendsBefore := len(l.sends())
				_, err = s.Read(ctx, "dev1", "/3/0/0", cfNone)
				require.ErrorIs(t, err, ErrSleeping)
				require.Equal(t, 21*time.Second, time.Since(start), "fails at once")
				require.Len(t, l.sends(), sendsBefore, "nothing sent to a sleeping device")

				woke := time.Now()
				require.NoError(t, l.cli.Update(ctx))
				w = rec.wait(t, EventWoke, "dev1", 2)
				require.Equal(t, woke.Add(20*time.Second), w.AwakeUntil)
				_, err = s.Read(ctx, "dev1", "/3/0/0", cfNone)
				require.NoError(t, err, "awake again after the update")
				l.close()
				require.NoError(t, s.Close())
			})
		})
	}
}

// LWM-3: a registration whose lifetime passes without an update ends; an
// update in time extends it.
func TestLifetimeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, rec := newMemServer(t, Config{})
		l := newMemLink(t, s, ClientConfig{Endpoint: "dev1", Lifetime: 60 * time.Second})
		ctx := context.Background()
		require.NoError(t, l.cli.Register(ctx))
		time.Sleep(50 * time.Second)
		require.NoError(t, l.cli.Update(ctx))
		time.Sleep(50 * time.Second) // 100 s after registering, 50 s after the update
		synctest.Wait()
		_, ok := s.Registration("dev1")
		require.True(t, ok, "the update extended the lifetime")
		require.Zero(t, rec.count(EventDeregistered, "dev1"))
		time.Sleep(11 * time.Second)
		synctest.Wait()
		_, ok = s.Registration("dev1")
		require.False(t, ok, "expired 60 s after the last update")
		e := rec.wait(t, EventDeregistered, "dev1", 1)
		require.Equal(t, ReasonExpired, e.Reason)
		err := l.cli.Update(ctx)
		var re *ResponseError
		require.ErrorAs(t, err, &re, "update of an expired registration")
		require.Equal(t, CodeNotFound, re.Code, "update of an expired registration: %v", err)
		l.close()
		require.NoError(t, s.Close())
	})
}

// LWM-4: after POST /t/r the server's observe of /t/d leaves at once — in
// the bubble the observe arrives at the same instant as the 2.04, i.e.
// nothing waits between them (target: within 100 ms).
func TestTUPObserveLeavesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, rec := newMemServer(t, Config{})
		l := newMemLink(t, s, ClientConfig{Endpoint: "868333030000009", TUP: true})
		var observedAt time.Time
		l.cli.Handle("/t/d", Resource{Read: func() (Content, error) {
			observedAt = time.Now()
			return Content{Format: cfOpaque}, nil
		}})
		ctx := context.Background()
		require.NoError(t, l.cli.Register(ctx))
		registeredAt := time.Now()
		synctest.Wait()
		require.True(t, l.cli.Observed("/t/d"))
		require.False(t, observedAt.IsZero())
		require.Less(t, observedAt.Sub(registeredAt), 100*time.Millisecond)
		require.Equal(t, registeredAt, observedAt)
		r := rec.wait(t, EventRegistered, "868333030000009", 1)
		require.True(t, r.Registration.TUP)
		l.close()
		require.NoError(t, s.Close())
	})
}
