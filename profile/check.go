package profile

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CheckReport checks the values a device reported for service serviceID
// (PRF-8, §6.1 step 3): every name must be a property of the service and
// every value must fit its dataType, min/max, step, maxLength and
// enumList. Absent properties are fine: devices report what changed. Use
// CheckFullReport to also require every required property.
//
// values is what encoding/json decodes into map[string]any (float64,
// string, bool, map[string]any, []any, nil, or json.Number) or what a
// codec builds (Go integers of any size, float32, []byte for jsonObject
// text). It returns nil or a *CheckError listing every mismatch, sorted by
// name (errors.Is ErrMismatch). It does not allocate when the data fits.
func (p *Product) CheckReport(serviceID string, values map[string]any) error {
	return p.checkReport(serviceID, values, false)
}

// CheckFullReport is CheckReport for a report that claims to carry the
// whole state of the service: every required property must be present
// (PRF-8).
func (p *Product) CheckFullReport(serviceID string, values map[string]any) error {
	return p.checkReport(serviceID, values, true)
}

func (p *Product) checkReport(serviceID string, values map[string]any, full bool) error {
	s, ok := p.Service(serviceID)
	if !ok {
		return &CheckError{ServiceID: serviceID, Mismatches: []Mismatch{p.unknownService(serviceID)}}
	}
	var e *CheckError
	// When the service has few properties compared with the report, look
	// each property up in the report: map lookups cost less than ranging
	// over the report. Names that are not properties are then found by
	// count, and only a report with such names is ranged over.
	if len(s.Properties) <= 2*len(values) {
		found := 0
		for i := range s.Properties {
			pr := &s.Properties[i]
			v, ok := values[pr.Name]
			if !ok {
				if full && pr.Required {
					e = e.add(serviceID, "", requiredMismatch(pr.Name, serviceID))
				}
				continue
			}
			found++
			if m, bad := checkValue(&pr.Para, "property", v); bad {
				e = e.add(serviceID, "", m)
			}
		}
		if found < len(values) {
			for name := range values {
				if _, ok := s.Property(name); !ok {
					e = e.add(serviceID, "", unknownProperty(name, s))
				}
			}
		}
		if e != nil {
			e.sort()
			return e
		}
		return nil
	}
	for name, v := range values {
		prop, ok := s.Property(name)
		if !ok {
			e = e.add(serviceID, "", unknownProperty(name, s))
			continue
		}
		if m, bad := checkValue(&prop.Para, "property", v); bad {
			e = e.add(serviceID, "", m)
		}
	}
	if full {
		for i := range s.Properties {
			pr := &s.Properties[i]
			if _, ok := values[pr.Name]; pr.Required && !ok {
				e = e.add(serviceID, "", requiredMismatch(pr.Name, serviceID))
			}
		}
	}
	if e != nil {
		e.sort()
		return e
	}
	return nil
}

// CheckCommand checks a command before it is queued (PRF-9, §7.1): the
// service and the method (a commandName) must exist, paras must be a
// non-empty object even when the command has no parameters, and each para
// is checked as CheckReport checks a property; required paras must be
// present. For a command that defines no paras, the names in paras are not
// checked (our choice: the platform demands a non-empty paras the device
// then ignores). Returns nil or a *CheckError (errors.Is ErrMismatch).
func (p *Product) CheckCommand(serviceID, method string, paras map[string]any) error {
	s, ok := p.Service(serviceID)
	if !ok {
		return &CheckError{ServiceID: serviceID, Command: method, Mismatches: []Mismatch{p.unknownService(serviceID)}}
	}
	c, ok := s.Command(method)
	if !ok {
		names := make([]string, len(s.Commands))
		for i := range s.Commands {
			names[i] = s.Commands[i].Name
		}
		return &CheckError{ServiceID: serviceID, Command: method, Mismatches: []Mismatch{{Name: method, Rule: RuleCommand,
			Message: fmt.Sprintf("method %q is not a command of service %s (commands: %s)", method, serviceID, listOrNone(names))}}}
	}
	var e *CheckError
	if len(paras) == 0 {
		e = e.add(serviceID, method, Mismatch{Name: "paras", Rule: RuleParas,
			Message: "paras must be a non-empty JSON object, even for a command without parameters (§7.1)"})
	}
	if len(c.Paras) > 0 {
		for name, v := range paras {
			para, ok := c.Para(name)
			if !ok {
				e = e.add(serviceID, method, Mismatch{Name: name, Rule: RuleName,
					Message: fmt.Sprintf("%q is not a para of command %s (paras: %s)", name, method, paraNames(c.Paras))})
				continue
			}
			if m, bad := checkValue(para, "para", v); bad {
				e = e.add(serviceID, method, m)
			}
		}
		for i := range c.Paras {
			pa := &c.Paras[i]
			if _, ok := paras[pa.Name]; pa.Required && !ok {
				e = e.add(serviceID, method, Mismatch{Name: pa.Name, Rule: RuleRequired,
					Message: fmt.Sprintf("para %q of command %s is required but absent", pa.Name, method)})
			}
		}
	}
	if e != nil {
		e.sort()
		return e
	}
	return nil
}

