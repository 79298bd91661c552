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

const (
	demoManufacturerID = "DozeLabs"
	demoModel          = "WM100"
	demoDeviceType     = "WaterMeter"
	demoProfileName    = "WaterMeter_DozeLabs_WM100.zip"
)

// installDemo adds the demo product unless it is there already.
func (p *Platform) installDemo() error {
	if p.products.catalog.Exists(demoManufacturerID, demoModel) {
		return nil
	}
	_, _, err := p.products.Add(context.Background(), demoProfileName, demoProfile, demoCodec)
	if errors.Is(err, profile.ErrExists) {
		return nil
	}
	return err
}
