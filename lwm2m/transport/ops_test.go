package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// LWM-7: every device operation over DTLS against the client.
func TestDeviceOperations(t *testing.T) {
	const ep = "868333030000010"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	var mu sync.Mutex
	var log []string
	note := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	value := []byte("1")
	c.Handle("/1/0/1", Resource{
		Read: func() (Content, error) {
			mu.Lock()
			defer mu.Unlock()
			return Content{Format: cfText, Payload: value}, nil
		},
		Write: func(v Content) error {
			mu.Lock()
			value = v.Payload
			mu.Unlock()
			note("write " + string(v.Payload))
			return nil
		},
	})
	c.Handle("/3/0/4", Resource{Execute: func(args []byte) error { note("reboot " + string(args)); return nil }})
	c.Handle("/3303", Resource{Create: func(v Content) (uint16, error) { note("create"); return 7, nil }})
	c.Handle("/3303/0", Resource{Write: func(v Content) error { note("partial " + string(v.Payload)); return nil }})
	c.Handle("/3303/1", Resource{})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	ctx := ctxT(t)

	require.NoError(t, s.Write(ctx, ep, "/1/0/1", Content{Format: cfText, Payload: []byte("300")}))
	got, err := s.Read(ctx, ep, "/1/0/1", cfText)
	require.NoError(t, err)
	require.Equal(t, Content{Format: cfText, Payload: []byte("300")}, got)
	require.NoError(t, s.WritePartial(ctx, ep, "/3303/0", Content{Format: cfText, Payload: []byte("p")}))
	require.NoError(t, s.Execute(ctx, ep, "/3/0/4", []byte("0='now'")))
	loc, err := s.Create(ctx, ep, "/3303", Content{Format: lwm2m.FormatTLV, Payload: []byte{0xC1, 0x00, 0x01}})
	require.NoError(t, err)
	require.Equal(t, "/3303/7", loc)
	require.NoError(t, s.Delete(ctx, ep, "/3303/1"))
	links, err := s.Discover(ctx, ep, "/3303")
	require.NoError(t, err)
	require.Equal(t, "</3303>,</3303/0>", links, "discover after the delete")
	require.NoError(t, s.WriteAttributes(ctx, ep, "/1/0/1", "pmin=10", "pmax=60"))

	cur, err := s.Observe(ctx, ep, "/1/0/1")
	require.NoError(t, err)
	require.Equal(t, "300", string(cur.Payload))
	waitFor(t, "the device to record the observer", func() bool { return c.Observed("/1/0/1") })
	require.NoError(t, c.Notify(ctx, "/1/0/1", Content{Format: cfText, Payload: []byte("301")}))
	n := rec.wait(t, EventNotification, ep, 1)
	require.Equal(t, "/1/0/1", n.Path)
	require.Equal(t, "301", string(n.Payload))
	require.NoError(t, s.CancelObserve(ctx, ep, "/1/0/1"))
	require.False(t, c.Observed("/1/0/1"), "the device dropped the observer")
	require.ErrorIs(t, s.CancelObserve(ctx, ep, "/1/0/1"), ErrNotFound)

	var re *ResponseError
	_, err = s.Read(ctx, ep, "/9/9/9", cfNone)
	require.ErrorAs(t, err, &re)
	require.Equal(t, CodeNotFound, re.Code)
	require.Contains(t, err.Error(), "read /9/9/9 on \""+ep+"\"")
	err = s.Execute(ctx, ep, "/1/0/1", nil)
	require.ErrorAs(t, err, &re, "execute on a resource without Execute")
	require.Equal(t, CodeMethodNotAllowed, re.Code)

	_, err = s.Read(ctx, "unknown", "/3/0/0", cfNone)
	require.ErrorIs(t, err, ErrNotRegistered)

	mu.Lock()
	require.Equal(t, []string{"write 300", "partial p", "reboot 0='now'", "create"}, log[:4])
	mu.Unlock()
}

