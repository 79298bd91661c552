package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// TestEventQueueOrder: push never waits, however many events wait, and pop
// hands them out in order, also while the queue moves its rest to the front.
func TestEventQueueOrder(t *testing.T) {
	q := newEventQueue()
	ctx := context.Background()
	next, want := 0, 0
	for round := range 5 {
		for range 3000 + round*100 { // more than the compaction threshold
			q.push(queuedEvent{inbox: uint64(next)})
			next++
		}
		for range 2500 {
			e, ok := q.pop(ctx)
			require.True(t, ok)
			require.Equal(t, uint64(want), e.inbox)
			want++
		}
	}
	require.Equal(t, next-want, q.len())
	for q.len() > 0 {
		e, _ := q.pop(ctx)
		require.Equal(t, uint64(want), e.inbox)
		want++
	}
	require.Equal(t, next, want)
}

// TestEventQueuePopWaits: pop waits for an event and gives up when its
// context ends.
func TestEventQueuePopWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newEventQueue()
		got := make(chan queuedEvent, 1)
		go func() {
			e, _ := q.pop(context.Background())
			got <- e
		}()
		synctest.Wait()
		require.Empty(t, got, "pop returned from an empty queue")
		q.push(queuedEvent{inbox: 7})
		require.Equal(t, uint64(7), (<-got).inbox)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan bool, 1)
		go func() {
			_, ok := q.pop(ctx)
			done <- ok
		}()
		synctest.Wait()
		cancel()
		require.False(t, <-done)
	})
}

// arrive admits and accepts one uplink every interval until stop, as
// acceptUplink does; with take, a worker takes each one at once.
func arrive(g *ingestGate, interval time.Duration, take bool, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(interval):
			if g.admit() == nil {
				g.accepted()
				if take {
					g.taken()
				}
			}
		}
	}
}

// waitHeld waits, tick by tick, until g holds: within two windows, the
// first one to see the pipeline take (nothing, here) with a backlog.
func waitHeld(t *testing.T, g *ingestGate) {
	t.Helper()
	for range 2 * gateWindow {
		time.Sleep(gateTick)
		if g.held() != nil {
			return
		}
	}
	t.Fatalf("not held after %v of arrivals nobody takes", 2*gateWindow*gateTick)
}

