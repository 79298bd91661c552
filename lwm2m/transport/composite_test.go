package transport_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
)

// compositeServer runs a plain-CoAP server on loopback whose events go to
// the returned channel.
func compositeServer(t *testing.T) (*transport.Server, chan transport.Event) {
	t.Helper()
	events := make(chan transport.Event, 64)
	s, err := transport.New(transport.Config{UDPAddr: "127.0.0.1:0", DisableDTLS: true,
		Policy: transport.EndpointPolicyFunc(func(string) transport.Security { return transport.SecurityNone })}, nil,
		transport.HandlerFunc(func(e transport.Event) {
			select {
			case events <- e:
			default:
			}
		}))
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return s, events
}

func sensorDevice(t *testing.T, s *transport.Server, ep, version string) (*lwm2mtest.Device, *lwm2mtest.Sensor) {
	t.Helper()
	sensor := lwm2mtest.NewSensor(21.5, "Cel")
	links := `</>;rt="oma.lwm2m";ct="60 110 112",</1/0>,</3303/0>`
	if version == "1.0" {
		links = "</1/0>,</3303/0>"
	}
	conn, err := net.DialUDP("udp", nil, s.UDPAddr().(*net.UDPAddr))
	require.NoError(t, err)
	d, err := lwm2mtest.StartDevice(testCtx(t), conn, lwm2mtest.DeviceConfig{Endpoint: ep, Version: version, Links: links, Sensor: sensor})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d, sensor
}

var (
	p5700 = lwm2m.MustPath("/3303/0/5700")
	p5701 = lwm2m.MustPath("/3303/0/5701")
	p5750 = lwm2m.MustPath("/3303/0/5750")
)

// values decodes a composite answer (full names) into path → value text.
func values(t *testing.T, c transport.Content) map[string]string {
	t.Helper()
	recs, err := lwm2m.Decode(c.Format, lwm2m.RootPath, c.Payload, nil)
	require.NoError(t, err)
	out := map[string]string{}
	for _, r := range recs {
		out[r.Path.String()] = r.Value.String()
	}
	return out
}

// The composite operations of LwM2M 1.1 against a strict device that
// decodes the FETCH and iPATCH bodies as TS Transport §6.4 and RFC 8428
// write them (lwm2mtest.Sensor), in SenML JSON and SenML CBOR:
// Read-Composite, Write-Composite, Observe-Composite with a notification
// arriving as an event of CompositeKey, and its cancel.
func TestCompositeOperations(t *testing.T) {
	for _, f := range []lwm2m.Format{lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLJSON} {
		t.Run(f.String(), func(t *testing.T) {
			s, events := compositeServer(t)
			ep := "urn:imei:86833303000050" + map[lwm2m.Format]string{lwm2m.FormatSenMLCBOR: "1", lwm2m.FormatSenMLJSON: "2"}[f]
			d, sensor := sensorDevice(t, s, ep, "1.1")
			ctx := testCtx(t)

			c, err := s.ReadComposite(ctx, ep, []lwm2m.Path{p5700, p5701}, f)
			require.NoError(t, err)
			require.Equal(t, f, c.Format)
			require.Equal(t, map[string]string{"/3303/0/5700": "21.5", "/3303/0/5701": "Cel"}, values(t, c))

			require.NoError(t, s.WriteComposite(ctx, ep, []lwm2m.Record{{Path: p5750, Value: lwm2m.StringValue("outdoor")}}, f))
			require.Equal(t, "outdoor", sensor.AppType(), "the device took the iPATCH")
			err = s.WriteComposite(ctx, ep, []lwm2m.Record{{Path: p5700, Value: lwm2m.FloatValue(1)}}, f)
			var re *transport.ResponseError
			require.ErrorAs(t, err, &re)
			require.Equal(t, "4.05", re.CodeText(), "a read-only resource: the device's own code")

			c, err = s.ObserveComposite(ctx, ep, []lwm2m.Path{p5700, p5750}, f)
			require.NoError(t, err)
			require.Equal(t, map[string]string{"/3303/0/5700": "21.5", "/3303/0/5750": "outdoor"}, values(t, c))
			require.Equal(t, []string{"5700", "5750"}, d.CompositeObserved())
			sensor.Set(23.25)
			require.NoError(t, d.NotifyComposite())
			key := transport.CompositeKey([]lwm2m.Path{p5700, p5750})
			var e transport.Event
			require.Eventually(t, func() bool {
				select {
				case e = <-events:
					return e.Kind == transport.EventNotification
				default:
					return false
				}
			}, 5*time.Second, 5*time.Millisecond, "the composite notification arrives")
			require.Equal(t, key, e.Path)
			require.Equal(t, map[string]string{"/3303/0/5700": "23.25", "/3303/0/5750": "outdoor"},
				values(t, transport.Content{Format: e.ContentFormat, Payload: e.Payload}))
			paths, ok := transport.CompositePaths(e.Path)
			require.True(t, ok)
			require.Equal(t, []lwm2m.Path{p5700, p5750}, paths)

			require.NoError(t, s.CancelObserveComposite(ctx, ep, []lwm2m.Path{p5700, p5750}, f))
			require.Nil(t, d.CompositeObserved(), "the device ended the observation")
			require.ErrorIs(t, s.CancelObserveComposite(ctx, ep, []lwm2m.Path{p5700, p5750}, f), transport.ErrNotFound)

			var strictErr *transport.ResponseError
			_, err = s.ReadComposite(ctx, ep, []lwm2m.Path{lwm2m.MustPath("/3303/0/5605")}, f)
			require.ErrorAs(t, err, &strictErr)
			require.Equal(t, "4.04", strictErr.CodeText(), "a path the device does not serve")
		})
	}
}

