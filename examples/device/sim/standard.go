package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

// Objects says which LwM2M objects a simulated device serves.
type Objects string

// The object sets of a simulated device.
const (
	// WaterMeterObjects is the demo water meter: object 19 as its data
	// channel (reports and commands in the codec's bytes), Device (3) and
	// Firmware Update (5).
	WaterMeterObjects Objects = "watermeter"
	// StandardObjects is a standard temperature sensor without object 19:
	// Device (3), Connectivity Monitoring (4), Firmware Update (5) and IPSO
	// Temperature (3303), for a product that maps its services to
	// resources (the platform's demo product TS3303). It reports its
	// Sensor Value (/3303/0/5700) by notification when the platform
	// observes it, else by LwM2M Send in SenML JSON; writes of Application
	// Type (5750) and executes of Reset Min and Max (5605) are its
	// commands.
	StandardObjects Objects = "standard"
)

// TemperatureSensorInfo is the demo temperature sensor's product (model
// TemperatureSensor_DozeLabs_TS3303, mapped onto object 3303).
var TemperatureSensorInfo = DeviceInfo{ManufacturerID: "DozeLabs", DeviceType: "TemperatureSensor", Model: "TS3303", ProtocolType: "LWM2M"}

// ParseObjects reads an object set name: "watermeter" or "standard".
func ParseObjects(s string) (Objects, error) {
	switch o := Objects(s); o {
	case WaterMeterObjects, StandardObjects:
		return o, nil
	}
	return "", fmt.Errorf("objects %q: allowed: watermeter (object 19 and a codec), standard (objects 3, 4, 5, 3303)", s)
}

// sensorState is the simulated temperature sensor of object 3303.
type sensorState struct {
	centi    int64 // Sensor Value in 1/100 °C
	min, max int64 // Min and Max Measured Value in 1/100 °C
	step     int64
	appType  string
}

func newSensorState(imei string) sensorState {
	seed, _ := strconv.ParseInt(imei[max(0, len(imei)-3):], 10, 64)
	v := 1800 + seed%700
	return sensorState{centi: v, min: v, max: v, appType: "indoor"}
}

// next moves the temperature by a small swing around its start.
func (s *sensorState) next() {
	s.step++
	s.centi += int64(math.Round(40 * math.Sin(float64(s.step)/3)))
	s.min, s.max = min(s.min, s.centi), max(s.max, s.centi)
}

func centi(v int64) string { return strconv.FormatFloat(float64(v)/100, 'f', -1, 64) }

// serveStandard installs objects 3, 4, 5 and 3303 on the client.
func (d *Device) serveStandard(c *transport.Client) {
	text := func(f func() string) func() (transport.Content, error) {
		return func() (transport.Content, error) {
			return transport.Content{Format: lwm2m.FormatText, Payload: []byte(f())}, nil
		}
	}
	locked := func(f func(s *sensorState) string) func() string {
		return func() string {
			d.mu.Lock()
			defer d.mu.Unlock()
			return f(&d.sensor)
		}
	}
	fixed := func(s string) func() string { return func() string { return s } }
	c.Handle("/3/0/0", transport.Resource{Read: text(fixed(TemperatureSensorInfo.ManufacturerID))})
	c.Handle("/3/0/1", transport.Resource{Read: text(fixed(TemperatureSensorInfo.Model))})
	c.Handle("/3/0/2", transport.Resource{Read: text(d.IMEI)})
	c.Handle("/3/0/3", transport.Resource{Read: text(d.FirmwareVersion)})
	c.Handle("/3/0/9", transport.Resource{Read: text(fixed("87"))}) // Battery Level, %
	c.Handle("/3/0/19", transport.Resource{Read: text(d.SoftwareVersion)})
	c.Handle("/4/0/0", transport.Resource{Read: text(fixed("7"))})    // Network Bearer: NB-IoT
	c.Handle("/4/0/2", transport.Resource{Read: text(fixed("-85"))})  // Radio Signal Strength, dBm
	c.Handle("/4/0/3", transport.Resource{Read: text(fixed("100"))})  // Link Quality
	c.Handle("/4/0/8", transport.Resource{Read: text(fixed("4242"))}) // Cell ID
	c.Handle("/3303/0/5700", transport.Resource{Read: text(locked(func(s *sensorState) string { return centi(s.centi) }))})
	c.Handle("/3303/0/5601", transport.Resource{Read: text(locked(func(s *sensorState) string { return centi(s.min) }))})
	c.Handle("/3303/0/5602", transport.Resource{Read: text(locked(func(s *sensorState) string { return centi(s.max) }))})
	c.Handle("/3303/0/5701", transport.Resource{Read: text(fixed("Cel"))})
	c.Handle("/3303/0/5605", transport.Resource{Execute: func([]byte) error {
		d.mu.Lock()
		d.sensor.min, d.sensor.max = d.sensor.centi, d.sensor.centi
		d.mu.Unlock()
		d.stats.commands.Add(1)
		d.log.Info("command", "execute", "/3303/0/5605")
		return nil
	}})
	c.Handle("/3303/0/5750", transport.Resource{
		Read: text(locked(func(s *sensorState) string { return s.appType })),
		Write: func(v transport.Content) error {
			recs, err := lwm2m.Decode(v.Format, lwm2m.MustPath("/3303/0/5750"), v.Payload, nil)
			if err != nil {
				return err
			}
			if len(recs) != 1 || recs[0].Path.String() != "/3303/0/5750" {
				return errors.New("a write of /3303/0/5750 takes one String value at that path")
			}
			s, err := recs[0].Value.As(lwm2m.TypeString)
			if err != nil {
				return err
			}
			d.mu.Lock()
			d.sensor.appType = s.String()
			d.mu.Unlock()
			d.stats.commands.Add(1)
			d.log.Info("command", "write", "/3303/0/5750", "value", s.String())
			return nil
		}})
	d.serveFirmware(c, text)
}

// sendTemperature reports the next temperature: a notification of
// /3303/0/5700 (and of 5601/5602 when observed) when the platform observes
// it, else a Send (/dp) of the three in SenML JSON (RFC 8428).
func (d *Device) sendTemperature(ctx context.Context) error {
	d.wake(ctx)
	d.mu.Lock()
	d.sensor.next()
	s := d.sensor
	c := d.client
	d.mu.Unlock()
	recs := []lwm2m.Record{
		{Path: lwm2m.MustPath("/3303/0/5700"), Value: lwm2m.FloatValue(float64(s.centi) / 100)},
		{Path: lwm2m.MustPath("/3303/0/5601"), Value: lwm2m.FloatValue(float64(s.min) / 100)},
		{Path: lwm2m.MustPath("/3303/0/5602"), Value: lwm2m.FloatValue(float64(s.max) / 100)},
	}
	var err error
	if c.Observed("/3303/0/5700") {
		for _, r := range recs {
			path := r.Path.String()
			if !c.Observed(path) {
				continue
			}
			if err = c.Notify(ctx, path, transport.Content{Format: lwm2m.FormatText, Payload: []byte(r.Value.String())}); err != nil {
				break
			}
		}
	} else {
		var b []byte
		if b, err = lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, recs); err == nil {
			err = c.Send(ctx, transport.Content{Format: lwm2m.FormatSenMLJSON, Payload: b})
		}
	}
	d.touch()
	if err != nil {
		d.stats.upErrors.Add(1)
		d.log.Warn("temperature", "err", err)
		return fmt.Errorf("sim: device %s: temperature: %w", d.cfg.IMEI, err)
	}
	d.stats.reports.Add(1)
	return nil
}
