package lwm2m

import (
	"slices"
	"strings"
)

// Operations is the set of operations a resource allows: read, write,
// execute.
type Operations uint8

// The operations of a resource.
const (
	OpRead Operations = 1 << iota
	OpWrite
	OpExecute
)

// String returns the operations as an OMA object definition spells them:
// "R", "W", "RW", "E", or "" for none.
func (o Operations) String() string {
	var b strings.Builder
	if o&OpRead != 0 {
		b.WriteByte('R')
	}
	if o&OpWrite != 0 {
		b.WriteByte('W')
	}
	if o&OpExecute != 0 {
		b.WriteByte('E')
	}
	return b.String()
}

// ResourceDef describes one resource of an object.
type ResourceDef struct {
	ID          uint16
	Name        string
	Operations  Operations
	Multiple    bool   // the resource has instances (/o/i/r/ri)
	Mandatory   bool   // a client must implement it
	Type        Type   // TypeNone for Execute resources
	Range       string // the RangeEnumeration text, e.g. "0..9", "" when none
	Units       string // e.g. "mV", "" when none
	Description string
}

// ObjectDef describes an LwM2M object: its id, version, whether it has
// several instances, and its resources.
type ObjectDef struct {
	ID           uint16
	Name         string
	URN          string // e.g. "urn:oma:lwm2m:oma:3"
	Version      string // ObjectVersion, "1.0" when the definition gives none
	LwM2MVersion string // LwM2M version the definition is written for, "1.0" when none
	Multiple     bool   // the object may have several instances
	Mandatory    bool
	Description  string
	Resources    []ResourceDef // ordered by ID
}

// Resource returns the definition of resource id and whether o has one.
func (o *ObjectDef) Resource(id uint16) (*ResourceDef, bool) {
	i, ok := slices.BinarySearchFunc(o.Resources, id, func(r ResourceDef, id uint16) int { return int(r.ID) - int(id) })
	if !ok {
		return nil, false
	}
	return &o.Resources[i], true
}

// validate checks o as Objects.Add does and sorts its resources.
func (o *ObjectDef) validate(source string) error {
	fail := func(reason string) error {
		return &DefinitionError{Source: source, Object: int(o.ID), Reason: reason}
	}
	if o.ID > MaxID {
		return fail("object id 65535 is reserved; ids are 0–65534")
	}
	slices.SortStableFunc(o.Resources, func(a, b ResourceDef) int { return int(a.ID) - int(b.ID) })
	for i, r := range o.Resources {
		if r.ID > MaxID {
			return fail("resource id 65535 is reserved; ids are 0–65534")
		}
		if i > 0 && o.Resources[i-1].ID == r.ID {
			return fail("resource " + itoa(int(r.ID)) + " is defined twice")
		}
		if r.Type > TypeCorelnk {
			return fail("resource " + itoa(int(r.ID)) + " has type " + r.Type.String() + "; want an LwM2M data type")
		}
		if r.Operations&OpExecute != 0 && r.Operations&(OpRead|OpWrite) != 0 {
			return fail("resource " + itoa(int(r.ID)) + " is both executable and readable or writable")
		}
	}
	if o.Version == "" {
		o.Version = "1.0"
	}
	if o.LwM2MVersion == "" {
		o.LwM2MVersion = "1.0"
	}
	return nil
}