// Composite operations are LwM2M 1.1: a 1.0 device gets none of them and
// the caller an ErrCompositeUnsupported naming its version, before
// anything is sent; bad path lists are refused the same way.
func TestCompositeRefused(t *testing.T) {
	s, _ := compositeServer(t)
	const ep = "urn:imei:868333030000503"
	d, _ := sensorDevice(t, s, ep, "1.0")
	ctx := testCtx(t)
	before := len(d.Requests())
	_, err := s.ReadComposite(ctx, ep, []lwm2m.Path{p5700}, transport.NoFormat)
	require.ErrorIs(t, err, transport.ErrCompositeUnsupported)
	require.ErrorContains(t, err, "LwM2M 1.0")
	require.ErrorIs(t, s.WriteComposite(ctx, ep, []lwm2m.Record{{Path: p5750, Value: lwm2m.StringValue("x")}}, transport.NoFormat), transport.ErrCompositeUnsupported)
	_, err = s.ObserveComposite(ctx, ep, []lwm2m.Path{p5700}, transport.NoFormat)
	require.ErrorIs(t, err, transport.ErrCompositeUnsupported)
	require.Len(t, d.Requests(), before, "nothing was sent to the device")

	const ep11 = "urn:imei:868333030000504"
	sensorDevice(t, s, ep11, "1.1")
	_, err = s.ReadComposite(ctx, ep11, nil, transport.NoFormat)
	require.ErrorContains(t, err, "no path given")
	_, err = s.ReadComposite(ctx, ep11, []lwm2m.Path{p5700}, lwm2m.FormatTLV)
	require.ErrorIs(t, err, transport.ErrCompositeUnsupported)
	require.ErrorContains(t, err, "not SenML JSON (110) or SenML CBOR (112)")
	many := make([]lwm2m.Path, transport.MaxCompositePaths+1)
	for i := range many {
		many[i] = p5700
	}
	_, err = s.ReadComposite(ctx, ep11, many, transport.NoFormat)
	require.ErrorContains(t, err, "at most 64")
	require.False(t, errors.Is(err, transport.ErrNotRegistered))
}

// CompositePaths reads what CompositeKey writes, and any key it accepts
// comes back the same through CompositeKey.
func FuzzCompositePaths(f *testing.F) {
	f.Add("composite:/3303/0/5700,/3/0/9")
	f.Add("composite:/3303/0")
	f.Add("composite:")
	f.Add("/3/0/9")
	f.Add("composite:/3/0/9,,/1")
	f.Fuzz(func(t *testing.T, key string) {
		paths, ok := transport.CompositePaths(key)
		if !ok {
			return
		}
		if len(paths) == 0 {
			t.Fatalf("%q accepted with no path", key)
		}
		again, ok := transport.CompositePaths(transport.CompositeKey(paths))
		if !ok || len(again) != len(paths) {
			t.Fatalf("%q: the key of %v does not read back: %v", key, paths, again)
		}
		for i := range paths {
			if again[i] != paths[i] {
				t.Fatalf("%q: path %d is %v, read back %v", key, i, paths[i], again[i])
			}
		}
	})
}

// ObserveAccept asks for a format with Accept and keeps it: a
// notification that names no Content-Format (lwm2m-node-lib sends them so)
// arrives as an event in that format, as the answer to a Read would.
func TestObserveAcceptInfersNotificationFormat(t *testing.T) {
	s, events := compositeServer(t)
	const ep = "urn:imei:868333030000505"
	sensor := lwm2mtest.NewSensor(21.5, "Cel")
	conn, err := net.DialUDP("udp", nil, s.UDPAddr().(*net.UDPAddr))
	require.NoError(t, err)
	d, err := lwm2mtest.StartDevice(testCtx(t), conn, lwm2mtest.DeviceConfig{Endpoint: ep, Version: "1.1",
		Links: `</>;rt="oma.lwm2m";ct="60 110 112",</3303/0>`, Sensor: sensor, BareNotifications: true})
	require.NoError(t, err)
	t.Cleanup(d.Close)

	c, err := s.ObserveAccept(testCtx(t), ep, "/3303/0/5700", lwm2m.FormatSenMLCBOR)
	require.NoError(t, err)
	require.Equal(t, lwm2m.FormatSenMLCBOR, c.Format)
	sensor.Set(30)
	require.NoError(t, d.NotifySensor("/3303/0/5700"))
	var e transport.Event
	require.Eventually(t, func() bool {
		select {
		case e = <-events:
			return e.Kind == transport.EventNotification
		default:
			return false
		}
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, lwm2m.FormatSenMLCBOR, e.ContentFormat, "the format the observe asked for")
	require.Equal(t, map[string]string{"/3303/0/5700": "30"}, values(t, transport.Content{Format: e.ContentFormat, Payload: e.Payload}))
}
