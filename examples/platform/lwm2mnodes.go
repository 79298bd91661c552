package main

// LwM2M values as the API shows them: Leshan's JSON nodes (LWM-11).
//
//	resource           {"kind":"singleResource","id":9,"type":"INTEGER","value":87}
//	multiple resource  {"kind":"multiResource","id":6,"type":"INTEGER","values":{"0":1,"1":5}}
//	resource instance  {"kind":"resourceInstance","id":0,"type":"INTEGER","value":1}
//	object instance    {"kind":"instance","id":0,"resources":[…]}
//	object             {"kind":"obj","id":3,"instances":[…]}
//
// A write takes the same shapes; "kind" may be left out, and so may
// "type" when the object model (the built-in objects and 3303) or the JSON
// value itself says it.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
)

// objectModel is the object model the API reads and writes with: the
// lwm2m package's built-in objects and the standard objects of the demo
// products (3303 Temperature).
var objectModel = func() *lwm2m.Objects {
	r := lwm2m.NewBuiltinObjects()
	rw, ro := lwm2m.OpRead|lwm2m.OpWrite, lwm2m.OpRead
	if err := r.Add(lwm2m.ObjectDef{ID: 3303, Name: "Temperature", URN: "urn:oma:lwm2m:ext:3303", Version: "1.1",
		LwM2MVersion: "1.0", Multiple: true, Description: "IPSO temperature sensor",
		Resources: []lwm2m.ResourceDef{
			{ID: 5601, Name: "Min Measured Value", Operations: ro, Type: lwm2m.TypeFloat},
			{ID: 5602, Name: "Max Measured Value", Operations: ro, Type: lwm2m.TypeFloat},
			{ID: 5603, Name: "Min Range Value", Operations: ro, Type: lwm2m.TypeFloat},
			{ID: 5604, Name: "Max Range Value", Operations: ro, Type: lwm2m.TypeFloat},
			{ID: 5605, Name: "Reset Min and Max Measured Values", Operations: lwm2m.OpExecute},
			{ID: 5700, Name: "Sensor Value", Operations: ro, Mandatory: true, Type: lwm2m.TypeFloat},
			{ID: 5701, Name: "Sensor Units", Operations: ro, Type: lwm2m.TypeString},
			{ID: 5750, Name: "Application Type", Operations: rw, Type: lwm2m.TypeString},
		}}); err != nil {
		panic(err)
	}
	return r
}()

// typeNames are Leshan's names of the LwM2M data types.
var typeNames = map[lwm2m.Type]string{
	lwm2m.TypeString: "STRING", lwm2m.TypeInteger: "INTEGER", lwm2m.TypeUnsigned: "UNSIGNED_INTEGER",
	lwm2m.TypeFloat: "FLOAT", lwm2m.TypeBoolean: "BOOLEAN", lwm2m.TypeOpaque: "OPAQUE",
	lwm2m.TypeTime: "TIME", lwm2m.TypeObjlnk: "OBJLNK", lwm2m.TypeCorelnk: "CORELINK",
}

// typeName returns Leshan's name of t; an undecoded value is OPAQUE.
func typeName(t lwm2m.Type) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "OPAQUE"
}

// node is one LwM2M node in Leshan's JSON.
type node struct {
	Kind      string                 `json:"kind"`
	ID        uint16                 `json:"id"`
	Type      string                 `json:"type,omitempty"`
	Value     *lwm2m.Value           `json:"value,omitempty"`
	Values    map[string]lwm2m.Value `json:"values,omitempty"`
	Resources []node                 `json:"resources,omitempty"`
	Instances []node                 `json:"instances,omitempty"`
}

func resourceNode(rv lwm2m.ResourceValue) node {
	id, _ := rv.Path.Resource()
	if !rv.Multiple {
		v := rv.Value
		return node{Kind: "singleResource", ID: id, Type: typeName(v.Type()), Value: &v}
	}
	n := node{Kind: "multiResource", ID: id, Values: map[string]lwm2m.Value{}}
	for _, in := range rv.Instances {
		n.Values[strconv.Itoa(int(in.ID))] = in.Value
		n.Type = typeName(in.Value.Type())
	}
	return n
}