func unknownProperty(name string, s *Service) Mismatch {
	return Mismatch{Name: name, Rule: RuleName,
		Message: fmt.Sprintf("%q is not a property of service %s (properties: %s); reported names must match the model", name, s.ID, propertyNames(s))}
}

func requiredMismatch(name, serviceID string) Mismatch {
	return Mismatch{Name: name, Rule: RuleRequired,
		Message: fmt.Sprintf("property %q is required in a full report of service %s but absent", name, serviceID)}
}

func (e *CheckError) add(serviceID, command string, m Mismatch) *CheckError {
	if e == nil {
		e = &CheckError{ServiceID: serviceID, Command: command}
	}
	e.Mismatches = append(e.Mismatches, m)
	return e
}

func (e *CheckError) sort() {
	sort.SliceStable(e.Mismatches, func(i, j int) bool {
		a, b := e.Mismatches[i], e.Mismatches[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Rule < b.Rule
	})
}

func (p *Product) unknownService(id string) Mismatch {
	names := make([]string, len(p.Services))
	for i := range p.Services {
		names[i] = p.Services[i].ID
	}
	return Mismatch{Name: id, Rule: RuleService,
		Message: fmt.Sprintf("service %q is not in product %s/%s (serviceIds: %s); address services by serviceId, not serviceType", id, p.ManufacturerID, p.Model, listOrNone(names))}
}

func propertyNames(s *Service) string {
	names := make([]string, len(s.Properties))
	for i := range s.Properties {
		names[i] = s.Properties[i].Name
	}
	return listOrNone(names)
}

func paraNames(ps []Para) string {
	names := make([]string, len(ps))
	for i := range ps {
		names[i] = ps[i].Name
	}
	return listOrNone(names)
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// checkValue checks one value against a property or para. It allocates
// only to describe a mismatch.
func checkValue(p *Para, kind string, v any) (Mismatch, bool) {
	bad := func(rule Rule, format string, args ...any) (Mismatch, bool) {
		return Mismatch{Name: p.Name, Rule: rule,
			Message: fmt.Sprintf("%s %q: ", kind, p.Name) + fmt.Sprintf(format, args...)}, true
	}
	if v == nil {
		return bad(RuleType, "null is not a %s value", p.DataType)
	}
	switch p.DataType {
	case TypeInt, TypeLong, TypeDecimal:
		f, integral, ok := number(v, p.DataType == TypeInt)
		if !ok {
			return bad(RuleType, "%s is not a number; dataType %s wants a JSON number", describe(v), p.DataType)
		}
		if p.DataType != TypeDecimal && !integral {
			return bad(RuleType, "%v is not a whole number; dataType %s wants an integer", f, p.DataType)
		}
		lo, hi, hasLo, hasHi := p.Bounds()
		if hasLo && f < lo {
			return bad(RuleMin, "%v is below min %v", f, lo)
		}
		if hasHi && f > hi {
			return bad(RuleMax, "%v is above max %v", f, hi)
		}
		if p.Step > 0 {
			base := 0.0
			if hasLo {
				base = lo
			}
			if p.Step == 1 && integral && base == math.Trunc(base) {
				return Mismatch{}, false // every integer is on a grid of 1
			}
			q := (f - base) / p.Step
			if math.Abs(q-math.Round(q)) > 1e-9*math.Max(1, math.Abs(q)) {
				return bad(RuleStep, "%v is not %v plus a multiple of step %v", f, base, p.Step)
			}
		}
		return Mismatch{}, false
	case TypeString, TypeEnum:
		s, ok := v.(string)
		if !ok {
			return bad(RuleType, "%s is not a string; dataType %s wants a JSON string", describe(v), p.DataType)
		}
		return checkString(p, s, bad)
	case TypeDateTime:
		s, ok := v.(string)
		if !ok {
			return bad(RuleType, "%s is not a string; DateTime wants yyyyMMdd'T'HHmmss'Z' such as 20170214T164001Z", describe(v))
		}
		if !validDateTime(s) {
			return bad(RuleType, "%q is not a DateTime; want yyyyMMdd'T'HHmmss'Z' in UTC such as 20170214T164001Z", s)
		}
		return Mismatch{}, false
	case TypeJSONObject:
		switch x := v.(type) {
		case map[string]any:
			return Mismatch{}, false
		case string:
			if jsonObjectText([]byte(x)) {
				return Mismatch{}, false
			}
		case []byte:
			if jsonObjectText(x) {
				return Mismatch{}, false
			}
		case json.RawMessage:
			if jsonObjectText(x) {
				return Mismatch{}, false
			}
		}
		return bad(RuleType, "%s is not a JSON object; jsonObject wants {…} (or its JSON text)", describe(v))
	case TypeBoolean:
		if _, ok := v.(bool); !ok {
			return bad(RuleType, "%s is not true or false", describe(v))
		}
		return Mismatch{}, false
	case TypeStringList:
		switch x := v.(type) {
		case []string:
			for _, s := range x {
				if m, bad := checkString(p, s, bad); bad {
					return m, bad
				}
			}
			return Mismatch{}, false
		case []any:
			for _, it := range x {
				s, ok := it.(string)
				if !ok {
					return bad(RuleType, "element %s is not a string; string list wants an array of strings", describe(it))
				}
				if m, bad := checkString(p, s, bad); bad {
					return m, bad
				}
			}
			return Mismatch{}, false
		}
		return bad(RuleType, "%s is not an array of strings", describe(v))
	}
	return bad(RuleType, "the model gives no usable dataType (%s)", p.DataType)
}

func checkString(p *Para, s string, bad func(Rule, string, ...any) (Mismatch, bool)) (Mismatch, bool) {
	n := utf8.RuneCountInString(s)
	if p.MaxLength > 0 && n > p.MaxLength {
		return bad(RuleLength, "%d characters is longer than maxLength %d", n, p.MaxLength)
	}
	// For strings, a min/max other than 0/0 bounds the length (our reading).
	if lo, hi, hasLo, hasHi := p.Bounds(); hasLo && float64(n) < lo || hasHi && float64(n) > hi {
		return bad(RuleLength, "%d characters is outside the length range min %v … max %v", n, lo, hi)
	}
	if len(p.EnumList) > 0 {
		for _, e := range p.EnumList {
			if e == s {
				return Mismatch{}, false
			}
		}
		return bad(RuleEnum, "%q is not one of enumList [%s]", s, strings.Join(p.EnumList, ", "))
	}
	return Mismatch{}, false
}

// number reads a numeric value of any Go kind. integral says whether it is
// a whole number. Booleans count as 0 and 1 when boolOK (PRF-4: int holds
// booleans).
func number(v any, boolOK bool) (f float64, integral, ok bool) {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false, false
		}
		return x, x == math.Trunc(x), true
	case float32:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false, false
		}
		return f, f == math.Trunc(f), true
	case int:
		return float64(x), true, true
	case int8:
		return float64(x), true, true
	case int16:
		return float64(x), true, true
	case int32:
		return float64(x), true, true
	case int64:
		return float64(x), true, true
	case uint:
		return float64(x), true, true
	case uint8:
		return float64(x), true, true
	case uint16:
		return float64(x), true, true
	case uint32:
		return float64(x), true, true
	case uint64:
		return float64(x), true, true
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return float64(i), true, true
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return 0, false, false
		}
		return f, f == math.Trunc(f), true
	case bool:
		if !boolOK {
			return 0, false, false
		}
		if x {
			return 1, true, true
		}
		return 0, true, true
	}
	return 0, false, false
}

func jsonObjectText(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return json.Valid(b)
		}
		return false
	}
	return false
}

// describe names a value and its JSON kind for messages.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v (%T)", v, v)
}
