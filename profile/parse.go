package profile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// MaxProblems bounds the problems a *ValidationError lists (the rest are
// counted in ValidationError.More) and the warnings a loader returns (the
// rest are summed up in one last warning, CodeMoreWarnings).
const MaxProblems = 100

// checkEvery is how many units of work (JSON values, list items, problems)
// pass between two looks at the context.
const checkEvery = 1024

// collector gathers problems and warnings while a profile is read. It holds
// the context of one loader call, which it asks every checkEvery units of
// work; once the context is done, the readers stop and the loader returns
// its error.
type collector struct {
	ctx      context.Context
	work     int
	err      error // the context's error, once seen
	problems []Problem
	warnings []Problem
	more     int // problems past MaxProblems
	moreWarn int // warnings past MaxProblems
}

// newCollector returns a collector for one call under ctx; a context that
// is already done stops the call before any work.
func newCollector(ctx context.Context) *collector { return &collector{ctx: ctx, err: ctx.Err()} }

// tick counts n units of work and reports whether the context is done.
func (c *collector) tick(n int) bool {
	before := c.work / checkEvery
	c.work += n
	if c.work/checkEvery != before {
		c.err = c.ctx.Err()
	}
	return c.err != nil
}

// stopped is the error of a loader whose context ended.
func (c *collector) stopped() error { return fmt.Errorf("profile: validation stopped: %w", c.err) }

// invalid returns the *ValidationError of the problems found.
func (c *collector) invalid(name string) *ValidationError {
	return &ValidationError{Name: name, Problems: sorted(c.problems), More: c.more}
}

// warningList returns the warnings in order, with one more summing up
// those past MaxProblems.
func (c *collector) warningList() []Problem {
	w := sorted(c.warnings)
	if c.moreWarn > 0 {
		w = append(w, Problem{Code: CodeMoreWarnings, Message: fmt.Sprintf("%d more warnings are not listed", c.moreWarn)})
	}
	return w
}

// sorted returns the problems ordered by file, line and column, archive-
// wide ones first, keeping the order of discovery among equals.
func sorted(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return ps
}

// src is one JSON file being read into the model.
type src struct {
	file  string
	data  []byte
	c     *collector
	lines *lines // built at the first problem with a place
}

func (s *src) problem(code Code, off int, format string, args ...any) {
	s.c.tick(1)
	if len(s.c.problems) >= MaxProblems {
		s.c.more++
		return
	}
	s.c.problems = append(s.c.problems, s.at(code, off, format, args...))
}

func (s *src) warn(code Code, off int, format string, args ...any) {
	s.c.tick(1)
	if len(s.c.warnings) >= MaxProblems {
		s.c.moreWarn++
		return
	}
	s.c.warnings = append(s.c.warnings, s.at(code, off, format, args...))
}

func (s *src) at(code Code, off int, format string, args ...any) Problem {
	p := Problem{Code: code, File: s.file, Message: fmt.Sprintf(format, args...)}
	if off >= 0 && s.data != nil {
		if s.lines == nil {
			s.lines = newLines(s.data)
		}
		p.Line, p.Column = s.lines.lineCol(off)
	}
	return p
}

// parse reads the file into a node tree, reporting a syntax error with its
// place (PRF-5: "say where"). It returns nil when the context ended.
func (s *src) parse() *node {
	n, err := parseTree(s.data, func() bool { return s.c.tick(1) })
	if err == nil {
		return n
	}
	if errors.Is(err, errStopped) {
		return nil
	}
	var se *json.SyntaxError
	var oe *offsetError
	switch {
	case errors.As(err, &se):
		s.problem(CodeBadJSON, int(se.Offset), "not valid JSON: %s; check brackets, commas and quotes near here", strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &oe):
		s.problem(CodeBadJSON, oe.off, "not valid JSON: %v", oe.err)
	default:
		s.problem(CodeBadJSON, -1, "not valid JSON: %v", err)
	}
	return nil
}

