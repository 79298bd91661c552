package profile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/doze-io/doze/profile"
)

// Load a Profile zip as uploaded, with its file name (PRF-1, PRF-5).
func ExampleLoadZip() {
	data, err := os.ReadFile("testdata/zip/WaterMeter_DozeLabs_WM100.zip")
	if err != nil {
		panic(err)
	}
	p, warnings, err := profile.LoadZip(bytes.NewReader(data), int64(len(data)), "WaterMeter_DozeLabs_WM100.zip", nil)
	if err != nil {
		fmt.Println(err) // a *ValidationError lists every problem
		return
	}
	fmt.Println(p.DeviceType, p.ManufacturerID, p.Model, p.ProtocolType, len(warnings), "warnings")
	for _, s := range p.Services {
		fmt.Printf("%s: %d properties, %d commands\n", s.ID, len(s.Properties), len(s.Commands))
	}
	// Output:
	// WaterMeter DozeLabs WM100 CoAP 0 warnings
	// Battery: 2 properties, 0 commands
	// Connectivity: 5 properties, 0 commands
	// Meter: 6 properties, 1 commands
}

// A broken profile fails with every problem at once, each with its file,
// line and column.
func ExampleValidationError() {
	_, _, err := profile.LoadDir(os.DirFS("testdata/broken/many"), "Broken_DozeLabs_B1", nil)
	var ve *profile.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Println(p.Code, p.File, p.Line, p.Column)
		}
	}
	// Output:
	// service-no-file profile/devicetype-capability.json 16 11
	// data-type service/Meter/profile/servicetype-capability.json 45 11
	// method service/Meter/profile/servicetype-capability.json 63 11
	// duplicate service/Meter/profile/servicetype-capability.json 71 11
}

// Check a device's report, decoded from JSON, against the product model
// (PRF-8).
func ExampleProduct_CheckReport() {
	data, _ := os.ReadFile("testdata/zip/WaterMeter_DozeLabs_WM100.zip")
	p, _, err := profile.LoadZip(bytes.NewReader(data), int64(len(data)), "", nil)
	if err != nil {
		panic(err)
	}
	var report map[string]any
	_ = json.Unmarshal([]byte(`{"batteryLevel":60,"batteryVoltage":3.61}`), &report)
	fmt.Println(p.CheckReport("Battery", report))

	_ = json.Unmarshal([]byte(`{"batteryLevel":120,"batteryLvl":3}`), &report)
	err = p.CheckReport("Battery", report)
	var ce *profile.CheckError
	if errors.As(err, &ce) {
		for _, m := range ce.Mismatches {
			fmt.Printf("%s [%s]: %s\n", m.Name, m.Rule, m.Message)
		}
	}
	// Output:
	// <nil>
	// batteryLevel [max]: property "batteryLevel": 120 is above max 100
	// batteryLvl [name]: "batteryLvl" is not a property of service Battery (properties: batteryLevel, batteryVoltage); reported names must match the model
}

// Check a command before queueing it (PRF-9): paras must be a non-empty
// object and each para must fit.
func ExampleProduct_CheckCommand() {
	data, _ := os.ReadFile("testdata/zip/WaterMeter_DozeLabs_WM100.zip")
	p, _, _ := profile.LoadZip(bytes.NewReader(data), int64(len(data)), "", nil)
	fmt.Println(p.CheckCommand("Meter", "SET_REPORT_PERIOD", map[string]any{"period": 3600}))
	fmt.Println(p.CheckCommand("Meter", "SET_REPORT_PERIOD", map[string]any{"period": 90}))
	// Output:
	// <nil>
	// profile: command SET_REPORT_PERIOD of service Meter: para "period": 90 is not 60 plus a multiple of step 60
}

// countDevices stands in for the device registry.
type countDevices map[string]int

func (c countDevices) CountDevices(manufacturerID, model string) int {
	return c[manufacturerID+"/"+model]
}

// A catalog keys products by (manufacturerId, model) and locks those in use
// (PRF-7).
func ExampleCatalog() {
	devices := countDevices{}
	c := profile.NewCatalog(devices)
	p, _, _ := profile.LoadDir(os.DirFS("testdata/profiles/SmartLock_DozeLabs_SL2"), "", nil)
	fmt.Println(c.Add(p))
	fmt.Println(errors.Is(c.Add(p), profile.ErrExists))
	devices["DozeLabs/SL2"] = 2
	fmt.Println(c.Delete("DozeLabs", "SL2"))
	fmt.Println(c.Exists("DozeLabs", "SL2"))
	// Output:
	// <nil>
	// true
	// profile: product DozeLabs/SL2 is locked: 2 device(s) are registered against it; delete them first
	// true
}

// Codecs ask which data type a mapped property or para has (COD-3).
func ExampleProduct_PropertyType() {
	p, _, _ := profile.LoadDir(os.DirFS("testdata/profiles/MultiSensor_DozeLabs_MS3"), "", nil)
	t, ok := p.PropertyType("OutdoorTemperature", "temperature")
	fmt.Println(t, ok)
	t, ok = p.ParaType("IndoorTemperature", "SET_THRESHOLD", "high")
	fmt.Println(t, ok)
	_, ok = p.PropertyType("Temperature", "temperature") // a serviceType, not a serviceId
	fmt.Println(ok)
	// Output:
	// decimal true
	// decimal true
	// false
}

// A product's CodecModel is what codec.Compile takes to check a codec's
// field mappings against the product (COD-3).
func ExampleProduct_CodecModel() {
	p, _, _ := profile.LoadDir(os.DirFS("testdata/profiles/SmartLock_DozeLabs_SL2"), "", nil)
	m := p.CodecModel() // a codec.Model and codec.ResponseModel
	fmt.Println(m.ParaType("Lock", "UNLOCK", "holdSeconds"))
	fmt.Println(m.ResponseParaType("Lock", "UNLOCK", "lockState"))
	fmt.Println(m.PropertyType("Lock", "nope"))
	// Output:
	// int true
	// string true
	//  false
}
