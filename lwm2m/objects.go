package lwm2m

import (
	"io/fs"
	"path"
	"slices"
	"strconv"
	"sync"
)

// Objects is a table of object definitions by object id (the LwM2M object
// model, not a registry of devices). Decoders use it to learn the type of
// each resource; a nil *Objects knows no object.
//
// Objects is safe for concurrent use; definitions added later replace
// earlier ones with the same object id.
type Objects struct {
	mu   sync.RWMutex
	objs map[uint16]*ObjectDef
}

// NewObjects returns an empty table.
func NewObjects() *Objects { return &Objects{objs: map[uint16]*ObjectDef{}} }

// NewBuiltinObjects returns a table holding the objects built into the
// package: 0 Security, 1 Server, 3 Device, 4 Connectivity Monitoring,
// 5 Firmware Update and 19 BinaryAppDataContainer (see BuiltinObjects).
func NewBuiltinObjects() *Objects {
	r := NewObjects()
	for _, o := range BuiltinObjects() {
		if err := r.Add(o); err != nil {
			panic(err) // the built-in table is tested
		}
	}
	return r
}

// Add validates defs and adds them, replacing definitions with the same
// object ids. It adds nothing when one of them is invalid. Each ObjectDef
// is copied; its Resources are sorted by id.
func (r *Objects) Add(defs ...ObjectDef) error {
	cp := make([]*ObjectDef, len(defs))
	for i, d := range defs {
		d.Resources = slices.Clone(d.Resources)
		if err := d.validate(""); err != nil {
			return err
		}
		cp[i] = &d
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range cp {
		r.objs[d.ID] = d
	}
	return nil
}

// LoadDDF parses one OMA DDF XML document (see ParseDDF) and adds its
// objects. source names the document in errors.
func (r *Objects) LoadDDF(data []byte, source string) error {
	defs, err := ParseDDF(data, source)
	if err != nil {
		return err
	}
	return r.Add(defs...)
}

// LoadFS loads every file matching pattern (path.Match syntax, e.g.
// "*.xml") in the root of fsys as an OMA DDF XML document. It adds nothing
// when one of them is invalid.
func (r *Objects) LoadFS(fsys fs.FS, pattern string) error {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return &DefinitionError{Source: pattern, Object: -1, Reason: "bad pattern", Err: err}
	}
	var all []ObjectDef
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return &DefinitionError{Source: name, Object: -1, Reason: "cannot read", Err: err}
		}
		defs, err := ParseDDF(data, path.Base(name))
		if err != nil {
			return err
		}
		all = append(all, defs...)
	}
	return r.Add(all...)
}

// Object returns the definition of object id and whether there is one. The
// definition must not be modified.
func (r *Objects) Object(id uint16) (*ObjectDef, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.RLock()
	o, ok := r.objs[id]
	r.mu.RUnlock()
	return o, ok
}

// Resource returns the definition of resource res of object obj and
// whether there is one. The definition must not be modified.
func (r *Objects) Resource(obj, res uint16) (*ResourceDef, bool) {
	o, ok := r.Object(obj)
	if !ok {
		return nil, false
	}
	return o.Resource(res)
}

// IDs returns the ids of the defined objects in ascending order.
func (r *Objects) IDs() []uint16 {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	ids := make([]uint16, 0, len(r.objs))
	for id := range r.objs {
		ids = append(ids, id)
	}
	r.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// typeAt returns the type of the resource at p (a resource or resource
// instance path) and whether it is known. Execute resources (TypeNone)
// count as unknown, so that a value sent for one stays raw.
func (r *Objects) typeAt(p Path) (Type, bool) {
	if r == nil || p.n < 3 {
		return 0, false
	}
	d, ok := r.Resource(p.ids[0], p.ids[2])
	if !ok || d.Type == TypeNone {
		return 0, false
	}
	return d.Type, true
}

func itoa(i int) string { return strconv.Itoa(i) }

// typeCache looks up resource types like Objects.typeAt, remembering the
// last object so that a payload of one object instance takes the
// table's lock once per object rather than once per value.
type typeCache struct {
	reg   *Objects
	obj   *ObjectDef
	objID uint16
	known bool // obj and objID hold a finished lookup
}

func (c *typeCache) typeAt(p Path) (Type, bool) {
	if c.reg == nil || p.n < 3 {
		return 0, false
	}
	if !c.known || c.objID != p.ids[0] {
		c.obj, _ = c.reg.Object(p.ids[0])
		c.objID, c.known = p.ids[0], true
	}
	if c.obj == nil {
		return 0, false
	}
	d, ok := c.obj.Resource(p.ids[2])
	if !ok || d.Type == TypeNone {
		return 0, false
	}
	return d.Type, true
}
