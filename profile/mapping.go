package profile

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// mappingFile is the name problems of LoadMapping carry.
const mappingFile = "mapping.json"

// A Mapping ties a product's services to the resources of standard LwM2M
// objects (LWM-12): which resource holds each property, and which write or
// execute each command becomes. It is uploaded with the product like a
// codec; see the package documentation for the file. A loaded Mapping is
// read-only and safe to share.
type Mapping struct {
	Properties []PropertyMap `json:"properties"`
	Commands   []CommandMap  `json:"commands,omitempty"`

	byPath map[string]int    // resource path → index in Properties
	byCmd  map[[2]string]int // serviceId, command → index in Commands
}

// PropertyMap maps one property to one resource ("/3303/0/5700") or
// resource instance ("/3/0/7/1").
type PropertyMap struct {
	ServiceID string `json:"serviceId"`
	Property  string `json:"property"`
	Resource  string `json:"resource"`
	// Type is the resource's LwM2M data type as OMA object definitions
	// spell it ("Float", "Unsigned Integer"): the object model's, or the
	// file's "type" for a resource the model does not know.
	Type string `json:"type"`
	// DataType is the property's dataType in the product.
	DataType DataType `json:"dataType"`
	// Observe says whether the platform observes the resource when the
	// device registers; the file's "observe" (default true).
	Observe bool `json:"observe"`
}

// CommandMap maps one command to an Execute of a resource or to a Write of
// one resource per para, all in one object instance.
type CommandMap struct {
	ServiceID string `json:"serviceId"`
	Command   string `json:"command"`
	// Execute is the executed resource; empty for a write.
	Execute string `json:"execute,omitempty"`
	// Args names the string para whose value is the Execute's arguments;
	// empty for none.
	Args string `json:"args,omitempty"`
	// Write lists the written resources, ordered by resource path.
	Write []ParaMap `json:"write,omitempty"`
}

// ParaMap maps one command para to the resource its value is written to.
type ParaMap struct {
	Para     string   `json:"para"`
	Resource string   `json:"resource"`
	Type     string   `json:"type"` // LwM2M type, as in PropertyMap
	DataType DataType `json:"dataType"`
}

// ObjectModel tells LoadMapping the LwM2M object definitions it checks a
// mapping against. The platform adapts its object registry to it.
type ObjectModel interface {
	// LwM2MResource returns the data type ("Float", "String", …, "" for
	// an Execute resource) and the operations ("R", "RW", "E") of
	// resource res of object obj; ok is false when the model does not
	// know it.
	LwM2MResource(obj, res uint16) (typ, operations string, ok bool)
}

// lwm2mTypes are the LwM2M data types (LwM2M 1.1 Core Appendix C) with
// the property dataTypes each may fill. A narrowing (Float into int) or a
// guess (String into DateTime) is refused: the check would fail on data
// later, so it fails on the file now.
var lwm2mTypes = map[string][]DataType{
	"String":           {TypeString, TypeEnum},
	"Integer":          {TypeInt, TypeLong, TypeDecimal},
	"Unsigned Integer": {TypeInt, TypeLong, TypeDecimal},
	"Float":            {TypeDecimal},
	"Boolean":          {TypeBoolean, TypeInt},
	"Time":             {TypeDateTime, TypeLong, TypeInt},
	"Opaque":           {TypeString},
	"Objlnk":           {TypeString},
	"Corelnk":          {TypeString},
}

const lwm2mTypeList = "String, Integer, Unsigned Integer, Float, Boolean, Time, Opaque, Objlnk, Corelnk"

// canonicalType returns the OMA spelling of an LwM2M type name given in
// any case, with or without the space ("unsigned integer").
func canonicalType(s string) (string, bool) {
	k := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "")
	for t := range lwm2mTypes {
		if strings.ToLower(strings.ReplaceAll(t, " ", "")) == k {
			return t, true
		}
	}
	return "", false
}