// toNode turns the records of a read (or observe) of base into the node
// of base's level.
func toNode(base lwm2m.Path, recs []lwm2m.Record) (node, error) {
	if base.Len() == 4 {
		for _, r := range recs {
			if r.Path == base {
				id, _ := base.ResourceInstance()
				v := r.Value
				return node{Kind: "resourceInstance", ID: id, Type: typeName(v.Type()), Value: &v}, nil
			}
		}
		return node{}, fmt.Errorf("the answer holds no value for %s", base)
	}
	res, err := lwm2m.GroupResources(recs)
	if err != nil {
		return node{}, err
	}
	switch base.Len() {
	case 3:
		for _, rv := range res {
			if rv.Path == base {
				return resourceNode(rv), nil
			}
		}
		return node{}, fmt.Errorf("the answer holds no value for %s", base)
	case 2:
		id, _ := base.Instance()
		n := node{Kind: "instance", ID: id, Resources: []node{}}
		for _, rv := range res {
			if rv.Path.Parent() == base {
				n.Resources = append(n.Resources, resourceNode(rv))
			}
		}
		return n, nil
	case 1:
		id, _ := base.Object()
		n := node{Kind: "obj", ID: id, Instances: []node{}}
		for _, rv := range res {
			inst, _ := rv.Path.Instance()
			if k := len(n.Instances); k == 0 || n.Instances[k-1].ID != inst {
				n.Instances = append(n.Instances, node{Kind: "instance", ID: inst})
			}
			last := &n.Instances[len(n.Instances)-1]
			last.Resources = append(last.Resources, resourceNode(rv))
		}
		return n, nil
	}
	return node{}, fmt.Errorf("the API reads objects, instances and resources, not %q", base)
}

// nodeIn is a node as a write or create sends it.
type nodeIn struct {
	Kind      string                     `json:"kind"`
	ID        *uint16                    `json:"id"`
	Type      string                     `json:"type"`
	Value     json.RawMessage            `json:"value"`
	Values    map[string]json.RawMessage `json:"values"`
	Resources []nodeIn                   `json:"resources"`
}

// fromNode turns a written node into records for base: a value for a
// resource or resource instance, the instances of a multiple resource, or
// the resources of an object instance. create means base is an object and
// the node the new instance (its "id" is required).
func fromNode(base lwm2m.Path, body []byte, create bool) ([]lwm2m.Record, error) {
	var in nodeIn
	trimmed := strings.TrimSpace(string(body))
	if !strings.HasPrefix(trimmed, "{") {
		// A bare JSON value is the value of a resource.
		in.Value = json.RawMessage(trimmed)
	} else if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("the body is not an LwM2M node (Leshan's JSON: {\"id\":…,\"value\":…} or {\"id\":…,\"resources\":[…]}): %v", err)
	}
	switch {
	case create:
		if in.ID == nil {
			return nil, fmt.Errorf("a create on %s needs the new instance's \"id\" (0..65534) and its \"resources\"", base)
		}
		p, err := base.Child(*in.ID)
		if err != nil {
			return nil, err
		}
		return instanceRecords(p, in.Resources)
	case base.Len() == 2:
		return instanceRecords(base, in.Resources)
	case base.Len() >= 3:
		return resourceRecords(base, in)
	}
	return nil, fmt.Errorf("a write goes to an object instance, a resource or a resource instance, not %s", base)
}

func instanceRecords(inst lwm2m.Path, resources []nodeIn) ([]lwm2m.Record, error) {
	if len(resources) == 0 {
		return nil, fmt.Errorf("writing %s needs \"resources\": [{\"id\":…,\"value\":…}, …], at least one", inst)
	}
	var out []lwm2m.Record
	for i, r := range resources {
		if r.ID == nil {
			return nil, fmt.Errorf("resources[%d] has no \"id\"", i)
		}
		p, err := inst.Child(*r.ID)
		if err != nil {
			return nil, err
		}
		recs, err := resourceRecords(p, r)
		if err != nil {
			return nil, fmt.Errorf("resources[%d]: %w", i, err)
		}
		out = append(out, recs...)
	}
	return out, nil
}