// str reads a string key. A missing required key, or a required key
// holding "", is a problem at the object's start.
func (s *src) str(obj *node, key string, required bool) (string, int) {
	v, koff, ok := obj.get(key)
	if !ok || v.kind == 'z' {
		if required {
			s.problem(CodeMissingField, obj.off, "this object has no %q; add it", key)
		}
		return "", obj.off
	}
	if v.kind != 's' {
		s.problem(CodeFieldType, koff, "%q is %s; it must be a string", key, kindName(v.kind))
		return "", koff
	}
	if required && strings.TrimSpace(v.str) == "" {
		s.problem(CodeMissingField, koff, "%q is empty; give it a value", key)
	}
	return v.str, koff
}

// num reads a number that may also be written as a numeric string, or be
// null or absent (nil).
func (s *src) num(obj *node, key string) (*float64, int) {
	v, koff, ok := obj.get(key)
	if !ok || v.kind == 'z' {
		return nil, obj.off
	}
	var text string
	switch v.kind {
	case 'n':
		text = v.str
	case 's':
		text = strings.TrimSpace(v.str)
		if text == "" {
			return nil, koff
		}
	default:
		s.problem(CodeFieldType, koff, "%q is %s; it must be a number", key, kindName(v.kind))
		return nil, koff
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		s.problem(CodeFieldType, koff, "%q is %q; it must be a number", key, text)
		return nil, koff
	}
	return &f, koff
}

// boolean reads a bool, also written "true"/"false".
func (s *src) boolean(obj *node, key string) bool {
	v, koff, ok := obj.get(key)
	if !ok || v.kind == 'z' {
		return false
	}
	switch {
	case v.kind == 'b':
		return v.b
	case v.kind == 's' && strings.EqualFold(v.str, "true"):
		return true
	case v.kind == 's' && strings.EqualFold(v.str, "false"):
		return false
	}
	s.problem(CodeFieldType, koff, "%q is %s; it must be true or false", key, kindName(v.kind))
	return false
}

// array reads a list. Absent is fine; null is fine when nullOK; anything
// else that is not an array is a not-array problem (PRF-5, §8.3).
func (s *src) array(obj *node, key string, nullOK, required bool) ([]*node, int) {
	v, koff, ok := obj.get(key)
	if !ok {
		if required {
			s.problem(CodeMissingField, obj.off, "this object has no %q; add it as an array [...]", key)
		}
		return nil, obj.off
	}
	if v.kind == 'z' && nullOK {
		return nil, koff
	}
	if v.kind != 'a' {
		s.problem(CodeNotArray, koff, "%q is %s; it must be an array: put its value in [ ]", key, kindName(v.kind))
		return nil, koff
	}
	return v.items, koff
}

// knownKeys warns about keys the loader does not read, so that a misspelt
// key ("enumlist") is not ignored silently, and about keys given twice (the
// last one is used, as in encoding/json).
func (s *src) knownKeys(n *node, what string, known []string) {
	seen := make(map[string]struct{}, len(n.keys))
	for i, k := range n.keys {
		if _, dup := seen[k]; dup {
			s.warn(CodeRepeatedKey, n.keyOffs[i], "%s gives %q more than once; the last one is used", what, k)
			continue
		}
		seen[k] = struct{}{}
		if !slices.Contains(known, k) {
			s.warn(CodeUnknownKey, n.keyOffs[i], "%s has key %q, which is not read; check its spelling (keys: %s)", what, k, strings.Join(known, ", "))
		}
	}
}

// object checks that n is an object.
func (s *src) object(n *node, what string) bool {
	if n.kind != 'o' {
		s.problem(CodeFieldType, n.off, "%s is %s; it must be an object { }", what, kindName(n.kind))
		return false
	}
	return true
}

