package profile

import (
	"fmt"
	"strings"
)

// A Product is one device model: who makes it, how it talks, and the
// services it offers (PRF-2). A Product returned by a loader is read-only:
// share it between goroutines freely, never modify it after loading.
type Product struct {
	ManufacturerID   string        `json:"manufacturerId"`
	ManufacturerName string        `json:"manufacturerName,omitempty"`
	Model            string        `json:"model"`
	DeviceType       string        `json:"deviceType"`
	ProtocolType     string        `json:"protocolType"`
	OM               *OMCapability `json:"omCapability,omitempty"`
	Services         []Service     `json:"services"`
}

// OMCapability is the operation-and-maintenance part of a product (PRF-2).
type OMCapability struct {
	// Upgrade is software upgrade over PCP (upgradeCapability).
	Upgrade *Upgrade `json:"upgradeCapability,omitempty"`
	// FirmwareUpgrade is firmware upgrade over LwM2M object 5 (fwUpgradeCapability).
	FirmwareUpgrade *Upgrade `json:"fwUpgradeCapability,omitempty"`
	// Config is configCapability, kept as the JSON text the file holds.
	Config string `json:"configCapability,omitempty"`
}

// Upgrade says whether and how a product can be upgraded.
type Upgrade struct {
	Supported bool   `json:"supportUpgrade"`
	Protocol  string `json:"upgradeProtocolType,omitempty"`
}

// Option says how necessary a service is to a product.
type Option string

// The options a service may have (PRF-2).
const (
	OptionMaster    Option = "Master"
	OptionMandatory Option = "Mandatory"
	OptionOptional  Option = "Optional"
)

// A Service is one capability of a product, addressed by its ID in reports
// and commands (PRF-6). Several services may share a Type.
type Service struct {
	ID          string     `json:"serviceId"`
	Type        string     `json:"serviceType"`
	Option      Option     `json:"option,omitempty"`
	Description string     `json:"description,omitempty"`
	Properties  []Property `json:"properties"`
	Commands    []Command  `json:"commands"`

	// index maps property names to positions in Properties; built by the
	// loaders and Catalog.Add. Without it, lookups scan.
	index map[string]int
}

// A Para is a command or response parameter (PRF-3): a name, a data type
// and the rules a value must follow.
type Para struct {
	Name     string   `json:"name"`
	DataType DataType `json:"dataType"`
	Required bool     `json:"required"`
	// Min and Max bound a number's value (nil: no bound). As written in
	// the file; see Bounds for how they are read.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// Step, when above 0, requires a number to be Min plus a whole
	// multiple of Step (Min taken as 0 when absent).
	Step float64 `json:"step,omitempty"`
	// MaxLength, when above 0, bounds a string's length in characters.
	MaxLength int    `json:"maxLength,omitempty"`
	Unit      string `json:"unit,omitempty"`
	// EnumList lists the values a string (or enum) may take; empty means
	// any.
	EnumList    []string `json:"enumList,omitempty"`
	Description string   `json:"description,omitempty"`
	// Default is the default value of the newer JSON model (PRF-10), as
	// JSON text; empty when none.
	Default string `json:"defaultValue,omitempty"`
}

// A Property is a value a device reports: a Para with an access method.
type Property struct {
	Para
	Method Access `json:"method"`
}

// A Command is what an application may send to a service; Name is the
// command's method in the northbound API (PRF-9).
type Command struct {
	Name      string     `json:"commandName"`
	Paras     []Para     `json:"paras"`
	Responses []Response `json:"responses,omitempty"`
}

// A Response is what a device answers to a command.
type Response struct {
	Name  string `json:"responseName"`
	Paras []Para `json:"paras"`
}

// Key returns the catalog key of the product.
func (p *Product) Key() (manufacturerID, model string) { return p.ManufacturerID, p.Model }

// Service returns the service with the given serviceId (not serviceType,
// PRF-6), or nil and false.
func (p *Product) Service(id string) (*Service, bool) {
	for i := range p.Services {
		if p.Services[i].ID == id {
			return &p.Services[i], true
		}
	}
	return nil, false
}