// ParseResourcePath reads an LwM2M path of a resource ("/3303/0/5700") or
// of a resource instance ("/3/0/7/1"): 3 or 4 decimal ids of 0 to 65534,
// without leading zeros. It returns the ids and the path written
// canonically.
func ParseResourcePath(s string) (ids []uint16, canonical string, err error) {
	if !strings.HasPrefix(s, "/") {
		return nil, "", fmt.Errorf("profile: LwM2M path %q must start with /: /object/instance/resource, e.g. /3303/0/5700", s)
	}
	parts := strings.Split(s[1:], "/")
	if len(parts) < 3 || len(parts) > 4 {
		return nil, "", fmt.Errorf("profile: LwM2M path %q has %d ids; a resource path has 3 (/object/instance/resource) or 4 (…/resource instance)", s, len(parts))
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 65535 || (len(p) > 1 && p[0] == '0') {
			return nil, "", fmt.Errorf("profile: LwM2M path %q: id %d (%q) is not a decimal number 0..65534 without leading zeros", s, i+1, p)
		}
		ids = append(ids, uint16(n))
	}
	return ids, s, nil
}

// LoadMapping reads and checks a mapping file against product p and the
// LwM2M object model (LWM-12). It fails with a *ValidationError (file
// "mapping.json", with line and column) listing every problem: bad JSON,
// unknown services, properties, commands or paras, path syntax, a resource
// the object model does not know and no "type" for it, a resource type
// that cannot fill the property's dataType, a resource that cannot be
// read (for a property), written (for a para) or executed, a path mapped
// twice. objects may be nil: every resource then needs a "type". It is
// LoadMappingContext without a deadline.
func LoadMapping(data []byte, p *Product, objects ObjectModel) (*Mapping, []Problem, error) {
	return LoadMappingContext(context.Background(), data, p, objects)
}

// LoadMappingContext is LoadMapping that stops when ctx is done, returning
// an error that wraps ctx.Err().
func LoadMappingContext(ctx context.Context, data []byte, p *Product, objects ObjectModel) (*Mapping, []Problem, error) {
	o := (*Options)(nil).withDefaults()
	if int64(len(data)) > o.MaxEntrySize {
		return nil, nil, &LimitError{File: mappingFile, Limit: "MaxEntrySize", Size: int64(len(data)), Max: o.MaxEntrySize}
	}
	if p == nil {
		return nil, nil, fmt.Errorf("%w: a mapping is checked against its product, and none was given", ErrInvalid)
	}
	c := newCollector(ctx)
	ml := &mappingLoader{src: src{file: mappingFile, data: data, c: c}, p: p, objects: objects}
	m := ml.load()
	if c.err != nil {
		return nil, nil, c.stopped()
	}
	if len(c.problems) > 0 {
		return nil, c.warningList(), c.invalid(mappingFile)
	}
	m.index()
	return m, c.warningList(), nil
}

type mappingLoader struct {
	src
	p       *Product
	objects ObjectModel
	paths   map[string]bool // resource paths of properties mapped so far
}

func (l *mappingLoader) load() *Mapping {
	root := l.parse()
	if root == nil || !l.object(root, "the mapping") {
		return nil
	}
	l.knownKeys(root, "the mapping", []string{"properties", "commands"})
	m := &Mapping{}
	l.paths = map[string]bool{}
	props, _ := l.array(root, "properties", true, false)
	cmds, _ := l.array(root, "commands", true, false)
	if len(props) == 0 && len(cmds) == 0 {
		l.problem(CodeMissingField, root.off, `the mapping maps nothing; give "properties": [{"serviceId", "property", "resource"}, …] and/or "commands": [{"serviceId", "command", "write" or "execute"}, …]`)
	}
	seenProp := map[[2]string]bool{}
	for _, n := range props {
		if pm, ok := l.property(n); ok {
			k := [2]string{pm.ServiceID, pm.Property}
			if seenProp[k] {
				l.problem(CodeDuplicate, n.off, "property %s of service %s is mapped twice; map it to one resource", pm.Property, pm.ServiceID)
				continue
			}
			seenProp[k] = true
			m.Properties = append(m.Properties, pm)
		}
	}
	seenCmd := map[[2]string]bool{}
	for _, n := range cmds {
		if cm, ok := l.command(n); ok {
			k := [2]string{cm.ServiceID, cm.Command}
			if seenCmd[k] {
				l.problem(CodeDuplicate, n.off, "command %s of service %s is mapped twice", cm.Command, cm.ServiceID)
				continue
			}
			seenCmd[k] = true
			m.Commands = append(m.Commands, cm)
		}
	}
	return m
}