// keyset spells the keys of one file format.
type keyset struct {
	propertyName, paraName, dataType, enumList, maxLength, defaultValue string
	commandName, responseName, responses                                string
	serviceID, serviceType                                              string
	// The keys each kind of object may hold; others draw a warning.
	propertyKeys, paraKeys, commandKeys, responseKeys []string
}

var (
	profileKeys = keyset{
		propertyName: "propertyName", paraName: "paraName", dataType: "dataType",
		enumList: "enumList", maxLength: "maxLength", defaultValue: "defaultValue",
		commandName: "commandName", responseName: "responseName", responses: "responses",
		serviceID: "serviceId", serviceType: "serviceType",
		propertyKeys: []string{"propertyName", "dataType", "required", "min", "max", "step", "maxLength", "method", "unit", "enumList", "description", "defaultValue"},
		paraKeys:     []string{"paraName", "dataType", "required", "min", "max", "step", "maxLength", "unit", "enumList", "description", "defaultValue"},
		commandKeys:  []string{"commandName", "paras", "responses", "description"},
		responseKeys: []string{"responseName", "paras", "description"},
	}
	modelKeys = keyset{
		propertyName: "property_name", paraName: "para_name", dataType: "data_type",
		enumList: "enum_list", maxLength: "max_length", defaultValue: "default_value",
		commandName: "command_name", responseName: "response_name", responses: "responses",
		serviceID: "service_id", serviceType: "service_type",
		propertyKeys: []string{"property_name", "data_type", "required", "min", "max", "step", "max_length", "method", "unit", "enum_list", "description", "default_value"},
		paraKeys:     []string{"para_name", "data_type", "required", "min", "max", "step", "max_length", "unit", "enum_list", "description", "default_value"},
		commandKeys:  []string{"command_name", "paras", "responses", "description"},
		responseKeys: []string{"response_name", "paras", "description"},
	}
)

// para reads the common keys of a property or para and checks them.
func (s *src) para(n *node, kind, nameKey string, k *keyset) (Para, int) {
	var p Para
	var nameOff int
	p.Name, nameOff = s.str(n, nameKey, true)
	s.checkName(p.Name, nameOff, nameKey)
	dt, dtOff := s.str(n, k.dataType, true)
	if dt != "" {
		t, ok := ParseDataType(dt)
		if !ok {
			s.problem(CodeDataType, dtOff, "%s %q has unknown %s %q; use one of %s", kind, p.Name, k.dataType, dt, allowedTypes)
		}
		p.DataType = t
	}
	p.Required = s.boolean(n, "required")
	var maxOff int
	p.Min, _ = s.num(n, "min")
	p.Max, maxOff = s.num(n, "max")
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max && *p.Max != 0 {
		s.problem(CodeMinMax, maxOff, "%s %q: min %v is greater than max %v; swap them or set max to 0 for no upper bound", kind, p.Name, *p.Min, *p.Max)
	}
	step, stepOff := s.num(n, "step")
	if step != nil {
		if *step < 0 {
			s.problem(CodeStep, stepOff, "%s %q: step %v is negative; use 0 (no step) or a positive step", kind, p.Name, *step)
		} else {
			p.Step = *step
		}
	}
	ml, mlOff := s.num(n, k.maxLength)
	if ml != nil {
		switch {
		case *ml < 0:
			s.problem(CodeMaxLength, mlOff, "%s %q: %s %v is negative; use 0 or null for no limit, or a positive length", kind, p.Name, k.maxLength, *ml)
		case *ml != math.Trunc(*ml) || *ml > math.MaxInt32:
			s.problem(CodeMaxLength, mlOff, "%s %q: %s %v is not a whole number of characters", kind, p.Name, k.maxLength, *ml)
		default:
			p.MaxLength = int(*ml)
		}
	}
	p.Unit, _ = s.str(n, "unit", false)
	p.Description, _ = s.str(n, "description", false)
	if v, _, ok := n.get(k.defaultValue); ok && v.kind != 'z' {
		p.Default = v.raw()
	}
	if v, koff, ok := n.get(k.enumList); ok && v.kind != 'z' {
		var list []string
		switch v.kind {
		case 'a':
			for _, it := range v.items {
				switch it.kind {
				case 's':
					list = append(list, it.str)
				case 'n':
					list = append(list, it.str)
				default:
					s.problem(CodeFieldType, it.off, "%s %q: %s holds %s; list values as strings", kind, p.Name, k.enumList, kindName(it.kind))
				}
			}
		case 's': // the console's comma-separated form (§8.5)
			for _, e := range strings.Split(v.str, ",") {
				if e = strings.TrimSpace(e); e != "" {
					list = append(list, e)
				}
			}
		default:
			s.problem(CodeNotArray, koff, "%s %q: %s is %s; it must be an array of strings", kind, p.Name, k.enumList, kindName(v.kind))
		}
		if len(list) > 0 && p.DataType != TypeInvalid && p.DataType != TypeString && p.DataType != TypeEnum && p.DataType != TypeStringList {
			s.problem(CodeEnumNotString, koff, "%s %q: %s is only allowed on string properties, not %s; remove it or make the type string", kind, p.Name, k.enumList, p.DataType)
		}
		p.EnumList = list
	}
	if p.DataType == TypeEnum && len(p.EnumList) == 0 {
		s.problem(CodeMissingField, dtOff, "%s %q has %s enum but no %s; list the allowed values", kind, p.Name, k.dataType, k.enumList)
	}
	return p, nameOff
}

