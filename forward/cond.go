package forward

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/doze-io/doze/push"
)

// Bounds of a condition (SEC-3: every input bounded).
const (
	MaxConditionLength    = 1024 // bytes
	MaxTerms              = 16   // comparisons joined by AND
	MaxPropertyNameLength = 64   // bytes of a property name after "data."
	MaxLiteralLength      = 256  // bytes of a string literal's value
)

// Fields a condition may test besides data.<property>. Each is a string of
// the device or of the service being tested.
var deviceFields = []string{"manufacturerId", "model", "deviceType", "deviceId", "gatewayId", "serviceId", "serviceType"}

// Op is a comparison operator.
type Op string

// The comparison operators.
const (
	OpEq Op = "="
	OpNe Op = "!="
	OpLt Op = "<"
	OpLe Op = "<="
	OpGt Op = ">"
	OpGe Op = ">="
)

// Condition is a parsed rule condition: comparisons joined by AND. The
// zero value (from "") matches every service of every report.
type Condition struct {
	terms []term
}

type term struct {
	field string // one of deviceFields, or "" for a property
	prop  string // the property name of data.<prop>
	op    Op
	lit   literal
}

type literal struct {
	kind byte // 's' string, 'n' number, 'b' bool
	s    string
	n    float64
	b    bool
}

// SyntaxError says where a condition breaks the language and how.
type SyntaxError struct {
	Offset int    // byte offset of the problem in the condition
	Msg    string // what is wrong and what is allowed
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("forward: condition, at byte %d: %s", e.Offset, e.Msg)
}

// Unwrap returns ErrCondition.
func (e *SyntaxError) Unwrap() error { return ErrCondition }

// ParseCondition parses a rule condition (see the package doc, "Conditions"):
//
//	serviceId = "Battery" AND data.batteryLevel < 20
//
// The empty (or all-blank) condition matches everything.
func ParseCondition(s string) (Condition, error) {
	if len(s) > MaxConditionLength {
		return Condition{}, &SyntaxError{Offset: MaxConditionLength, Msg: fmt.Sprintf("the condition is %d bytes long; at most %d are allowed", len(s), MaxConditionLength)}
	}
	if !utf8.ValidString(s) {
		return Condition{}, &SyntaxError{Offset: firstInvalidUTF8(s), Msg: "the condition is not valid UTF-8"}
	}
	p := parser{src: s}
	var c Condition
	p.space()
	if p.pos == len(s) {
		return c, nil
	}
	for {
		p.space()
		if len(c.terms) == MaxTerms {
			return Condition{}, p.errorf("more than %d comparisons; at most %d may be joined by AND", MaxTerms, MaxTerms)
		}
		t, err := p.term()
		if err != nil {
			return Condition{}, err
		}
		c.terms = append(c.terms, t)
		p.space()
		if p.pos == len(s) {
			return c, nil
		}
		start := p.pos
		w := p.word()
		if !strings.EqualFold(w, "AND") {
			p.pos = start
			return Condition{}, p.errorf("expected AND or the end of the condition, found %s", p.found())
		}
	}
}

// MustParseCondition is ParseCondition that panics on an error, for tests
// and fixed conditions.
func MustParseCondition(s string) Condition {
	c, err := ParseCondition(s)
	if err != nil {
		panic(err)
	}
	return c
}

// String returns the condition in its canonical form.
func (c Condition) String() string {
	var b strings.Builder
	for i, t := range c.terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		if t.field != "" {
			b.WriteString(t.field)
		} else {
			b.WriteString("data." + t.prop)
		}
		b.WriteString(" " + string(t.op) + " ")
		switch t.lit.kind {
		case 's':
			q, _ := json.Marshal(t.lit.s)
			b.Write(q)
		case 'n':
			b.WriteString(strconv.FormatFloat(t.lit.n, 'g', -1, 64))
		case 'b':
			b.WriteString(strconv.FormatBool(t.lit.b))
		}
	}
	return b.String()
}

// usesData reports whether any comparison reads a property.
func (c Condition) usesData() bool {
	for _, t := range c.terms {
		if t.field == "" {
			return true
		}
	}
	return false
}

type parser struct {
	src string
	pos int
}

func (p *parser) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

// found quotes what is at the current position, for error messages.
func (p *parser) found() string {
	if p.pos >= len(p.src) {
		return "the end of the condition"
	}
	rest := p.src[p.pos:]
	if len(rest) > 20 {
		rest = rest[:20] + "…"
	}
	return strconv.Quote(rest)
}