// need is what a mapped resource must allow.
type need struct {
	op   byte   // 'R', 'W' or 'E'
	verb string // "read", "written", "executed"
}

var (
	needRead    = need{'R', "read"}
	needWrite   = need{'W', "written"}
	needExecute = need{'E', "executed"}
)

// resource checks a path and its type against the object model: it
// returns the canonical path and the LwM2M type ("" for an Execute).
func (l *mappingLoader) resource(obj *node, key string, n need, declared string, declOff int, seen map[string]bool) (path, typ string, ok bool) {
	raw, off := l.str(obj, key, true)
	if raw == "" {
		return "", "", false
	}
	ids, path, err := ParseResourcePath(raw)
	if err != nil {
		l.problem(CodeFieldType, off, "%s", strings.TrimPrefix(err.Error(), "profile: "))
		return "", "", false
	}
	if seen[path] {
		l.problem(CodeDuplicate, off, "resource %s is mapped twice; a resource holds one property, and takes one para of a command", path)
		return "", "", false
	}
	seen[path] = true
	var known bool
	var ops string
	if l.objects != nil {
		typ, ops, known = l.objects.LwM2MResource(ids[0], ids[2])
	}
	if declared != "" {
		t, okT := canonicalType(declared)
		if !okT {
			l.problem(CodeDataType, declOff, "type %q is not an LwM2M data type; use one of %s", declared, lwm2mTypeList)
			return "", "", false
		}
		if known && typ != "" && typ != t {
			l.problem(CodeDataType, declOff, "type %q contradicts the object model, where %s is %s; leave \"type\" out or correct it", declared, path, typ)
			return "", "", false
		}
		typ = t
	}
	switch {
	case known && !strings.ContainsRune(ops, rune(n.op)):
		l.problem(CodeMethod, off, "resource %s cannot be %s: its operations are %q in the object model", path, n.verb, ops)
		return "", "", false
	case n.op == 'E':
		return path, "", true
	case typ == "" && !known:
		l.problem(CodeDataType, off, "resource %s is not in the object model the platform knows; add \"type\": one of %s", path, lwm2mTypeList)
		return "", "", false
	}
	return path, typ, true
}

// fits checks that LwM2M type typ can hold values of dataType dt.
func (l *mappingLoader) fits(typ string, dt DataType, off int, path, what string) bool {
	for _, d := range lwm2mTypes[typ] {
		if d == dt {
			return true
		}
	}
	var ok []string
	for t, ds := range lwm2mTypes {
		for _, d := range ds {
			if d == dt {
				ok = append(ok, t)
			}
		}
	}
	sort.Strings(ok)
	allowed := "no LwM2M type"
	if len(ok) > 0 {
		allowed = strings.Join(ok, ", ")
	}
	l.problem(CodeDataType, off, "%s has dataType %s, which an LwM2M %s resource (%s) cannot hold; a %s is held by: %s",
		what, dt, typ, path, dt, allowed)
	return false
}

func (l *mappingLoader) service(n *node) (*Service, string, bool) {
	id, off := l.str(n, "serviceId", true)
	if id == "" {
		return nil, "", false
	}
	s, ok := l.p.Service(id)
	if !ok {
		l.problem(CodeMissingField, off, "product %s/%s has no service %q", l.p.ManufacturerID, l.p.Model, id)
	}
	return s, id, ok
}

