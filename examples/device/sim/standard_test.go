package sim_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

// TestStandardObjects: with StandardObjects the device registers objects
// 3, 4, 5 and 3303 and no object 19; it reports its temperature by LwM2M
// Send (SenML JSON) while nobody observes it and by notification once the
// server observes /3303/0/5700; a write of 5750 and an execute of 5605 are
// its commands (OMA LwM2M 1.1 Core §6.3, IPSO object 3303).
func TestStandardObjects(t *testing.T) {
	p := startServer(t, transport.Config{DisableDTLS: true, SendPaths: []lwm2m.Path{lwm2m.RootPath}}, nil)
	d, err := sim.New(sim.Config{Server: p.srv.UDPAddr().String(), IMEI: "868333030000042",
		Objects: sim.StandardObjects, Power: sim.Power{Mode: sim.DRX}})
	require.NoError(t, err)
	run(t, d)
	reg := p.next(t, transport.EventRegistered)
	for _, inst := range []string{"/3/0", "/4/0", "/5/0", "/3303/0"} {
		require.True(t, reg.Registration.Objects.Has(lwm2m.MustPath(inst)), "registration %q announces %s", reg.Registration.Links, inst)
	}
	require.False(t, reg.Registration.Objects.Has(lwm2m.MustPath("/19/0")), "no object 19: %q", reg.Registration.Links)

	// The first reading, unobserved: a Send of 5700, 5601 and 5602.
	sent := p.next(t, transport.EventNotification)
	require.Equal(t, "/dp", sent.Path)
	require.Equal(t, lwm2m.FormatSenMLJSON, sent.ContentFormat)
	recs, err := lwm2m.Decode(sent.ContentFormat, lwm2m.RootPath, sent.Payload, nil)
	require.NoError(t, err, "the Send is SenML JSON: %s", sent.Payload)
	paths := map[string]float64{}
	for _, r := range recs {
		f, ok := r.Value.Float()
		require.True(t, ok, "%s is a Float: %v", r.Path, r.Value)
		paths[r.Path.String()] = f
	}
	require.Len(t, paths, 3)
	require.LessOrEqual(t, paths["/3303/0/5601"], paths["/3303/0/5700"])
	require.GreaterOrEqual(t, paths["/3303/0/5602"], paths["/3303/0/5700"])

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.srv.Read(ctx, d.IMEI(), "/3303/0/5701", transport.NoFormat)
	require.NoError(t, err)
	require.Equal(t, "Cel", string(c.Payload))

	// Observed: the next reading is a notification of 5700.
	c, err = p.srv.Observe(ctx, d.IMEI(), "/3303/0/5700")
	require.NoError(t, err)
	_, err = strconv.ParseFloat(string(c.Payload), 64)
	require.NoError(t, err, "5700 reads as a decimal number in plain text: %q", c.Payload)
	// The device counts the observer from when its answer has left, so a
	// reading taken while the answer is on its way still goes by Send; the
	// reading after that is a notification.
	var n transport.Event
	for i := 0; ; i++ {
		require.NoError(t, d.Report(ctx))
		n = p.next(t, transport.EventNotification)
		if n.Path != "/dp" || i == 2 {
			break
		}
	}
	require.Equal(t, "/3303/0/5700", n.Path)
	_, err = strconv.ParseFloat(string(n.Payload), 64)
	require.NoError(t, err, "notification %q", n.Payload)

	// Commands: a write of Application Type, an execute of Reset.
	require.NoError(t, p.srv.Write(ctx, d.IMEI(), "/3303/0/5750", transport.Content{Format: lwm2m.FormatText, Payload: []byte("outdoor")}))
	c, err = p.srv.Read(ctx, d.IMEI(), "/3303/0/5750", transport.NoFormat)
	require.NoError(t, err)
	require.Equal(t, "outdoor", string(c.Payload))
	require.NoError(t, p.srv.Execute(ctx, d.IMEI(), "/3303/0/5605", nil))
	require.Equal(t, int64(2), d.Stats().Commands)
	minV, err := p.srv.Read(ctx, d.IMEI(), "/3303/0/5601", transport.NoFormat)
	require.NoError(t, err)
	cur, err := p.srv.Read(ctx, d.IMEI(), "/3303/0/5700", transport.NoFormat)
	require.NoError(t, err)
	require.Equal(t, string(cur.Payload), string(minV.Payload), "Reset Min and Max sets the minimum to the current value")
}

func TestStandardObjectsConfig(t *testing.T) {
	_, err := sim.ParseObjects("ipso")
	require.ErrorContains(t, err, "allowed: watermeter")
	o, err := sim.ParseObjects("standard")
	require.NoError(t, err)
	require.Equal(t, sim.StandardObjects, o)
	_, err = sim.New(sim.Config{IMEI: "1", Objects: sim.StandardObjects, Protocol: sim.TUP})
	var ce *sim.ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "Objects", ce.Field)
}