// PropertyType reports the data type of property name of service
// serviceID; ok is false when either does not exist. Codecs use it to check
// field mappings (COD-3).
func (p *Product) PropertyType(serviceID, name string) (t DataType, ok bool) {
	s, ok := p.Service(serviceID)
	if !ok {
		return TypeInvalid, false
	}
	prop, ok := s.Property(name)
	if !ok {
		return TypeInvalid, false
	}
	return prop.DataType, true
}

// ParaType reports the data type of para name of command command of
// service serviceID; ok is false when any of them does not exist.
func (p *Product) ParaType(serviceID, command, name string) (t DataType, ok bool) {
	if c, ok := p.command(serviceID, command); ok {
		if para, ok := c.Para(name); ok {
			return para.DataType, true
		}
	}
	return TypeInvalid, false
}

// ResponseParaType reports the data type of para name in any response of
// command command of service serviceID.
func (p *Product) ResponseParaType(serviceID, command, name string) (t DataType, ok bool) {
	if c, ok := p.command(serviceID, command); ok {
		if para, ok := c.ResponsePara(name); ok {
			return para.DataType, true
		}
	}
	return TypeInvalid, false
}

func (p *Product) command(serviceID, name string) (*Command, bool) {
	if s, ok := p.Service(serviceID); ok {
		return s.Command(name)
	}
	return nil, false
}

// Property returns the property called name, or nil and false.
func (s *Service) Property(name string) (*Property, bool) {
	if s.index != nil {
		i, ok := s.index[name]
		if !ok {
			return nil, false
		}
		return &s.Properties[i], true
	}
	for i := range s.Properties {
		if s.Properties[i].Name == name {
			return &s.Properties[i], true
		}
	}
	return nil, false
}

// Command returns the command called name, or nil and false.
func (s *Service) Command(name string) (*Command, bool) {
	for i := range s.Commands {
		if s.Commands[i].Name == name {
			return &s.Commands[i], true
		}
	}
	return nil, false
}

// Para returns the command parameter called name, or nil and false.
func (c *Command) Para(name string) (*Para, bool) { return findPara(c.Paras, name) }

// ResponsePara returns the parameter called name of the first response
// that has one, or nil and false.
func (c *Command) ResponsePara(name string) (*Para, bool) {
	for i := range c.Responses {
		if p, ok := findPara(c.Responses[i].Paras, name); ok {
			return p, true
		}
	}
	return nil, false
}

func findPara(ps []Para, name string) (*Para, bool) {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i], true
		}
	}
	return nil, false
}

// buildIndex prepares the name index of every service. Called once before
// a product is shared.
func (p *Product) buildIndex() {
	for i := range p.Services {
		s := &p.Services[i]
		if s.index != nil {
			continue
		}
		m := make(map[string]int, len(s.Properties))
		for j := range s.Properties {
			if _, dup := m[s.Properties[j].Name]; !dup {
				m[s.Properties[j].Name] = j
			}
		}
		s.index = m
	}
}

// Bounds reports the range a number must fall in, reading Min and Max as
// PRF-4 says: a Max of 0 below Min means "no upper bound", and for strings
// and DateTime a 0/0 range means "unbounded".
func (p *Para) Bounds() (lo, hi float64, hasLo, hasHi bool) {
	if p.Min != nil {
		lo, hasLo = *p.Min, true
	}
	if p.Max != nil {
		hi, hasHi = *p.Max, true
	}
	if hasLo && hasHi && hi == 0 && hi < lo {
		hasHi = false
	}
	if hasLo && hasHi && lo == 0 && hi == 0 && !p.DataType.numeric() {
		hasLo, hasHi = false, false
	}
	return lo, hi, hasLo, hasHi
}

// DataType is the type of a property or para (PRF-4, PRF-10).
type DataType uint8