func (l *mappingLoader) property(n *node) (PropertyMap, bool) {
	if !l.object(n, "a properties entry") {
		return PropertyMap{}, false
	}
	l.knownKeys(n, "a properties entry", []string{"serviceId", "property", "resource", "type", "observe"})
	svc, id, ok := l.service(n)
	name, nameOff := l.str(n, "property", true)
	declared, declOff := l.str(n, "type", false)
	pm := PropertyMap{ServiceID: id, Property: name, Observe: true}
	if v, _, has := n.get("observe"); has && v.kind != 'z' {
		pm.Observe = l.boolean(n, "observe")
	}
	var prop *Property
	if ok && name != "" {
		if prop, ok = svc.Property(name); !ok {
			l.problem(CodeMissingField, nameOff, "service %s has no property %q", id, name)
		}
	}
	path, typ, okR := l.resource(n, "resource", needRead, declared, declOff, l.paths)
	if !ok || !okR || prop == nil {
		return pm, false
	}
	pm.Resource, pm.Type, pm.DataType = path, typ, prop.DataType
	if !l.fits(typ, prop.DataType, nameOff, path, fmt.Sprintf("property %s of service %s", name, id)) {
		return pm, false
	}
	return pm, true
}

func (l *mappingLoader) command(n *node) (CommandMap, bool) {
	if !l.object(n, "a commands entry") {
		return CommandMap{}, false
	}
	l.knownKeys(n, "a commands entry", []string{"serviceId", "command", "execute", "args", "write"})
	svc, id, ok := l.service(n)
	name, nameOff := l.str(n, "command", true)
	cm := CommandMap{ServiceID: id, Command: name}
	var cmd *Command
	if ok && name != "" {
		if cmd, ok = svc.Command(name); !ok {
			l.problem(CodeMissingField, nameOff, "service %s has no command %q", id, name)
		}
	}
	_, _, hasExec := n.get("execute")
	wv, wOff, hasWrite := n.get("write")
	switch {
	case hasExec == hasWrite:
		l.problem(CodeMissingField, n.off, `command %s needs exactly one of "execute": "/o/i/r" and "write": {"para": "/o/i/r", …}`, name)
		return cm, false
	case hasExec:
		return l.execute(n, cm, cmd)
	}
	if wv.kind != 'o' || len(wv.keys) == 0 {
		l.problem(CodeFieldType, wOff, `"write" must be an object naming at least one para and the resource it is written to: {"para": "/o/i/r"}`)
		return cm, false
	}
	good := ok
	var inst string
	written := map[string]bool{}
	for i, para := range wv.keys {
		if slices.Contains(wv.keys[:i], para) {
			l.problem(CodeDuplicate, wv.keyOffs[i], "para %s is given twice in \"write\"; write it to one resource", para)
			good = false
			continue
		}
		var p *Para
		if cmd != nil {
			var found bool
			if p, found = cmd.Para(para); !found {
				l.problem(CodeMissingField, wv.keyOffs[i], "command %s has no para %q", name, para)
				good = false
			}
		}
		target, key := wv, para
		declared, declOff := "", -1
		if v := wv.vals[i]; v.kind == 'o' {
			// {"resource": "/o/i/r", "type": "Float"} for a resource the
			// object model does not know.
			l.knownKeys(v, "a write entry", []string{"resource", "type"})
			target, key = v, "resource"
			declared, declOff = l.str(v, "type", false)
		}
		path, typ, okR := l.resource(target, key, needWrite, declared, declOff, written)
		if !okR {
			good = false
			continue
		}
		if strings.Count(path, "/") != 3 {
			l.problem(CodeFieldType, wv.keyOffs[i], "para %s goes to resource instance %s; a command writes resources (/o/i/r)", para, path)
			good = false
		} else if in := path[:strings.LastIndexByte(path, '/')]; inst == "" {
			inst = in
		} else if in != inst {
			l.problem(CodeFieldType, wv.keyOffs[i], "para %s goes to %s, outside %s: the paras of one command are written to one object instance in one request", para, path, inst)
			good = false
		}
		if p == nil {
			continue
		}
		if !l.fits(typ, p.DataType, wv.keyOffs[i], path, fmt.Sprintf("para %s of command %s", para, name)) {
			good = false
		}
		cm.Write = append(cm.Write, ParaMap{Para: para, Resource: path, Type: typ, DataType: p.DataType})
	}
	if cmd != nil {
		for _, p := range cmd.Paras {
			if _, _, mapped := wv.get(p.Name); !mapped {
				l.problem(CodeMissingField, wOff, "para %s of command %s is written nowhere; map it to a resource so that no value is lost", p.Name, name)
				good = false
			}
		}
	}
	sort.Slice(cm.Write, func(i, j int) bool { return cm.Write[i].Resource < cm.Write[j].Resource })
	return cm, good
}