func resourceRecords(p lwm2m.Path, in nodeIn) ([]lwm2m.Record, error) {
	t, err := valueType(p, in.Type)
	if err != nil {
		return nil, err
	}
	if in.Values != nil && p.Len() == 3 {
		keys := make([]string, 0, len(in.Values))
		for k := range in.Values {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var out []lwm2m.Record
		for _, k := range keys {
			id, err := strconv.ParseUint(k, 10, 16)
			if err != nil || id == 65535 {
				return nil, fmt.Errorf("%s: instance id %q is not a number 0..65534", p, k)
			}
			q, _ := p.Child(uint16(id))
			v, err := jsonValue(q, in.Values[k], t)
			if err != nil {
				return nil, err
			}
			out = append(out, lwm2m.Record{Path: q, Value: v})
		}
		return out, nil
	}
	if len(in.Value) == 0 {
		return nil, fmt.Errorf("%s: no \"value\" (or \"values\" for a multiple resource)", p)
	}
	v, err := jsonValue(p, in.Value, t)
	if err != nil {
		return nil, err
	}
	return []lwm2m.Record{{Path: p, Value: v}}, nil
}

// valueType returns the type named (Leshan's names, any case), else the
// object model's, else TypeNone (taken from the JSON value).
func valueType(p lwm2m.Path, named string) (lwm2m.Type, error) {
	if named != "" {
		for t, n := range typeNames {
			if strings.EqualFold(n, named) || strings.EqualFold(t.String(), named) {
				return t, nil
			}
		}
		return 0, fmt.Errorf("%s: type %q is none of STRING, INTEGER, UNSIGNED_INTEGER, FLOAT, BOOLEAN, OPAQUE, TIME, OBJLNK, CORELINK", p, named)
	}
	o, _ := p.Object()
	r, _ := p.Resource()
	if def, ok := objectModel.Resource(o, r); ok && def.Type != lwm2m.TypeNone {
		return def.Type, nil
	}
	return lwm2m.TypeNone, nil
}

// jsonValue reads a JSON value as an LwM2M value of type t; TypeNone
// takes the JSON's own type (string, integer or float number, boolean).
func jsonValue(p lwm2m.Path, raw json.RawMessage, t lwm2m.Type) (lwm2m.Value, error) {
	var x any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&x); err != nil {
		return lwm2m.Value{}, fmt.Errorf("%s: value %s is not JSON: %v", p, raw, err)
	}
	bad := func(want string) (lwm2m.Value, error) {
		return lwm2m.Value{}, fmt.Errorf("%s: value %s is not %s", p, raw, want)
	}
	if t == lwm2m.TypeNone {
		switch x := x.(type) {
		case string:
			t = lwm2m.TypeString
		case bool:
			t = lwm2m.TypeBoolean
		case json.Number:
			t = lwm2m.TypeFloat
			if _, err := x.Int64(); err == nil {
				t = lwm2m.TypeInteger
			}
		default:
			return bad("a string, number or boolean")
		}
	}
	s, isStr := x.(string)
	num, isNum := x.(json.Number)
	switch t {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		if !isStr {
			return bad("a JSON string")
		}
		if t == lwm2m.TypeCorelnk {
			return lwm2m.CorelnkValue(s), nil
		}
		return lwm2m.StringValue(s), nil
	case lwm2m.TypeInteger:
		if n, err := num.Int64(); isNum && err == nil {
			return lwm2m.IntValue(n), nil
		}
		return bad("an integer (-2^63..2^63-1)")
	case lwm2m.TypeUnsigned:
		if n, err := strconv.ParseUint(string(num), 10, 64); isNum && err == nil {
			return lwm2m.UintValue(n), nil
		}
		return bad("an unsigned integer (0..2^64-1)")
	case lwm2m.TypeFloat:
		if f, err := num.Float64(); isNum && err == nil && !math.IsInf(f, 0) {
			return lwm2m.FloatValue(f), nil
		}
		return bad("a finite number")
	case lwm2m.TypeBoolean:
		if b, ok := x.(bool); ok {
			return lwm2m.BoolValue(b), nil
		}
		return bad("true or false")
	case lwm2m.TypeTime:
		if n, err := num.Int64(); isNum && err == nil {
			return lwm2m.TimeValue(time.Unix(n, 0)), nil
		}
		if tm, err := time.Parse(time.RFC3339, s); isStr && err == nil {
			return lwm2m.TimeValue(tm), nil
		}
		return bad("a time (Unix seconds or RFC 3339)")
	case lwm2m.TypeOpaque:
		if b, err := base64.StdEncoding.DecodeString(s); isStr && err == nil {
			return lwm2m.OpaqueValue(b), nil
		}
		return bad("base64 (an Opaque value)")
	case lwm2m.TypeObjlnk:
		o, i, ok := strings.Cut(s, ":")
		on, err1 := strconv.ParseUint(o, 10, 16)
		in, err2 := strconv.ParseUint(i, 10, 16)
		if isStr && ok && err1 == nil && err2 == nil {
			return lwm2m.ObjlnkValue(uint16(on), uint16(in)), nil
		}
		return bad(`an object link "object:instance"`)
	}
	return bad("of a type the API writes")
}
