package transport

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// LWM-9: the schedule is exponential with a random factor: 10–15 s, 20–30 s,
// 40–60 s, and giving up 80–120 s after the last try.
func TestTransmissionSchedule(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		tr   Transmission
		r    float64
		want []time.Duration
	}{
		{"nb-iot low", Transmission{}, 0, []time.Duration{10 * s, 20 * s, 40 * s, 80 * s}},
		{"nb-iot mid", Transmission{}, 0.5, []time.Duration{12500 * time.Millisecond, 25 * s, 50 * s, 100 * s}},
		{"nb-iot high", Transmission{}, 0.999999, []time.Duration{14999990 * time.Microsecond, 29999980 * time.Microsecond, 59999960 * time.Microsecond, 119999920 * time.Microsecond}},
		{"coap default", Transmission{AckTimeout: 2 * s, RandomFactor: 1.5, MaxRetransmit: 4}, 0, []time.Duration{2 * s, 4 * s, 8 * s, 16 * s, 32 * s}},
		{"no retransmission", Transmission{AckTimeout: 5 * s, MaxRetransmit: -1}, 0, []time.Duration{5 * s}},
		{"factor below 1", Transmission{AckTimeout: 1 * s, RandomFactor: 0.5, MaxRetransmit: 1}, 0.9, []time.Duration{1 * s, 2 * s}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.tr.Schedule(tc.r)
			require.Len(t, got, len(tc.want))
			for i := range got {
				require.InDelta(t, float64(tc.want[i]), float64(got[i]), float64(time.Millisecond), "wait %d of %v", i, got)
			}
		})
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, t0.Add(150*time.Second), Transmission{}.Deadline(t0, 0))
}

// LWM-9: a request to a device that never answers goes out at 0, T, 3T, 7T
// (T in 10–15 s) and fails with ErrTimeout at 15T; the send times are
// recorded by the transport.
func TestRetransmissionSendTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newMemServer(t, Config{})
		l := newMemLink(t, s, ClientConfig{Endpoint: "dev1"})
		ctx := context.Background()
		require.NoError(t, l.cli.Register(ctx))
		l.setDrop(true)
		start := time.Now()
		_, err := s.Read(ctx, "dev1", "/3/0/0", cfNone)
		require.ErrorIs(t, err, ErrTimeout)
		sends := l.sends()
		require.Len(t, sends, 4, "1 send + 3 retransmissions")
		require.Equal(t, start, sends[0])
		T := sends[1].Sub(sends[0])
		require.GreaterOrEqual(t, T, 10*time.Second)
		require.Less(t, T, 15*time.Second)
		require.Equal(t, 2*T, sends[2].Sub(sends[1]))
		require.Equal(t, 4*T, sends[3].Sub(sends[2]))
		require.Equal(t, 8*T, time.Since(sends[3]), "give up 8T (80–120 s) after the last try")

		// Per device: a shorter profile for this endpoint only.
		s.SetTransmission("dev1", Transmission{AckTimeout: 2 * time.Second, RandomFactor: 1, MaxRetransmit: 1})
		l.setDrop(true)
		start = time.Now()
		_, err = s.Read(ctx, "dev1", "/3/0/0", cfNone)
		require.ErrorIs(t, err, ErrTimeout)
		sends = l.sends()
		require.Equal(t, []time.Time{start, start.Add(2 * time.Second)}, sends)
		require.Equal(t, 6*time.Second, time.Since(start))
		l.close()
		require.NoError(t, s.Close())
	})
}

// LWM-9: a retransmitted request reaching the device is answered; the ACK
// stops retransmission.
func TestRetransmissionStopsOnAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newMemServer(t, Config{})
		l := newMemLink(t, s, ClientConfig{Endpoint: "dev1"})
		l.cli.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("x")}, nil }})
		ctx := context.Background()
		require.NoError(t, l.cli.Register(ctx))
		l.setDrop(true)
		go func() {
			time.Sleep(11 * time.Second) // after the first send, before the 3rd
			l.mu.Lock()
			l.dropCli = false
			l.mu.Unlock()
		}()
		start := time.Now()
		got, err := s.Read(ctx, "dev1", "/3/0/0", cfNone)
		require.NoError(t, err)
		require.Equal(t, "x", string(got.Payload))
		el := time.Since(start)
		require.True(t, el >= 10*time.Second && el < 15*time.Second*3, "answered at the first retransmission that got through, after %v", el)
		synctest.Wait()
		n := len(l.sends())
		time.Sleep(5 * time.Minute)
		require.Len(t, l.sends(), n, "no retransmission after the ACK")
		l.close()
		require.NoError(t, s.Close())
	})
}

// LWM-9: the random factor is drawn for every exchange, so that devices
// (and requests) that lost the same packet do not retransmit in step: the
// first waits of a few requests that time out differ and each lies in
// 10–15 s.
func TestRetransmissionDrawsPerExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newMemServer(t, Config{})
		l := newMemLink(t, s, ClientConfig{Endpoint: "dev1"})
		ctx := context.Background()
		require.NoError(t, l.cli.Register(ctx))
		firsts := map[time.Duration]bool{}
		for range 4 {
			l.setDrop(true)
			_, err := s.Read(ctx, "dev1", "/3/0/0", cfNone)
			require.ErrorIs(t, err, ErrTimeout)
			sends := l.sends()
			require.Len(t, sends, 4)
			T := sends[1].Sub(sends[0])
			require.GreaterOrEqual(t, T, 10*time.Second)
			require.Less(t, T, 15*time.Second)
			firsts[T] = true
		}
		require.Greater(t, len(firsts), 1, "four exchanges drew the same first wait %v", firsts)
		l.close()
		require.NoError(t, s.Close())
	})
}

// A request to a queue-mode device whose window closes before it answers
// ends with ErrSleeping at the first retransmission that finds the session
// parked, not after every retransmission's wait (ErrTimeout): no goroutine
// waits minutes on a device that is asleep.
func TestRequestEndsWhenTheDeviceSleeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var sends []time.Time
		e := newExchange(func([]byte) error {
			mu.Lock()
			defer mu.Unlock()
			sends = append(sends, time.Now())
			if len(sends) > 1 {
				return ErrSleeping // the session parked after the first try
			}
			return nil
		}, 1152)
		start := time.Now()
		_, err := e.do(context.Background(), &message.Message{Code: codes.GET}, true)
		require.ErrorIs(t, err, ErrSleeping)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, sends, 2, "one try, then the retransmission that found the device asleep")
		el := time.Since(start)
		first := Transmission{}.Schedule(1)[0]
		require.LessOrEqual(t, el, first, "ended at the first retransmission (%v), not after all of them", el)
	})
}