// startGate runs g in the bubble until the test ends, with backlog
// uplinks already waiting.
func startGate(t *testing.T, g *ingestGate, backlog int) {
	for range backlog {
		require.NoError(t, g.admit())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestIngestGate: workers are held back while uplinks arrive faster than
// they are taken and the backlog is above backlogLow — each uplink at most
// until it is AckFirst old — and let go within two ticks once the arrivals
// stop (not at a pause shorter than quietTicks); never while the takes keep
// up, with a small backlog, or with AckFirst negative; and not when the
// uplinks come slower than the pipeline was seen to take them, even after
// a stall grew the backlog (a storm faster than it still is held).
func TestIngestGate(t *testing.T) {
	t.Run("held until AckFirst", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: 2 * time.Second}
			startGate(t, g, backlogLow)
			stop := make(chan struct{})
			defer close(stop)
			go arrive(g, time.Millisecond, false, stop)
			waitHeld(t, g)
			require.NotNil(t, g.held(), "held after a window of arrivals nobody takes")
			start := time.Now()
			g.wait(context.Background(), start)
			require.Equal(t, 2*time.Second, time.Since(start))
			older := time.Now()
			g.wait(context.Background(), older.Add(-1500*time.Millisecond))
			require.Equal(t, 500*time.Millisecond, time.Since(older), "an older uplink is held less")
		})
	})
	t.Run("released when arrivals stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: 2 * time.Second}
			startGate(t, g, backlogLow)
			start := time.Now()
			stop := make(chan struct{})
			go arrive(g, time.Millisecond, false, stop)
			time.AfterFunc(300*time.Millisecond, func() { close(stop) })
			waitHeld(t, g)
			require.NotNil(t, g.held())
			g.wait(context.Background(), time.Now())
			require.Greater(t, time.Since(start), 300*time.Millisecond)
			require.LessOrEqual(t, time.Since(start), 300*time.Millisecond+(quietTicks+1)*gateTick)
			require.Nil(t, g.held())
		})
	})
	t.Run("a short pause does not end the hold", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: time.Hour}
			startGate(t, g, backlogLow)
			stop := make(chan struct{})
			go arrive(g, time.Millisecond, false, stop)
			waitHeld(t, g)
			require.NotNil(t, g.held())
			close(stop)
			time.Sleep((quietTicks - 1) * gateTick) // a pause of two ticks
			require.NotNil(t, g.held(), "held through a pause of %d ticks", quietTicks-1)
			stop = make(chan struct{})
			defer close(stop)
			go arrive(g, time.Millisecond, false, stop)
			time.Sleep(gateWindow * gateTick)
			require.NotNil(t, g.held())
			require.GreaterOrEqual(t, g.heldTicks.Load(), int64(gateWindow+quietTicks-1))
		})
	})
	t.Run("not held while the takes keep up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: 2 * time.Second}
			startGate(t, g, 10*backlogLow)
			stop := make(chan struct{})
			defer close(stop)
			go arrive(g, time.Millisecond, true, stop)
			for range 300 {
				time.Sleep(gateTick)
				require.Nil(t, g.held())
			}
		})
	})
	t.Run("not held with a small backlog", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: 2 * time.Second}
			startGate(t, g, 0)
			for range backlogLow {
				time.Sleep(gateTick / 4)
				require.NoError(t, g.admit())
				g.accepted()
			}
			for range 2 * gateWindow {
				time.Sleep(gateTick)
				require.Nil(t, g.held())
			}
		})
	})
	t.Run("not held with AckFirst negative", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: -1}
			startGate(t, g, 10*backlogLow)
			stop := make(chan struct{})
			defer close(stop)
			go arrive(g, time.Millisecond, false, stop)
			time.Sleep(time.Second)
			require.Nil(t, g.held())
			start := time.Now()
			g.wait(context.Background(), start)
			require.Zero(t, time.Since(start))
		})
	})
	for _, learn := range []string{"draining a backlog", "keeping up"} {
		t.Run("a load the pipeline can take is not held after a stall, rate learned "+learn, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := &ingestGate{maxDefer: 2 * time.Second}
				// The pipeline: two uplinks a millisecond (200 a window)
				// while the gate is open and it is not stalled.
				var stalled atomic.Bool
				stopPipeline := make(chan struct{})
				defer close(stopPipeline)
				go func() {
					for {
						select {
						case <-stopPipeline:
							return
						case <-time.After(time.Millisecond):
						}
						if open := g.held(); open != nil {
							select {
							case <-open:
							case <-stopPipeline:
								return
							}
						}
						for range 2 {
							if !stalled.Load() && g.backlog.Load() > 0 {
								g.taken()
							}
						}
					}
				}()
				backlog := 0
				if learn == "draining a backlog" {
					backlog = 1000 // taken at the pipeline's rate, nothing arriving
				}
				startGate(t, g, backlog)
				time.Sleep(600 * time.Millisecond)
				require.Zero(t, g.backlog.Load())
				require.Zero(t, g.heldTicks.Load(), "a backlog drained with nothing arriving is not held")

				// One uplink a millisecond, half of what the pipeline
				// takes, and a stall of 60 ms that grows the backlog past
				// backlogLow.
				stop := make(chan struct{})
				go arrive(g, time.Millisecond, false, stop)
				time.Sleep(300 * time.Millisecond)
				stalled.Store(true)
				time.Sleep(60 * time.Millisecond)
				require.Greater(t, g.backlog.Load(), int64(backlogLow+growthHigh))
				stalled.Store(false)
				for range 100 {
					time.Sleep(gateTick)
					require.Nil(t, g.held(), "arrivals the pipeline has taken before are not held back")
				}
				require.Less(t, g.backlog.Load(), int64(backlogLow), "the pipeline caught up")

				// Four a millisecond, twice what it takes: a storm, held.
				stop2 := make(chan struct{})
				for range 3 {
					go arrive(g, time.Millisecond, false, stop2)
				}
				waitHeld(t, g)
				close(stop)
				close(stop2)
				time.Sleep((quietTicks + 2) * gateTick)
				require.Nil(t, g.held(), "let go once the storm stops")
			})
		})
	}
	t.Run("what the pipeline took long ago is forgotten", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: time.Hour}
			// A pipeline that took 400 uplinks a window, once.
			startGate(t, g, 4000)
			for range 100 {
				time.Sleep(time.Millisecond)
				for range 4 {
					g.taken()
				}
			}
			time.Sleep(gateWindow * gateTick)
			require.GreaterOrEqual(t, g.seenRate.Load(), int64(390))
			// Half a minute later, 150 a window arrive and nothing is
			// taken: held (150 > 5/4 of what is left of 400).
			time.Sleep(30 * time.Second)
			require.Less(t, g.seenRate.Load(), int64(10))
			stop := make(chan struct{})
			defer close(stop)
			for range 3 {
				go arrive(g, 2*time.Millisecond, false, stop)
			}
			waitHeld(t, g)
		})
	})
	t.Run("stopping ends the hold", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := &ingestGate{maxDefer: time.Hour}
			ctx, cancel := context.WithCancel(context.Background())
			for range backlogLow {
				require.NoError(t, g.admit())
			}
			done := make(chan struct{})
			go func() { g.Run(ctx); close(done) }()
			stop := make(chan struct{})
			defer close(stop)
			go arrive(g, time.Millisecond, false, stop)
			waitHeld(t, g)
			require.NotNil(t, g.held())
			time.AfterFunc(time.Second, cancel)
			start := time.Now()
			g.wait(context.Background(), start)
			require.Equal(t, time.Second, time.Since(start), "Run opens the gate on its way out")
			<-done
		})
	})
}

