package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/stretchr/testify/require"
)

// refusingHandler refuses the first n uplinks, as a platform whose disk
// write failed would.
type refusingHandler struct {
	mu       sync.Mutex
	refuse   int
	tries    int
	accepted []Event
}

func (h *refusingHandler) HandleEvent(e Event) {}

func (h *refusingHandler) HandleUplink(e Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries++
	if h.tries <= h.refuse {
		return errors.New("disk full")
	}
	h.accepted = append(h.accepted, e)
	return nil
}

// An UplinkHandler's error leaves the device's confirmable message
// unanswered and forgotten by the duplicate cache, so the device's
// retransmission (LWM-9) is processed again; the device sees its message
// acknowledged only once the handler took it. For a Send in one message,
// a Send in Block1 blocks (the retransmitted last block completes the body
// again) and a confirmable notification of /19/0/0.
func TestUplinkHandlerRefusalMeansRetransmission(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		send func(ctx context.Context, c *Client, payload []byte) error
	}{
		{"send", 2, func(ctx context.Context, c *Client, p []byte) error {
			return c.Send(ctx, Content{Format: lwm2m.FormatSenMLJSON, Payload: p})
		}},
		{"send in blocks", 3000, func(ctx context.Context, c *Client, p []byte) error {
			return c.Send(ctx, Content{Format: lwm2m.FormatSenMLJSON, Payload: p})
		}},
		{"notification", 2, func(ctx context.Context, c *Client, p []byte) error {
			return c.Notify(ctx, "/19/0/0", Content{Format: lwm2m.FormatSenMLJSON, Payload: p})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &refusingHandler{refuse: 2}
				s, err := New(Config{DisableDTLS: true, Policy: plainOnly}, nil, h)
				require.NoError(t, err)
				l := newMemLink(t, s, ClientConfig{Endpoint: "dev1", Objects: "</19/0>,</19/1>", ConfirmableNotifications: true})
				l.cli.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: lwm2m.FormatOpaque}, nil }})
				ctx := context.Background()
				require.NoError(t, l.cli.Register(ctx))
				synctest.Wait()
				require.True(t, l.cli.Observed("/19/0/0"), "the server observes /19/0/0 after registration (LWM-5)")
				data := make([]byte, tc.size)
				data[0] = 0xDE
				payload, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue(data)}})
				require.NoError(t, err)

				start := time.Now()
				require.NoError(t, tc.send(ctx, l.cli, payload), "acknowledged at the third try")
				took := time.Since(start)
				h.mu.Lock()
				tries, accepted := h.tries, h.accepted
				h.mu.Unlock()
				require.Equal(t, 3, tries, "two refusals, then the retransmission was taken")
				require.Len(t, accepted, 1)
				require.Equal(t, data, accepted[0].Payload)
				require.GreaterOrEqual(t, took, 30*time.Second, "two retransmission timeouts (T + 2T, T ≥ 10 s) passed before the ACK")
				l.close()
				require.NoError(t, s.Close())
			})
		})
	}
}

// A Handler without HandleUplink gets uplinks through HandleEvent and the
// device is answered at once.
func TestPlainHandlerUplinkAnsweredAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, rec := newMemServer(t, Config{})
		l := newMemLink(t, s, ClientConfig{Endpoint: "dev1"})
		ctx := context.Background()
		require.NoError(t, l.cli.Register(ctx))
		payload, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue([]byte{1})}})
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, l.cli.Send(ctx, Content{Format: lwm2m.FormatSenMLJSON, Payload: payload}))
		require.Equal(t, time.Duration(0), time.Since(start))
		require.Equal(t, 1, rec.count(EventUplink, "dev1"))
		l.close()
		require.NoError(t, s.Close())
	})
}

// blockingHandler holds the uplinks of one endpoint until released.
type blockingHandler struct {
	block   string
	entered chan struct{} // the blocked endpoint's uplink reached the handler
	release chan struct{}
	got     chan string
}

func (h *blockingHandler) HandleEvent(e Event) {}

func (h *blockingHandler) HandleUplink(e Event) error {
	if e.Endpoint == h.block {
		close(h.entered)
		<-h.release
	}
	h.got <- e.Endpoint
	return nil
}

// Plain CoAP peers share one socket, but each is handled on its own
// goroutine: an UplinkHandler that takes its time (a synced write) for one
// device does not hold up another's uplink.
func TestSlowUplinkHandlerHoldsUpOnlyItsPeer(t *testing.T) {
	h := &blockingHandler{block: "slow", entered: make(chan struct{}), release: make(chan struct{}), got: make(chan string, 4)}
	s, err := New(Config{UDPAddr: "127.0.0.1:0", DisableDTLS: true, Policy: plainOnly}, nil, h)
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	released := false
	defer func() {
		if !released {
			close(h.release) // a failed test must not leave the handler waiting
		}
		cancel()
		require.NoError(t, <-done)
	}()

	payload, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue([]byte{7})}})
	require.NoError(t, err)
	var clients []*Client
	for _, ep := range []string{"slow", "fast"} {
		c := newClient(t, ClientConfig{Server: s.UDPAddr().String(), Endpoint: ep})
		require.NoError(t, c.Connect(ctxT(t)))
		require.NoError(t, c.Register(ctxT(t)))
		clients = append(clients, c)
	}
	slowDone := make(chan error, 1)
	go func() { slowDone <- clients[0].Send(ctxT(t), Content{Format: lwm2m.FormatSenMLJSON, Payload: payload}) }()
	<-h.entered
	require.NoError(t, clients[1].Send(ctxT(t), Content{Format: lwm2m.FormatSenMLJSON, Payload: payload}),
		"the fast device is answered while the slow one's uplink is held")
	require.Equal(t, "fast", <-h.got)
	close(h.release)
	released = true
	require.NoError(t, <-slowDone)
	require.Equal(t, "slow", <-h.got)
}