func (p *parser) space() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (p *parser) word() string {
	start := p.pos
	for p.pos < len(p.src) && isWordByte(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) term() (term, error) {
	var t term
	p.space()
	start := p.pos
	name := p.word()
	switch {
	case name == "":
		return t, p.errorf("expected a field (%s, or data.<property>), found %s", strings.Join(deviceFields, ", "), p.found())
	case strings.HasPrefix(name, "data."):
		prop := name[len("data."):]
		if err := checkName(prop); err != nil {
			p.pos = start
			return t, p.errorf("%s", err)
		}
		t.prop = prop
	default:
		for _, f := range deviceFields {
			if name == f {
				t.field = f
			}
		}
		if t.field == "" {
			p.pos = start
			return t, p.errorf("unknown field %q; allowed: %s, or data.<property>", name, strings.Join(deviceFields, ", "))
		}
	}
	p.space()
	opAt := p.pos
	t.op = p.op()
	if t.op == "" {
		return t, p.errorf("expected an operator (=, !=, <, <=, >, >=) after %s, found %s", name, p.found())
	}
	p.space()
	litAt := p.pos
	lit, err := p.literal()
	if err != nil {
		return t, err
	}
	t.lit = lit
	ordering := t.op != OpEq && t.op != OpNe
	switch {
	case t.field != "" && lit.kind != 's':
		p.pos = litAt
		return t, p.errorf("%s is a string: compare it with a quoted string such as \"x\"", name)
	case t.field != "" && ordering:
		p.pos = opAt
		return t, p.errorf("%s is a string: only = and != apply to it", name)
	case ordering && lit.kind != 'n':
		p.pos = opAt
		return t, p.errorf("%s compares numbers: write a number after it", t.op)
	}
	return t, nil
}

// checkName checks a property name.
func checkName(prop string) error {
	switch {
	case prop == "":
		return fmt.Errorf("data. needs a property name, as in data.batteryLevel")
	case len(prop) > MaxPropertyNameLength:
		return fmt.Errorf("property name of %d bytes; at most %d are allowed", len(prop), MaxPropertyNameLength)
	case strings.Contains(prop, "."):
		return fmt.Errorf("property name %q contains a dot; only top-level properties can be tested", prop)
	case !(prop[0] == '_' || prop[0] >= 'a' && prop[0] <= 'z' || prop[0] >= 'A' && prop[0] <= 'Z'):
		return fmt.Errorf("property name %q must start with a letter or _", prop)
	}
	return nil
}

func (p *parser) op() Op {
	rest := p.src[p.pos:]
	for _, o := range []Op{OpNe, OpLe, OpGe, "==", OpEq, OpLt, OpGt} {
		if strings.HasPrefix(rest, string(o)) {
			p.pos += len(o)
			if o == "==" {
				return OpEq
			}
			return o
		}
	}
	return ""
}

func (p *parser) literal() (literal, error) {
	if p.pos >= len(p.src) {
		return literal{}, p.errorf("expected a value (a quoted string, a number, true or false), found the end of the condition")
	}
	start := p.pos
	switch c := p.src[p.pos]; {
	case c == '"':
		end := p.pos + 1
		for end < len(p.src) && p.src[end] != '"' {
			if p.src[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(p.src) {
			return literal{}, p.errorf("string value has no closing quote")
		}
		var s string
		if err := json.Unmarshal([]byte(p.src[p.pos:end+1]), &s); err != nil {
			return literal{}, p.errorf("string value is not a valid JSON string: %v", err)
		}
		if len(s) > MaxLiteralLength {
			return literal{}, p.errorf("string value of %d bytes; at most %d are allowed", len(s), MaxLiteralLength)
		}
		p.pos = end + 1
		return literal{kind: 's', s: s}, nil
	case c == '-' || c >= '0' && c <= '9':
		end := p.pos
		for end < len(p.src) && strings.IndexByte("+-.eE0123456789", p.src[end]) >= 0 {
			end++
		}
		num := p.src[p.pos:end]
		var n float64
		if err := json.Unmarshal([]byte(num), &n); err != nil || !json.Valid([]byte(num)) {
			return literal{}, p.errorf("%q is not a number (JSON number syntax, as in 20, -1.5 or 1e3)", num)
		}
		p.pos = end
		return literal{kind: 'n', n: n}, nil
	default:
		w := p.word()
		switch w {
		case "true", "false":
			return literal{kind: 'b', b: w == "true"}, nil
		}
		p.pos = start
		return literal{}, p.errorf("expected a value (a quoted string, a number, true or false), found %s", p.found())
	}
}

func firstInvalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, w := utf8.DecodeRuneInString(s[i:]); w == 1 {
				return i
			}
		}
	}
	return 0
}

// subject is what one comparison is tested against: a report's device and
// one of its services.
type subject struct {
	ev   *Event
	svc  *push.ServiceData
	data map[string]any // the service's properties (numbers as json.Number); nil if not decoded
}

// match reports whether every comparison holds for s. A comparison of a
// property that the service does not carry, or that has another type than
// the value, does not hold (whatever the operator).
func (c Condition) match(s *subject) bool {
	for _, t := range c.terms {
		if !t.holds(s) {
			return false
		}
	}
	return true
}

func (t term) holds(s *subject) bool {
	if t.field != "" {
		var v string
		switch t.field {
		case "manufacturerId":
			v = s.ev.ManufacturerID
		case "model":
			v = s.ev.Model
		case "deviceType":
			v = s.ev.DeviceType
		case "deviceId":
			v = s.ev.DeviceID
		case "gatewayId":
			v = s.ev.GatewayID
		case "serviceId":
			v = s.svc.ServiceID
		case "serviceType":
			v = s.svc.ServiceType
		}
		return (v == t.lit.s) == (t.op == OpEq)
	}
	raw, ok := s.data[t.prop]
	if !ok {
		return false
	}
	switch t.lit.kind {
	case 's':
		v, ok := raw.(string)
		return ok && (v == t.lit.s) == (t.op == OpEq)
	case 'b':
		v, ok := raw.(bool)
		return ok && (v == t.lit.b) == (t.op == OpEq)
	}
	num, ok := raw.(json.Number)
	if !ok {
		return false
	}
	v, err := num.Float64()
	if err != nil {
		return false
	}
	switch t.op {
	case OpEq:
		return v == t.lit.n
	case OpNe:
		return v != t.lit.n
	case OpLt:
		return v < t.lit.n
	case OpLe:
		return v <= t.lit.n
	case OpGt:
		return v > t.lit.n
	case OpGe:
		return v >= t.lit.n
	}
	return false
}

// decodeData decodes a service's properties with numbers kept as
// json.Number; nil when they are not a JSON object.
func decodeData(raw []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil {
		return nil
	}
	return m
}