// The data types. The first five are those of Profile files; the rest come
// from the newer JSON model (PRF-10).
const (
	TypeInvalid    DataType = iota
	TypeInt                 // "int": integers; booleans as 0/1
	TypeDecimal             // "decimal" (also "double")
	TypeString              // "string": strings, enums (see EnumList), booleans as text
	TypeDateTime            // "DateTime": UTC, yyyyMMdd'T'HHmmss'Z'
	TypeJSONObject          // "jsonObject": a JSON object
	TypeLong                // "long": a 64-bit integer
	TypeEnum                // "enum": a string from EnumList
	TypeBoolean             // "boolean": true or false
	TypeStringList          // "string list": an array of strings
)

var typeNames = [...]string{
	TypeInvalid:    "invalid",
	TypeInt:        "int",
	TypeDecimal:    "decimal",
	TypeString:     "string",
	TypeDateTime:   "DateTime",
	TypeJSONObject: "jsonObject",
	TypeLong:       "long",
	TypeEnum:       "enum",
	TypeBoolean:    "boolean",
	TypeStringList: "string list",
}

// ParseDataType reads a data type name as Profile files and the newer JSON
// model spell them. Case does not matter; "double" is decimal and
// "stringlist"/"string_list" are string list.
func ParseDataType(s string) (DataType, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "int", "integer":
		return TypeInt, true
	case "decimal", "double", "float":
		return TypeDecimal, true
	case "string":
		return TypeString, true
	case "datetime":
		return TypeDateTime, true
	case "jsonobject":
		return TypeJSONObject, true
	case "long":
		return TypeLong, true
	case "enum":
		return TypeEnum, true
	case "boolean", "bool":
		return TypeBoolean, true
	case "string list", "stringlist", "string_list":
		return TypeStringList, true
	}
	return TypeInvalid, false
}

// String returns the name Profile files use for t.
func (t DataType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("DataType(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler.
func (t DataType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *DataType) UnmarshalText(b []byte) error {
	v, ok := ParseDataType(string(b))
	if !ok {
		return fmt.Errorf("profile: unknown data type %q (want one of %s)", b, allowedTypes)
	}
	*t = v
	return nil
}

const allowedTypes = "int, decimal, string, DateTime, jsonObject, long, enum, boolean, string list"

func (t DataType) numeric() bool { return t == TypeInt || t == TypeDecimal || t == TypeLong }

// Access is the method of a property: a set of R (readable), W (writable)
// and E (reports changes) (PRF-4).
type Access uint8

// The access letters.
const (
	AccessRead  Access = 1 << iota // R
	AccessWrite                    // W
	AccessEvent                    // E
)

// ParseAccess reads a method such as "RWE". Letters may come in any order,
// each at most once; an empty string or any other letter fails.
func ParseAccess(s string) (Access, error) {
	var a Access
	if s == "" {
		return 0, fmt.Errorf("profile: empty method (want a combination of R, W and E such as RE)")
	}
	for i := 0; i < len(s); i++ {
		var bit Access
		switch s[i] {
		case 'R', 'r':
			bit = AccessRead
		case 'W', 'w':
			bit = AccessWrite
		case 'E', 'e':
			bit = AccessEvent
		default:
			return 0, fmt.Errorf("profile: method %q has unknown letter %q (want a combination of R, W and E such as RE)", s, s[i])
		}
		if a&bit != 0 {
			return 0, fmt.Errorf("profile: method %q repeats letter %q", s, s[i])
		}
		a |= bit
	}
	return a, nil
}

// String returns the method letters in the order R, W, E.
func (a Access) String() string {
	var b [3]byte
	n := 0
	for _, x := range [...]struct {
		bit Access
		c   byte
	}{{AccessRead, 'R'}, {AccessWrite, 'W'}, {AccessEvent, 'E'}} {
		if a&x.bit != 0 {
			b[n] = x.c
			n++
		}
	}
	return string(b[:n])
}

// MarshalText implements encoding.TextMarshaler.
func (a Access) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Access) UnmarshalText(b []byte) error {
	v, err := ParseAccess(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
