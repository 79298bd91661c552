package lwm2m

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// ParseDDF parses an OMA DDF XML document, the format of the OMA LwM2M
// object registry (an <LWM2M> root holding one or more <Object
// ObjectType="MODefinition"> elements), and returns its object
// definitions. source names the document in errors, which are
// *DefinitionError with the line of the problem.
//
// Field values are read as the registry writes them: Operations R, W, RW,
// E or empty; MultipleInstances Single or Multiple; Mandatory Mandatory or
// Optional; Type String, Integer, Unsigned Integer, Float, Boolean, Opaque,
// Time, Objlnk, Corelnk or empty (Execute resources). Case and surrounding
// spaces do not matter. Unknown elements are ignored.
func ParseDDF(data []byte, source string) ([]ObjectDef, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var defs []ObjectDef
	sawRoot := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, ddfError(d, source, -1, "not well-formed XML", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "LWM2M":
			sawRoot = true
		case "Object":
			o, err := parseDDFObject(d, source)
			if err != nil {
				return nil, err
			}
			defs = append(defs, o)
		default:
			if !sawRoot {
				return nil, ddfError(d, source, -1, "root element is <"+se.Name.Local+">; want <LWM2M>", nil)
			}
			if err := d.Skip(); err != nil {
				return nil, ddfError(d, source, -1, "not well-formed XML", err)
			}
		}
	}
	if len(defs) == 0 {
		return nil, &DefinitionError{Source: source, Object: -1, Reason: "no <Object> element"}
	}
	return defs, nil
}

type ddfItem struct {
	ID                string `xml:"ID,attr"`
	Name              string `xml:"Name"`
	Operations        string `xml:"Operations"`
	MultipleInstances string `xml:"MultipleInstances"`
	Mandatory         string `xml:"Mandatory"`
	Type              string `xml:"Type"`
	RangeEnumeration  string `xml:"RangeEnumeration"`
	Units             string `xml:"Units"`
	Description       string `xml:"Description"`
}

func parseDDFObject(d *xml.Decoder, source string) (ObjectDef, error) {
	line, _ := d.InputPos()
	var o ObjectDef
	var multi, mand string
	var desc1, desc2 string
	haveID := false
	for {
		tok, err := d.Token()
		if err != nil {
			return ObjectDef{}, ddfError(d, source, -1, "<Object> not closed", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if t.Name.Local != "Object" {
				continue
			}
			if !haveID {
				return ObjectDef{}, &DefinitionError{Source: source, Line: line, Object: -1, Reason: "<Object> has no <ObjectID>"}
			}
			var err error
			if o.Multiple, err = ddfChoice(multi, "Multiple", "Single", "MultipleInstances"); err != nil {
				return ObjectDef{}, &DefinitionError{Source: source, Line: line, Object: int(o.ID), Reason: err.Error()}
			}
			if o.Mandatory, err = ddfChoice(mand, "Mandatory", "Optional", "Mandatory"); err != nil {
				return ObjectDef{}, &DefinitionError{Source: source, Line: line, Object: int(o.ID), Reason: err.Error()}
			}
			o.Description = strings.TrimSpace(strings.TrimSpace(desc1) + "\n" + strings.TrimSpace(desc2))
			if err := o.validate(source); err != nil {
				var de *DefinitionError
				if errors.As(err, &de) {
					de.Line = line
				}
				return ObjectDef{}, err
			}
			return o, nil
		case xml.StartElement:
			if t.Name.Local == "Resources" {
				if err := parseDDFResources(d, source, &o); err != nil {
					return ObjectDef{}, err
				}
				continue
			}
			var s string
			if err := d.DecodeElement(&s, &t); err != nil {
				return ObjectDef{}, ddfError(d, source, int(o.ID), "element <"+t.Name.Local+">", err)
			}
			s = strings.TrimSpace(s)
			switch t.Name.Local {
			case "Name":
				o.Name = s
			case "Description1":
				desc1 = s
			case "Description2":
				desc2 = s
			case "ObjectID":
				id, reason := parseID(s)
				if reason != "" {
					return ObjectDef{}, ddfError(d, source, -1, "<ObjectID> "+reason, nil)
				}
				o.ID, haveID = id, true
			case "ObjectURN":
				o.URN = s
			case "LWM2MVersion":
				o.LwM2MVersion = s
			case "ObjectVersion":
				o.Version = s
			case "MultipleInstances":
				multi = s
			case "Mandatory":
				mand = s
			}
		}
	}
}

func parseDDFResources(d *xml.Decoder, source string, o *ObjectDef) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return ddfError(d, source, int(o.ID), "<Resources> not closed", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if t.Name.Local == "Resources" {
				return nil
			}
		case xml.StartElement:
			if t.Name.Local != "Item" {
				if err := d.Skip(); err != nil {
					return ddfError(d, source, int(o.ID), "not well-formed XML", err)
				}
				continue
			}
			line, _ := d.InputPos()
			var it ddfItem
			if err := d.DecodeElement(&it, &t); err != nil {
				return ddfError(d, source, int(o.ID), "resource <Item>", err)
			}
			rd, reason := it.resource()
			if reason != "" {
				return &DefinitionError{Source: source, Line: line, Object: int(o.ID), Reason: reason}
			}
			o.Resources = append(o.Resources, rd)
		}
	}
}