// checkName rejects names that cannot be JSON keys of shadows and
// histories: empty ones are reported by str; '.', '$' and '/' are refused
// here.
func (s *src) checkName(name string, off int, key string) {
	if strings.ContainsAny(name, "./$") {
		s.problem(CodeBadName, off, "%s %q contains '.', '/' or '$'; use letters, digits and '_'", key, name)
	}
}

func (s *src) properties(list []*node, k *keyset, serviceID string) []Property {
	out := make([]Property, 0, len(list))
	seen := map[string]bool{}
	for _, n := range list {
		if s.c.tick(1) {
			return out
		}
		if !s.object(n, "a property") {
			continue
		}
		para, nameOff := s.para(n, "property", k.propertyName, k)
		s.knownKeys(n, fmt.Sprintf("property %q", para.Name), k.propertyKeys)
		prop := Property{Para: para}
		m, mOff := s.str(n, "method", false)
		switch a, err := ParseAccess(m); {
		case err != nil && m == "":
			s.problem(CodeMethod, mOff, "property %q has no method; set it to a combination of R, W and E such as RE", para.Name)
		case err != nil:
			s.problem(CodeMethod, mOff, "property %q: %s", para.Name, strings.TrimPrefix(err.Error(), "profile: "))
		default:
			prop.Method = a
		}
		if para.Name != "" {
			if seen[para.Name] {
				s.problem(CodeDuplicate, nameOff, "service %q defines property %q twice; rename or remove one", serviceID, para.Name)
				continue
			}
			seen[para.Name] = true
			if !isLowerCamel(para.Name) {
				s.warn(CodeNaming, nameOff, "property %q is not lowerCamelCase (e.g. batteryLevel)", para.Name)
			}
		}
		out = append(out, prop)
	}
	return out
}

func (s *src) paras(list []*node, k *keyset, owner string) []Para {
	out := make([]Para, 0, len(list))
	seen := map[string]bool{}
	for _, n := range list {
		if s.c.tick(1) {
			return out
		}
		if !s.object(n, "a para") {
			continue
		}
		p, nameOff := s.para(n, "para", k.paraName, k)
		s.knownKeys(n, fmt.Sprintf("para %q of %s", p.Name, owner), k.paraKeys)
		if p.Name != "" {
			if seen[p.Name] {
				s.problem(CodeDuplicate, nameOff, "%s defines para %q twice; rename or remove one", owner, p.Name)
				continue
			}
			seen[p.Name] = true
		}
		out = append(out, p)
	}
	return out
}