// LWM-7: the writes as OMA LwM2M's Device Management interface puts them
// on CoAP, seen by a raw peer (our Client takes PUT and POST alike and
// drops attributes): Write-Replace is a PUT carrying the value,
// Write-Partial a POST on the object instance, Write-Attributes a PUT
// with one Uri-Query per attribute and neither payload nor
// Content-Format.
func TestWriteOperationsOnTheWire(t *testing.T) {
	const ep = "868333030000014"
	s, _ := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	p.register(ep, "</1/0>,</3303/0>")
	ctx := ctxT(t)
	tlv, err := lwm2m.AppendTLV(nil, lwm2m.MustPath("/3303/0"), []lwm2m.Record{{Path: lwm2m.MustPath("/3303/0/5750"), Value: lwm2m.StringValue("p")}})
	require.NoError(t, err)
	partial := Content{Format: lwm2m.FormatTLV, Payload: tlv}
	for _, tc := range []struct {
		name    string
		op      func() error
		code    codes.Code
		path    string
		queries []string
		cf      lwm2m.Format
		payload []byte
	}{
		{"Write-Replace", func() error { return s.Write(ctx, ep, "/1/0/1", Content{Format: cfText, Payload: []byte("300")}) },
			codes.PUT, "/1/0/1", nil, cfText, []byte("300")},
		{"Write-Partial", func() error { return s.WritePartial(ctx, ep, "/3303/0", partial) },
			codes.POST, "/3303/0", nil, lwm2m.FormatTLV, partial.Payload},
		{"Write-Attributes", func() error { return s.WriteAttributes(ctx, ep, "/1/0/1", "pmin=10", "pmax=60") },
			codes.PUT, "/1/0/1", []string{"pmin=10", "pmax=60"}, cfNone, nil},
	} {
		done := make(chan error, 1)
		go func() { done <- tc.op() }()
		m := p.recv()
		require.Equal(t, message.Confirmable, m.Type, tc.name)
		require.Equal(t, tc.code, m.Code, tc.name)
		require.Equal(t, tc.path, msgPath(&m), tc.name)
		require.Equal(t, tc.queries, msgQueries(&m), tc.name)
		require.Equal(t, tc.cf, contentFormat(&m), "%s: Content-Format", tc.name)
		if tc.payload == nil {
			require.Empty(t, m.Payload, "%s: no payload", tc.name)
		} else {
			require.Equal(t, tc.payload, m.Payload, tc.name)
		}
		p.send(message.Message{Code: codes.Changed, Type: message.Acknowledgement, MessageID: m.MessageID, Token: m.Token})
		require.NoError(t, <-done, tc.name)
	}
}

// LWM-7: operations are bounded by their context: a device that never
// answers does not hold the caller past its deadline.
func TestOperationBoundedByContext(t *testing.T) {
	const ep = "868333030000011"
	s, _ := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	block := make(chan struct{})
	c.Handle("/3/0/0", Resource{Read: func() (Content, error) { <-block; return Content{}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Read(ctx, ep, "/3/0/0", cfNone)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
	close(block)
}

// LWM-7: results are decoded with the content formats and the object
// definitions: TLV of /3/0 and a text value of /3/0/9 (battery, integer).
func TestReadRecordsDecodes(t *testing.T) {
	const ep = "868333030000012"
	s, _ := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	recs := []lwm2m.Record{{Path: lwm2m.MustPath("/3/0/0"), Value: lwm2m.StringValue("Doze")}, {Path: lwm2m.MustPath("/3/0/9"), Value: lwm2m.IntValue(87)}}
	tlv, err := lwm2m.AppendTLV(nil, lwm2m.MustPath("/3/0"), recs)
	require.NoError(t, err)
	c.Handle("/3/0", Resource{Read: func() (Content, error) { return Content{Format: lwm2m.FormatTLV, Payload: tlv}, nil }})
	c.Handle("/3/0/9", Resource{Read: func() (Content, error) { return Content{Format: lwm2m.FormatText, Payload: []byte("87")}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))

	got, err := s.ReadRecords(ctxT(t), ep, "/3/0")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "/3/0/0", got[0].Path.String())
	require.Equal(t, "Doze", got[0].Value.String())
	n, ok := got[1].Value.Int()
	require.True(t, ok, "battery level typed as integer: %v", got[1].Value)
	require.Equal(t, int64(87), n)

	got, err = s.ReadRecords(ctxT(t), ep, "/3/0/9")
	require.NoError(t, err)
	n, ok = got[0].Value.Int()
	require.True(t, ok, "text typed by the definition: %v", got[0].Value)
	require.Equal(t, int64(87), n)

	_, err = s.ReadRecords(ctxT(t), ep, "/3/x")
	require.ErrorIs(t, err, lwm2m.ErrInvalidPath)
}

// A registered device whose DTLS session ended is reported unreachable at
// once, without a request going out.
func TestRequestToClosedSessionUnreachable(t *testing.T) {
	const ep = "868333030000013"
	s, _ := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	require.NoError(t, c.Close()) // close_notify ends the server's session
	waitFor(t, "the server to end the session", func() bool { return s.sessions() == 0 })
	_, ok := s.Registration(ep)
	require.True(t, ok, "the registration outlives the session")
	_, err := s.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.ErrorIs(t, err, ErrUnreachable)
}
