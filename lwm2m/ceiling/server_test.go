package ceiling_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/lwm2m/ceiling"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// TestServerDTLS: lean devices handshake with the bare server with the key
// its PSK function gives their identity, register (2.01) and send (2.04);
// an identity the function refuses gets no session. Close is idempotent.
func TestServerDTLS(t *testing.T) {
	key := []byte("0123456789abcdef")
	s, err := ceiling.Start(ceiling.Config{PSK: func(id []byte) ([]byte, error) {
		if string(id) == "stranger" {
			return nil, errors.New("unknown identity")
		}
		return key, nil
	}})
	require.NoError(t, err)
	defer s.Close()
	for i, ep := range []string{"868333030000001", "868333030000002"} {
		d, err := ceiling.DialLean(s.Addr(), ep, key, ceiling.SourceIP(i, 2))
		require.NoError(t, err)
		defer d.Close()
		require.NoError(t, d.Handshake(), "device %s", ep)
		require.NoError(t, d.Register(ep, "</3/0>,</19/1>"), "device %s", ep)
		require.NoError(t, d.Send([]byte{1, 2, 3}), "device %s", ep)
		require.Zero(t, d.Observed(), "the bare server observes nothing")
	}
	d, err := ceiling.DialLean(s.Addr(), "stranger", key, nil)
	require.NoError(t, err)
	defer d.Close()
	require.Error(t, d.Handshake(), "an identity the PSK function refuses")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
}

// TestServerUDP: over plain CoAP the bare server answers a confirmable
// POST /dp with a piggy-backed 2.04 and any other path with 4.04.
func TestServerUDP(t *testing.T) {
	s, err := ceiling.Start(ceiling.Config{Tick: time.Second})
	require.NoError(t, err)
	defer s.Close()
	c, err := net.Dial("udp", s.Addr())
	require.NoError(t, err)
	defer c.Close()
	for mid, tc := range map[int32]struct {
		path string
		want codes.Code
	}{1: {"dp", codes.Changed}, 2: {"rd", codes.Created}, 3: {"nowhere", codes.NotFound}} {
		req := message.Message{Code: codes.POST, Type: message.Confirmable, MessageID: mid, Token: []byte{byte(mid)},
			Options: message.Options{{ID: message.URIPath, Value: []byte(tc.path)}}}
		n, err := coder.DefaultCoder.Size(req)
		require.NoError(t, err)
		raw := make([]byte, n)
		_, err = coder.DefaultCoder.Encode(req, raw)
		require.NoError(t, err)
		_, err = c.Write(raw)
		require.NoError(t, err)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1500)
		n, err = c.Read(buf)
		require.NoError(t, err)
		var resp message.Message
		_, err = coder.DefaultCoder.Decode(buf[:n], &resp)
		require.NoError(t, err)
		require.Equal(t, message.Acknowledgement, resp.Type, "/%s", tc.path)
		require.Equal(t, mid, resp.MessageID, "/%s", tc.path)
		require.Equal(t, tc.want, resp.Code, "/%s", tc.path)
	}
}

// TestStartRefuses: negative durations are refused.
func TestStartRefuses(t *testing.T) {
	_, err := ceiling.Start(ceiling.Config{Idle: -time.Second})
	require.ErrorContains(t, err, "must not be negative")
}
