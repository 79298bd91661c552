package transport

import (
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/stretchr/testify/require"
)

type box struct {
	mu  sync.Mutex
	got [][]byte
	ch  chan struct{}
}

func newBox() *box { return &box{ch: make(chan struct{}, 16)} }

func (b *box) put(p []byte) {
	b.mu.Lock()
	b.got = append(b.got, append([]byte(nil), p...))
	b.mu.Unlock()
	b.ch <- struct{}{}
}

func (b *box) all() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LWM-5: over DTLS the server observes /19/0/0 after registration;
// notifications and Send arrive as uplink data; a downlink writes /19/1/0.
func TestObject19UplinkDownlinkDTLS(t *testing.T) {
	const ep = "868333030000001"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "urn:imei:" + ep, Key: testKey})
	down := newBox()
	c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfOpaque}, nil }})
	c.Handle("/19/1/0", Resource{Write: func(v Content) error {
		if v.Format != cfOpaque {
			t.Errorf("downlink Content-Format = %v, want opaque", v.Format)
		}
		down.put(v.Payload)
		return nil
	}})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	waitFor(t, "server to observe /19/0/0", func() bool { return c.Observed("/19/0/0") })

	require.NoError(t, c.Notify(ctxT(t), "/19/0/0", Content{Format: cfOpaque, Payload: []byte{0x01, 0x02, 0xFF}}))
	e := rec.wait(t, EventUplink, ep, 1)
	require.Equal(t, "/19/0/0", e.Path)
	require.Equal(t, []byte{0x01, 0x02, 0xFF}, e.Payload)

	// A TLV notification of the multiple resource /19/0/0 with one instance.
	tlv := []byte{0x43, 0x00, 0xAA, 0xBB, 0xCC} // resource instance 0 of 3 bytes
	require.NoError(t, c.Notify(ctxT(t), "/19/0/0", Content{Format: lwm2m.FormatTLV, Payload: tlv}))
	e = rec.wait(t, EventUplink, ep, 2)
	require.Equal(t, []byte{0xAA, 0xBB, 0xCC}, e.Payload)

	require.NoError(t, c.Send(ctxT(t), Content{Format: cfOpaque, Payload: []byte("sent")}))
	e = rec.wait(t, EventUplink, ep, 3)
	require.Equal(t, "/dp", e.Path)
	require.Equal(t, "sent", string(e.Payload))
	require.GreaterOrEqual(t, rec.count(EventWoke, ep), 4, "registration, 2 notifications and a Send each raise a wake event")

	require.NoError(t, s.Downlink(ctxT(t), "urn:imei:"+ep, []byte{0xCA, 0xFE}))
	require.Equal(t, [][]byte{{0xCA, 0xFE}}, down.all())
}

// LWM-4: TUP over DTLS: POST /t/r → 2.04, the server observes /t/d, uplink
// as /t/d notifications, downlink as a request to /t/d.
func TestTUPUplinkDownlinkDTLS(t *testing.T) {
	const ep = "868333030000002"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey, TUP: true})
	down := newBox()
	c.Handle("/t/d", Resource{
		Read:  func() (Content, error) { return Content{Format: cfOpaque}, nil },
		Write: func(v Content) error { down.put(v.Payload); return nil },
	})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	r := rec.wait(t, EventRegistered, ep, 1)
	require.True(t, r.Registration.TUP)
	waitFor(t, "server to observe /t/d", func() bool { return c.Observed("/t/d") })
	require.NoError(t, c.Notify(ctxT(t), "/t/d", Content{Format: cfOpaque, Payload: []byte{0x00, 0x01}}))
	e := rec.wait(t, EventUplink, ep, 1)
	require.Equal(t, "/t/d", e.Path)
	require.Equal(t, []byte{0x00, 0x01}, e.Payload)
	require.NoError(t, s.Downlink(ctxT(t), ep, []byte{0x02}))
	require.Equal(t, [][]byte{{0x02}}, down.all())
}

// Confirmable notifications are acknowledged by the server; after the
// server forgets an observation (de-registration), a notification on its
// token is answered with Reset and the device drops the observer.
func TestConfirmableNotificationAndReset(t *testing.T) {
	const ep = "868333030000020"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey, ConfirmableNotifications: true})
	c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfOpaque}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	waitFor(t, "observe of /19/0/0", func() bool { return c.Observed("/19/0/0") })
	require.NoError(t, c.Notify(ctxT(t), "/19/0/0", Content{Format: cfOpaque, Payload: []byte("con")}), "acknowledged")
	require.Equal(t, "con", string(rec.wait(t, EventUplink, ep, 1).Payload))

	require.NoError(t, s.cfg.Observations.DeleteObservation(mustOneObservation(t, s, ep).Token))
	err := c.Notify(ctxT(t), "/19/0/0", Content{Format: cfOpaque, Payload: []byte("late")})
	require.ErrorIs(t, err, ErrReset)
	require.False(t, c.Observed("/19/0/0"))
	require.Equal(t, 1, rec.count(EventUplink, ep))
}

func mustOneObservation(t *testing.T, s *Server, ep string) Observation {
	t.Helper()
	obs, err := s.cfg.Observations.Observations(ep)
	require.NoError(t, err)
	require.Len(t, obs, 1)
	return obs[0]
}

// LWM-5: LwM2M 1.1 Send in SenML (JSON and CBOR) is decoded: values of
// /19/0/0 are uplink data; a Send of the firmware State is a notification;
// a Send of resources the server does not use is refused with 4.04
// (LWM-12).
func TestSendSenML(t *testing.T) {
	const ep = "868333030000021"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	data := []lwm2m.Record{{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue([]byte{0xDE, 0xAD})}}
	for i, f := range []lwm2m.Format{lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR} {
		payload, err := lwm2m.Encode(f, lwm2m.RootPath, data)
		require.NoError(t, err)
		require.NoError(t, c.Send(ctxT(t), Content{Format: f, Payload: payload}))
		e := rec.wait(t, EventUplink, ep, i+1)
		require.Equal(t, []byte{0xDE, 0xAD}, e.Payload, "%v", f)
		require.Equal(t, "/19/0/0", e.Path)
	}
	state, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{{Path: lwm2m.MustPath("/5/0/3"), Value: lwm2m.IntValue(1)}})
	require.NoError(t, err)
	require.NoError(t, c.Send(ctxT(t), Content{Format: lwm2m.FormatSenMLJSON, Payload: state}))
	n := rec.wait(t, EventNotification, ep, 1)
	require.Equal(t, "/dp", n.Path)
	require.Equal(t, lwm2m.FormatSenMLJSON, n.ContentFormat)
	require.Equal(t, state, n.Payload)
	temp, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{{Path: lwm2m.MustPath("/3303/0/5700"), Value: lwm2m.FloatValue(21.5)}})
	require.NoError(t, err)
	var re *ResponseError
	require.ErrorAs(t, c.Send(ctxT(t), Content{Format: lwm2m.FormatSenMLJSON, Payload: temp}), &re)
	require.Equal(t, CodeNotFound, re.Code)
	require.Equal(t, CodeNotFound, rec.wait(t, EventRefused, ep, 1).Code)
	require.Equal(t, 2, rec.count(EventUplink, ep))
	require.Equal(t, 1, rec.count(EventNotification, ep))
}