func (s *src) commands(list []*node, k *keyset, serviceID string) []Command {
	out := make([]Command, 0, len(list))
	seen := map[string]bool{}
	for _, n := range list {
		if s.c.tick(1) {
			return out
		}
		if !s.object(n, "a command") {
			continue
		}
		var c Command
		var nameOff int
		c.Name, nameOff = s.str(n, k.commandName, true)
		owner := fmt.Sprintf("command %q", c.Name)
		s.knownKeys(n, owner, k.commandKeys)
		paras, _ := s.array(n, "paras", true, false)
		c.Paras = s.paras(paras, k, owner)
		resps, _ := s.array(n, k.responses, true, false)
		rseen := map[string]bool{}
		for _, rn := range resps {
			if s.c.tick(1) {
				return out
			}
			if !s.object(rn, "a response") {
				continue
			}
			var r Response
			var roff int
			r.Name, roff = s.str(rn, k.responseName, true)
			s.knownKeys(rn, fmt.Sprintf("response %q", r.Name), k.responseKeys)
			rp, _ := s.array(rn, "paras", true, false)
			r.Paras = s.paras(rp, k, fmt.Sprintf("response %q of command %q", r.Name, c.Name))
			if r.Name != "" && rseen[r.Name] {
				s.problem(CodeDuplicate, roff, "command %q defines response %q twice; rename or remove one", c.Name, r.Name)
				continue
			}
			rseen[r.Name] = true
			c.Responses = append(c.Responses, r)
		}
		if c.Name != "" {
			if seen[c.Name] {
				s.problem(CodeDuplicate, nameOff, "service %q defines command %q twice; rename or remove one", serviceID, c.Name)
				continue
			}
			seen[c.Name] = true
		}
		out = append(out, c)
	}
	return out
}

var protocols = []string{"CoAP", "LWM2M", "MQTT", "HTTP"}

// protocol normalises protocolType; case does not matter.
func (s *src) protocol(v string, off int, key string) string {
	if v == "" {
		return ""
	}
	for _, p := range protocols {
		if strings.EqualFold(v, p) {
			return p
		}
	}
	s.problem(CodeProtocol, off, "%s %q is not supported; use CoAP or LWM2M for NB-IoT devices (MQTT and HTTP are accepted too)", key, v)
	return v
}

func (s *src) option(v string, off int) Option {
	if v == "" {
		return ""
	}
	for _, o := range []Option{OptionMaster, OptionMandatory, OptionOptional} {
		if strings.EqualFold(v, string(o)) {
			return o
		}
	}
	s.problem(CodeOption, off, "option %q is unknown; use Master, Mandatory or Optional", v)
	return Option(v)
}

// omCapability reads omCapability (PRF-2).
func (s *src) omCapability(n *node) *OMCapability {
	if n == nil || n.kind == 'z' {
		return nil
	}
	if !s.object(n, "omCapability") {
		return nil
	}
	om := &OMCapability{}
	up := func(key string) *Upgrade {
		v, _, ok := n.get(key)
		if !ok || v.kind == 'z' || !s.object(v, key) {
			return nil
		}
		u := &Upgrade{Supported: s.boolean(v, "supportUpgrade")}
		u.Protocol, _ = s.str(v, "upgradeProtocolType", false)
		return u
	}
	om.Upgrade = up("upgradeCapability")
	om.FirmwareUpgrade = up("fwUpgradeCapability")
	if v, _, ok := n.get("configCapability"); ok && v.kind != 'z' {
		om.Config = v.raw()
	}
	return om
}

func isUpperCamel(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	return alnum(s)
}

func isLowerCamel(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	return alnum(s)
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