func (it ddfItem) resource() (ResourceDef, string) {
	id, reason := parseID(strings.TrimSpace(it.ID))
	if reason != "" {
		return ResourceDef{}, "resource <Item ID=" + strconv.Quote(it.ID) + ">: " + reason
	}
	where := "resource " + strconv.Itoa(int(id)) + ": "
	rd := ResourceDef{ID: id, Name: strings.TrimSpace(it.Name), Range: strings.TrimSpace(it.RangeEnumeration),
		Units: strings.TrimSpace(it.Units), Description: strings.TrimSpace(it.Description)}
	switch strings.ToUpper(strings.TrimSpace(it.Operations)) {
	case "":
	case "R":
		rd.Operations = OpRead
	case "W":
		rd.Operations = OpWrite
	case "RW":
		rd.Operations = OpRead | OpWrite
	case "E":
		rd.Operations = OpExecute
	default:
		return ResourceDef{}, where + "<Operations> is " + strconv.Quote(it.Operations) + "; want R, W, RW, E or empty"
	}
	var err error
	if rd.Multiple, err = ddfChoice(it.MultipleInstances, "Multiple", "Single", "MultipleInstances"); err != nil {
		return ResourceDef{}, where + err.Error()
	}
	if rd.Mandatory, err = ddfChoice(it.Mandatory, "Mandatory", "Optional", "Mandatory"); err != nil {
		return ResourceDef{}, where + err.Error()
	}
	t, ok := parseDDFType(it.Type)
	if !ok {
		return ResourceDef{}, where + "<Type> is " + strconv.Quote(it.Type) +
			"; want String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk, Corelnk or empty"
	}
	rd.Type = t
	return rd, ""
}

func parseDDFType(s string) (Type, bool) {
	switch strings.ToLower(strings.Join(strings.Fields(s), " ")) {
	case "", "none":
		return TypeNone, true
	case "string":
		return TypeString, true
	case "integer":
		return TypeInteger, true
	case "unsigned integer":
		return TypeUnsigned, true
	case "float":
		return TypeFloat, true
	case "boolean":
		return TypeBoolean, true
	case "opaque":
		return TypeOpaque, true
	case "time":
		return TypeTime, true
	case "objlnk":
		return TypeObjlnk, true
	case "corelnk":
		return TypeCorelnk, true
	}
	return 0, false
}

// ddfChoice reads a two-valued DDF field; empty means the second choice.
func ddfChoice(s, yes, no, field string) (bool, error) {
	switch {
	case strings.EqualFold(strings.TrimSpace(s), yes):
		return true, nil
	case s == "" || strings.EqualFold(strings.TrimSpace(s), no):
		return false, nil
	}
	return false, errors.New("<" + field + "> is " + strconv.Quote(s) + "; want " + yes + " or " + no)
}

func ddfError(d *xml.Decoder, source string, obj int, reason string, err error) *DefinitionError {
	line, _ := d.InputPos()
	return &DefinitionError{Source: source, Line: line, Object: obj, Reason: reason, Err: err}
}
