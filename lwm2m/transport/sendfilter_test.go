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

// What a Send or a notification of a path other than the data channel
// carries is acknowledged only once an UplinkHandler took it: the handler
// refuses twice (a failed disk write), the device's confirmable message
// goes unanswered and its retransmission (LWM-9) is processed again; the
// value arrives once, as an EventNotification. Without this, a mapped
// temperature Send was answered 2.04 before anything was stored (issue 16).
func TestSendValuesAndNotificationsAreDurable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		path     string // the event's Path
		send     func(ctx context.Context, c *Client) error
		observed string // a path the server observes first
	}{
		{"send of the firmware state", "/dp", func(ctx context.Context, c *Client) error {
			b, err := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.RootPath, []lwm2m.Record{{Path: lwm2m.MustPath("/5/0/3"), Value: lwm2m.IntValue(2)}})
			if err != nil {
				return err
			}
			return c.Send(ctx, Content{Format: lwm2m.FormatSenMLCBOR, Payload: b})
		}, ""},
		{"notification of an observed resource", "/3303/0/5700", func(ctx context.Context, c *Client) error {
			return c.Notify(ctx, "/3303/0/5700", Content{Format: lwm2m.FormatText, Payload: []byte("22.5")})
		}, "/3303/0/5700"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &refusingHandler{refuse: 2}
				s, err := New(Config{DisableDTLS: true, Policy: plainOnly}, nil, h)
				require.NoError(t, err)
				l := newMemLink(t, s, ClientConfig{Endpoint: "dev1", Objects: "</3303/0>,</5/0>", ConfirmableNotifications: true})
				l.cli.Handle("/3303/0/5700", Resource{Read: func() (Content, error) {
					return Content{Format: lwm2m.FormatText, Payload: []byte("21")}, nil
				}})
				ctx := context.Background()
				require.NoError(t, l.cli.Register(ctx))
				if tc.observed != "" {
					done := make(chan error, 1)
					go func() { _, err := s.Observe(ctx, "dev1", tc.observed); done <- err }()
					require.NoError(t, <-done)
					synctest.Wait()
					require.True(t, l.cli.Observed(tc.observed))
				}
				start := time.Now()
				require.NoError(t, tc.send(ctx, l.cli), "acknowledged at the third try")
				took := time.Since(start)
				h.mu.Lock()
				tries, accepted := h.tries, h.accepted
				h.mu.Unlock()
				require.Equal(t, 3, tries, "two refusals, then the retransmission was taken")
				require.Len(t, accepted, 1)
				require.Equal(t, EventNotification, accepted[0].Kind)
				require.Equal(t, tc.path, accepted[0].Path)
				require.GreaterOrEqual(t, took, 30*time.Second, "two retransmission timeouts passed before the ACK")
				l.close()
				require.NoError(t, s.Close())
			})
		})
	}
}

// filterHandler is a recorder that is a SendFilter: it takes the paths in
// take, says why it leaves the others out, and records what it was asked.
type filterHandler struct {
	*recorder
	take map[string]bool

	mu    sync.Mutex
	asked []string // "endpoint path path …" per FilterSend
}

func (h *filterHandler) FilterSend(ep string, paths []lwm2m.Path) ([]bool, string) {
	q := ep
	out := make([]bool, len(paths))
	for i, p := range paths {
		q += " " + p.String()
		out[i] = h.take[p.String()]
	}
	h.mu.Lock()
	h.asked = append(h.asked, q)
	h.mu.Unlock()
	return out, "product P/M maps no property to them"
}

// A SendFilter decides per device which paths of a Send the server takes
// (LWM-12): a Send of no path it takes is answered 4.04 Not Found with a
// diagnostic naming the paths and the filter's reason (and an
// EventRefused with the same text), never 2.04; a Send with one path it
// takes is answered 2.04 and its event carries the taken values only. The
// filter is asked once per Send with each path once, /19/0/0 left out.
func TestSendFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &filterHandler{recorder: newRecorder(), take: map[string]bool{"/3303/0/5700": true}}
		s, err := New(Config{DisableDTLS: true, Policy: plainOnly}, nil, h)
		require.NoError(t, err)
		l := newMemLink(t, s, ClientConfig{Endpoint: "dev1", Objects: "</3/0>,</3303/0>"})
		ctx := context.Background()
		require.NoError(t, l.cli.Register(ctx))

		unmapped := `[{"bn":"/3/0/","n":"9","v":87},{"n":"0","vs":"Doze"},{"n":"9","v":86}]`
		err = l.cli.Send(ctx, Content{Format: lwm2m.FormatSenMLJSON, Payload: []byte(unmapped)})
		re, ok := errors.AsType[*ResponseError](err)
		require.True(t, ok, "a Send of paths nobody takes is refused: %v", err)
		require.Equal(t, "4.04", re.CodeText())
		require.Equal(t, "send: no value this server uses: the Send carries /3/0/9, /3/0/0; product P/M maps no property to them", re.Message)
		refused := h.wait(t, EventRefused, "dev1", 1)
		require.Equal(t, re.Message, refused.Message, "the event carries the device's diagnostic")
		require.Equal(t, CodeNotFound, refused.Code)
		require.Zero(t, h.count(EventNotification, "dev1"), "nothing delivered")

		mixed := `[{"bn":"/3303/0/","n":"5700","v":23.5},{"bn":"/3/0/","n":"9","v":87},{"bn":"/19/0/0/","n":"0","vd":"AQ"}]`
		require.NoError(t, l.cli.Send(ctx, Content{Format: lwm2m.FormatSenMLJSON, Payload: []byte(mixed)}), "a taken path makes the Send 2.04")
		e := h.wait(t, EventNotification, "dev1", 1)
		require.Equal(t, "/dp", e.Path)
		recs, err := lwm2m.Decode(e.ContentFormat, lwm2m.RootPath, e.Payload, nil)
		require.NoError(t, err)
		require.Len(t, recs, 1, "only the taken value is delivered")
		require.Equal(t, "/3303/0/5700", recs[0].Path.String())
		f, _ := recs[0].Value.Float()
		require.Equal(t, 23.5, f)
		require.Equal(t, 1, h.count(EventUplink, "dev1"), "the /19/0/0 value is the data channel's, whatever the filter says")

		h.mu.Lock()
		asked := h.asked
		h.mu.Unlock()
		require.Equal(t, []string{"dev1 /3/0/9 /3/0/0", "dev1 /3303/0/5700 /3/0/9"}, asked)
		l.close()
		require.NoError(t, s.Close())
	})
}