func (l *mappingLoader) execute(n *node, cm CommandMap, cmd *Command) (CommandMap, bool) {
	path, _, ok := l.resource(n, "execute", needExecute, "", -1, map[string]bool{})
	if ok && strings.Count(path, "/") != 3 {
		l.problem(CodeFieldType, n.off, "execute %s: only a resource (/o/i/r) is executed", path)
		ok = false
	}
	cm.Execute = path
	args, argsOff := l.str(n, "args", false)
	if cmd == nil {
		return cm, false
	}
	if args != "" {
		p, found := cmd.Para(args)
		switch {
		case !found:
			l.problem(CodeMissingField, argsOff, "command %s has no para %q to take the execute arguments from", cm.Command, args)
			ok = false
		case p.DataType != TypeString:
			l.problem(CodeDataType, argsOff, "para %s carries the execute arguments, which are text; its dataType is %s, not string", args, p.DataType)
			ok = false
		}
		cm.Args = args
	}
	for _, p := range cmd.Paras {
		if p.Name != args {
			l.problem(CodeMissingField, n.off, "para %s of command %s goes nowhere: an execute carries only its arguments; name the para in \"args\" or map the command to a write", p.Name, cm.Command)
			ok = false
		}
	}
	return cm, ok
}

func (m *Mapping) index() {
	m.byPath = make(map[string]int, len(m.Properties))
	for i, pm := range m.Properties {
		m.byPath[pm.Resource] = i
	}
	m.byCmd = make(map[[2]string]int, len(m.Commands))
	for i, cm := range m.Commands {
		m.byCmd[[2]string{cm.ServiceID, cm.Command}] = i
	}
}

// Property returns the property mapped to the resource (or resource
// instance) at path, written canonically ("/3303/0/5700").
func (m *Mapping) Property(path string) (PropertyMap, bool) {
	if m == nil {
		return PropertyMap{}, false
	}
	if m.byPath == nil { // built by hand, not loaded
		for _, pm := range m.Properties {
			if pm.Resource == path {
				return pm, true
			}
		}
		return PropertyMap{}, false
	}
	i, ok := m.byPath[path]
	if !ok {
		return PropertyMap{}, false
	}
	return m.Properties[i], true
}

// Command returns the mapping of command name of service serviceID.
func (m *Mapping) Command(serviceID, name string) (CommandMap, bool) {
	if m == nil {
		return CommandMap{}, false
	}
	if m.byCmd == nil { // built by hand, not loaded
		for _, cm := range m.Commands {
			if cm.ServiceID == serviceID && cm.Command == name {
				return cm, true
			}
		}
		return CommandMap{}, false
	}
	i, ok := m.byCmd[[2]string{serviceID, name}]
	if !ok {
		return CommandMap{}, false
	}
	return m.Commands[i], true
}

// Observed returns the resources the platform observes when a device of
// the product registers, in file order.
func (m *Mapping) Observed() []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, pm := range m.Properties {
		if pm.Observe {
			out = append(out, pm.Resource)
		}
	}
	return out
}
