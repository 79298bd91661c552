package main

import (
	"context"
	_ "embed"
	"errors"

	"github.com/doze-io/doze/profile"
)

// The demo product: a water meter with Battery, Connectivity and Meter
// services, and its declarative codec (the same files the profile and codec
// packages test with).
var (
	//go:embed demo/WaterMeter_DozeLabs_WM100.zip
	demoProfile []byte
	//go:embed demo/watermeter.json
	demoCodec []byte
)

// The demo product for standard LwM2M clients (LWM-12): a temperature
// sensor on the IPSO Temperature object (3303), its properties mapped to
// 5700 Sensor Value, 5701 Sensor Units, 5601/5602 Min/Max Measured Value
// and 5750 Application Type, its commands to an Execute of 5605 (reset
// min and max) and a Write of 5750.
var (
	//go:embed demo/TemperatureSensor_DozeLabs_TS3303.json
	demoTempProfile []byte
	//go:embed demo/TemperatureSensor_DozeLabs_TS3303.mapping.json
	demoTempMapping []byte
)

const (
	demoTempModel      = "TS3303"
	demoTempDeviceType = "TemperatureSensor"
	demoTempName       = "TemperatureSensor_DozeLabs_TS3303.json"
)

const (
	demoManufacturerID = "DozeLabs"
	demoModel          = "WM100"
	demoDeviceType     = "WaterMeter"
	demoProfileName    = "WaterMeter_DozeLabs_WM100.zip"
)

// installDemo adds the demo products unless they are there already.
func (p *Platform) installDemo() error {
	for _, u := range []upload{
		{name: demoProfileName, prof: demoProfile, codecJSON: demoCodec},
		{name: demoTempName, prof: demoTempProfile, lwmMap: demoTempMapping},
	} {
		prod, _, err := p.products.AddUpload(context.Background(), u)
		if errors.Is(err, profile.ErrExists) {
			continue
		}
		if err != nil {
			return err
		}
		// Owned from the start by the app that gets ownerless resources
		// (the demo app), so a fresh start has nothing to migrate.
		if owner, _ := defaultOwner(p.auth.Apps()); owner != "" {
			if err := p.db.Owners().Set(context.Background(), kindProduct, productKey(prod.Key()), owner); err != nil {
				return err
			}
		}
	}
	return nil
}
