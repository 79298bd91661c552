package main

import (
	"net/http"

	"github.com/doze-io/doze/profile"
)

// The deviceCapabilities answer in the original platform's shape, key for
// key, so that applications written for it parse it unchanged: services
// are serviceCapabilities, a command's name is commandName, a parameter's
// paraName, a property's propertyName. A value the profile does not give
// (min, max, step, maxLength, unit, enumList, option, description) is
// null, as profile files write it; the lists of the structure (commands,
// paras, responses, properties) are always arrays. min and max are numbers,
// as profile files write them.

type capabilitiesJSON struct {
	DeviceCapabilities []deviceCapabilityJSON `json:"deviceCapabilities"`
}

type deviceCapabilityJSON struct {
	DeviceID            string                  `json:"deviceId"`
	ServiceCapabilities []serviceCapabilityJSON `json:"serviceCapabilities"`
}

type serviceCapabilityJSON struct {
	ServiceID   string           `json:"serviceId"`
	ServiceType string           `json:"serviceType"`
	Option      *string          `json:"option"`
	Description *string          `json:"description"`
	Commands    []commandCapJSON `json:"commands"`
	Properties  []propertyJSON   `json:"properties"`
}

type commandCapJSON struct {
	CommandName string         `json:"commandName"`
	Paras       []paraJSON     `json:"paras"`
	Responses   []responseJSON `json:"responses"`
}

type responseJSON struct {
	ResponseName string     `json:"responseName"`
	Paras        []paraJSON `json:"paras"`
}

type paraJSON struct {
	ParaName  string   `json:"paraName"`
	DataType  string   `json:"dataType"`
	Required  bool     `json:"required"`
	Min       *float64 `json:"min"`
	Max       *float64 `json:"max"`
	Step      *float64 `json:"step"`
	MaxLength *int     `json:"maxLength"`
	Unit      *string  `json:"unit"`
	EnumList  []string `json:"enumList"`
}

type propertyJSON struct {
	PropertyName string   `json:"propertyName"`
	DataType     string   `json:"dataType"`
	Required     bool     `json:"required"`
	Min          *float64 `json:"min"`
	Max          *float64 `json:"max"`
	Step         *float64 `json:"step"`
	MaxLength    *int     `json:"maxLength"`
	Method       string   `json:"method"`
	Unit         *string  `json:"unit"`
	EnumList     []string `json:"enumList"`
}

// orNull is a pointer to v, or nil (JSON null) for v's zero value.
func orNull[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func paraOf(p profile.Para) paraJSON {
	out := paraJSON{ParaName: p.Name, DataType: p.DataType.String(), Required: p.Required, Min: p.Min, Max: p.Max,
		Step: orNull(p.Step), MaxLength: orNull(p.MaxLength), Unit: orNull(p.Unit)}
	if len(p.EnumList) > 0 {
		out.EnumList = p.EnumList
	}
	return out
}

func parasOf(ps []profile.Para) []paraJSON {
	out := make([]paraJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, paraOf(p))
	}
	return out
}

// serviceCapabilities converts a product's services to the original's shape.
func serviceCapabilities(prod *profile.Product) []serviceCapabilityJSON {
	out := make([]serviceCapabilityJSON, 0, len(prod.Services))
	for _, s := range prod.Services {
		sc := serviceCapabilityJSON{ServiceID: s.ID, ServiceType: s.Type, Option: orNull(string(s.Option)),
			Description: orNull(s.Description), Commands: []commandCapJSON{}, Properties: []propertyJSON{}}
		for _, c := range s.Commands {
			cc := commandCapJSON{CommandName: c.Name, Paras: parasOf(c.Paras), Responses: []responseJSON{}}
			for _, r := range c.Responses {
				cc.Responses = append(cc.Responses, responseJSON{ResponseName: r.Name, Paras: parasOf(r.Paras)})
			}
			sc.Commands = append(sc.Commands, cc)
		}
		for _, pr := range s.Properties {
			p := paraOf(pr.Para)
			sc.Properties = append(sc.Properties, propertyJSON{PropertyName: p.ParaName, DataType: p.DataType,
				Required: p.Required, Min: p.Min, Max: p.Max, Step: p.Step, MaxLength: p.MaxLength,
				Method: pr.Method.String(), Unit: p.Unit, EnumList: p.EnumList})
		}
		out = append(out, sc)
	}
	return out
}

// capabilities answers GET deviceCapabilities?deviceId=…: the services of
// the device's product in the original's shape.
func (p *Platform) capabilities(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("deviceId")
	if id == "" {
		return badRequest("missing_deviceId", "deviceId is required")
	}
	d, err := p.ownedDevice(r.Context(), appOf(r), "deviceId", id) // the caller's device only (APP-3)
	if err != nil {
		return err
	}
	prod, err := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
	if err != nil {
		return notFound("product_not_found", "the device's product %s/%s is not in the catalog", d.Info.ManufacturerID, d.Info.Model)
	}
	writeJSON(w, http.StatusOK, capabilitiesJSON{DeviceCapabilities: []deviceCapabilityJSON{
		{DeviceID: d.ID, ServiceCapabilities: serviceCapabilities(prod)}}})
	return nil
}