// TestIngestGateLimit: beyond MaxBacklog an uplink is refused with an error
// saying how many wait and what the limit is; a place given back or taken
// by a worker makes room again.
func TestIngestGateLimit(t *testing.T) {
	g := &ingestGate{limit: 3}
	for range 3 {
		require.NoError(t, g.admit())
	}
	err := g.admit()
	var full errBacklogFull
	require.True(t, errors.As(err, &full))
	require.EqualError(t, err, "3 acknowledged uplinks wait for processing, the limit (maxBacklog) is 3: not acknowledged, the device sends it again")
	g.cancel()
	require.NoError(t, g.admit())
	require.Error(t, g.admit())
	g.taken()
	require.NoError(t, g.admit())
	require.Equal(t, int64(3), g.backlog.Load())
}

// TestAckDoesNotWaitForThePipeline: handing events to a worker that takes
// none (here: Run has not started them) never waits, however many of one
// device wait — before, a worker's queue held 256, and the 257th
// acknowledgement waited for the pipeline.
func TestAckDoesNotWaitForThePipeline(t *testing.T) {
	p := newIdlePlatform(t)
	const n = 10_000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			p.enqueue(queuedEvent{e: transport.Event{Kind: transport.EventUplink, Endpoint: "868333030000931"}, inbox: uint64(i + 1)})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("handing events to a worker that takes none waits")
	}
	require.Equal(t, n, waitingEvents(p))
}

// newIdlePlatform is a platform from New, not run: no worker takes events.
func newIdlePlatform(t *testing.T) *Platform {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	p, err := New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// waitingEvents counts the events in p's worker queues.
func waitingEvents(p *Platform) int {
	n := 0
	for _, q := range p.events {
		n += q.len()
	}
	return n
}

// TestBacklogLimitRefuses: with MaxBacklog uplinks waiting, the next one is
// not acknowledged (acceptUplink fails with errBacklogFull) and is counted.
func TestBacklogLimitRefuses(t *testing.T) {
	var errs []error
	tp := startPlatformWith(t, func(p *Platform) {
		for i := range 4 {
			errs = append(errs, p.acceptUplink(transport.Event{Kind: transport.EventUplink, Endpoint: "868333030000932",
				Path: "/19/0/0", Payload: []byte{byte(i)}, Time: time.Now()}))
		}
	}, func(c *Config) { c.MaxBacklog = 3 })
	require.NoError(t, errors.Join(errs[:3]...))
	var full errBacklogFull
	require.True(t, errors.As(errs[3], &full), "the fourth uplink: %v", errs[3])
	var m dto.Metric
	require.NoError(t, tp.metrics.uplinksBusy.Write(&m))
	require.Equal(t, 1.0, m.GetCounter().GetValue())
}

// TestWakeUpsCoalesced: while a device's wake-up event waits in its
// worker's queue, its further wake-ups add none (every message raises
// one); once a worker took it, the next is queued again. Other events are
// all queued.
func TestWakeUpsCoalesced(t *testing.T) {
	p := newIdlePlatform(t)
	waiting := func() int { return waitingEvents(p) }
	const ep = "868333030000933"
	for range 3 {
		p.enqueueEvent(transport.Event{Kind: transport.EventWoke, Endpoint: ep}, 0)
		p.enqueueEvent(transport.Event{Kind: transport.EventUplink, Endpoint: ep}, 0)
	}
	p.enqueueEvent(transport.Event{Kind: transport.EventWoke, Endpoint: "868333030000934"}, 0)
	require.Equal(t, 1+3+1, waiting(), "one wake-up per device, every uplink")

	p.wakes.taken(ep) // as a worker does when it takes the wake-up
	p.enqueueEvent(transport.Event{Kind: transport.EventWoke, Endpoint: ep}, 0)
	p.enqueueEvent(transport.Event{Kind: transport.EventWoke, Endpoint: ep}, 0)
	require.Equal(t, 6, waiting(), "after it was taken, the next wake-up is queued again")
}
