package codec

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/doze-io/doze/ota/pcp"
)

// Limits of Compile (SEC-3). A real codec file is a few kilobytes; the
// limits keep a hostile upload from holding memory or CPU.
const (
	// MaxSpecSize bounds the codec JSON Compile reads: 1 MiB.
	MaxSpecSize = 1 << 20
	// MaxProblems bounds the problems a *CompileError lists; the rest are
	// counted in CompileError.More.
	MaxProblems = 100
)

// Compile parses a declarative codec from JSON and compiles it (COD-2),
// checking every COD-3 rule, and against model when it is not nil. On failure
// the error is a *CompileError listing the problems found (the first
// MaxProblems). It is CompileContext without a deadline.
func Compile(data []byte, model Model) (*Declarative, error) {
	return CompileContext(context.Background(), data, model)
}

// CompileContext is Compile that stops when ctx is done (the client that
// uploaded the codec went away): it then returns an error wrapping
// ctx.Err(). Work is linear in len(data); data over MaxSpecSize is refused
// with a CodeTooLarge problem before it is parsed.
func CompileContext(ctx context.Context, data []byte, model Model) (*Declarative, error) {
	if len(data) > MaxSpecSize {
		return nil, &CompileError{Problems: []Problem{{Code: CodeTooLarge,
			Text: fmt.Sprintf("the codec is %d bytes; at most %d (1 MiB) are accepted", len(data), MaxSpecSize)}}}
	}
	if err := ctx.Err(); err != nil {
		return nil, stopped(err)
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, &CompileError{Problems: []Problem{jsonProblem(data, err)}}
	}
	if dec.More() {
		p := Problem{Code: CodeSyntax, Text: "more than one JSON value; a codec file holds one object"}
		p.Line, p.Column = newLines(data).lineCol(int(dec.InputOffset()))
		return nil, &CompileError{Problems: []Problem{p}}
	}
	d, err := compileSpec(ctx, &s, model)
	var ce *CompileError
	if errors.As(err, &ce) {
		if err := locate(ctx, data, &s, ce.Problems); err != nil {
			return nil, err
		}
	}
	return d, err
}

// stopped is the error of a compilation ended by its context.
func stopped(err error) error { return fmt.Errorf("codec: compile stopped: %w", err) }

// jsonProblem turns a JSON error into a syntax problem with line:column.
func jsonProblem(data []byte, err error) Problem {
	p := Problem{Code: CodeSyntax, Text: strings.TrimPrefix(err.Error(), "json: ")}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read, including the offending one.
		p.Line, p.Column = newLines(data).lineCol(int(se.Offset) - 1)
	case errors.As(err, &te):
		p.Line, p.Column = newLines(data).lineCol(int(te.Offset) - 1)
	default:
		p.Text = "not a valid codec: " + p.Text
	}
	return p
}

// lines indexes where each line of a document starts, so that turning an
// offset into line:column is a binary search, not a scan of the document.
type lines struct {
	starts []int // offset of each line's first byte; starts[0] is 0
	size   int
}

func newLines(data []byte) lines {
	l := lines{starts: []int{0}, size: len(data)}
	for i, c := range data {
		if c == '\n' {
			l.starts = append(l.starts, i+1)
		}
	}
	return l
}

// lineCol turns a byte offset into a 1-based line and column (in bytes).
func (l lines) lineCol(off int) (line, col int) {
	off = max(0, min(off, l.size))
	i, _ := slices.BinarySearch(l.starts, off+1) // first start past off
	return i, off - l.starts[i-1] + 1
}

// locate sets Line and Column of problems from the positions of the messages
// and fields they name in data. A message or field named "#n" (it had no
// name) is the n-th; with duplicate names the first is taken. It reads data
// once and indexes names once, so its work is linear in the document and
// the problems.
func locate(ctx context.Context, data []byte, s *Spec, problems []Problem) error {
	msgs, fields, err := positions(ctx, data)
	if err != nil {
		return err
	}
	ls := newLines(data)
	msgIndex := firstIndex(len(s.Messages), func(j int) string { return s.Messages[j].Name })
	fieldIndex := map[int]map[string]int{} // built for the messages problems name
	for i := range problems {
		p := &problems[i]
		mi := indexOf(p.Message, msgIndex)
		if mi < 0 || mi >= len(msgs) || mi >= len(s.Messages) {
			continue
		}
		off := msgs[mi]
		if p.Field != "" {
			fi, ok := fieldIndex[mi]
			if !ok {
				fs := s.Messages[mi].Fields
				fi = firstIndex(len(fs), func(j int) string { return fs[j].Name })
				fieldIndex[mi] = fi
			}
			if k := indexOf(p.Field, fi); k >= 0 && k < len(fields[mi]) {
				off = fields[mi][k]
			}
		}
		p.Line, p.Column = ls.lineCol(off)
	}
	return nil
}

// firstIndex maps each name to the index of its first holder.
func firstIndex(n int, nameOf func(int) string) map[string]int {
	m := make(map[string]int, n)
	for j := range n {
		if _, dup := m[nameOf(j)]; !dup {
			m[nameOf(j)] = j
		}
	}
	return m
}

// indexOf finds name: "#n" is the n-th, else the first holder; -1 if none.
func indexOf(name string, index map[string]int) int {
	if name == "" {
		return -1
	}
	if k, err := strconv.Atoi(strings.TrimPrefix(name, "#")); err == nil && strings.HasPrefix(name, "#") {
		return k - 1
	}
	if j, ok := index[name]; ok {
		return j
	}
	return -1
}

// checkEvery is how many units of work (JSON tokens, fields, problems)
// pass between two looks at the context.
const checkEvery = 1024

// positions returns the byte offsets of each message's and each field's
// opening brace in a codec file that parsed.
func positions(ctx context.Context, data []byte) (msgs []int, fields [][]int, err error) {
	type frame struct {
		array   bool
		key     string
		idx     int
		wantKey bool
	}
	var st []frame
	next := func() { // a value ended in the top frame
		if n := len(st); n > 0 {
			if st[n-1].array {
				st[n-1].idx++
			} else {
				st[n-1].wantKey = true
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, stopped(err)
			}
		}
		tok, err := dec.Token()
		if err != nil {
			return msgs, fields, nil
		}
		if n := len(st); n > 0 && st[n-1].wantKey {
			if key, ok := tok.(string); ok {
				st[n-1].key, st[n-1].wantKey = key, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if tok == json.Delim('{') {
				off := int(dec.InputOffset()) - 1
				switch {
				case len(st) == 2 && st[0].key == "messages":
					msgs = append(msgs, off)
					fields = append(fields, nil)
				case len(st) == 4 && st[0].key == "messages" && st[2].key == "fields" && len(fields) > 0:
					fields[len(fields)-1] = append(fields[len(fields)-1], off)
				}
			}
			st = append(st, frame{array: tok == json.Delim('['), wantKey: tok == json.Delim('{')})
		case json.Delim('}'), json.Delim(']'):
			st = st[:len(st)-1]
			next()
		default:
			next()
		}
	}
}

// compiler collects problems while compiling. It holds the context of one
// call, which it looks at every checkEvery units of work.
type compiler struct {
	ctx      context.Context
	work     int
	err      error // the context's error, once seen
	problems []Problem
	more     int // problems past MaxProblems, counted only
}

func (c *compiler) add(code, msg, fld, format string, args ...any) {
	c.tick(1)
	if len(c.problems) >= MaxProblems {
		c.more++
		return
	}
	c.problems = append(c.problems, Problem{Code: code, Message: msg, Field: fld, Text: fmt.Sprintf(format, args...)})
}

// tick counts n units of work and reports whether the context is done;
// it asks the context once per checkEvery units.
func (c *compiler) tick(n int) bool {
	before := c.work / checkEvery
	c.work += n
	if c.work/checkEvery != before {
		c.err = c.ctx.Err()
	}
	return c.err != nil
}

// CompileSpec compiles an already parsed Spec; see Compile.
func CompileSpec(s *Spec, model Model) (*Declarative, error) {
	return compileSpec(context.Background(), s, model)
}

func compileSpec(ctx context.Context, s *Spec, model Model) (*Declarative, error) {
	c := &compiler{ctx: ctx}
	d := &Declarative{name: s.Name}
	if len(s.Messages) == 0 {
		c.add(CodeNoMessages, "", "", "the codec has no messages; give at least one under \"messages\"")
	}
	byName := map[string]int{}
	for i := range s.Messages {
		if c.tick(1 + len(s.Messages[i].Fields)) {
			return nil, stopped(c.err)
		}
		ms := &s.Messages[i]
		m := c.message(ms, i)
		if ms.Name == "" {
			c.add(CodeMissingName, fmt.Sprintf("#%d", i+1), "", "message %d has no name", i+1)
		} else if _, dup := byName[ms.Name]; dup {
			c.add(CodeDuplicateMessage, ms.Name, "", "two messages are named %q; names must be unique", ms.Name)
		} else {
			byName[ms.Name] = i
		}
		d.messages = append(d.messages, m)
		switch {
		case m.kind == kBad:
		case m.kind.uplink():
			d.up = append(d.up, i)
		default:
			d.down = append(d.down, i)
		}
	}
	c.responses(s, d, byName)
	c.direction(d, d.up, "uplink (reports and command responses)")
	c.direction(d, d.down, "downlink (commands and report responses)")
	c.commands(d)
	if model != nil {
		c.model(d, model)
	}
	if c.err != nil {
		return nil, stopped(c.err)
	}
	if len(c.problems) > 0 {
		return nil, &CompileError{Problems: c.problems, More: c.more}
	}
	d.upID, d.downID = buildIndex(d, d.up), buildIndex(d, d.down)
	return d, nil
}

func (c *compiler) message(ms *MessageSpec, idx int) message {
	name := ms.Name
	if name == "" {
		name = fmt.Sprintf("#%d", idx+1) // problems still say which message
	}
	m := message{name: name, service: ms.Service, command: ms.Command,
		idIndex: -1, midIndex: -1, errIndex: -1, response: -1}
	switch ms.Kind {
	case KindReport:
		m.kind = kReport
	case KindCommand:
		m.kind = kCommand
	case KindResponse:
		m.kind = kResponse
	case KindReportResponse:
		m.kind = kReportResponse
	default:
		m.kind = kBad
		c.add(CodeBadKind, name, "", "kind %q is not one of report, command, commandResponse, reportResponse", ms.Kind)
	}
	switch m.kind {
	case kCommand:
		if ms.Service == "" || ms.Command == "" {
			c.add(CodeMissingService, name, "", "a command message needs \"service\" (serviceId) and \"command\" (command name)")
		}
	case kResponse, kReportResponse:
		if ms.Service != "" || ms.Command != "" {
			c.add(CodeBadFlag, name, "", "a %s takes its service from the message that names it; remove \"service\"/\"command\"", ms.Kind)
		}
	}
	if m.kind != kReport && (ms.AddResponse || ms.ResponseBytes != "") {
		c.add(CodeBadFlag, name, "", "\"addResponse\" and \"responseBytes\" belong to report messages only")
	}
	if m.kind == kReport {
		if !ms.AddResponse && (ms.ResponseBytes != "" || ms.ResponseMessage != "") {
			c.add(CodeBadResponse, name, "", "\"responseBytes\"/\"responseMessage\" given but \"addResponse\" is false; set \"addResponse\": true")
		}
		if ms.AddResponse {
			m.ack = true
			m.ackBytes = defaultResponseBytes
			if ms.ResponseBytes != "" && ms.ResponseMessage != "" {
				c.add(CodeBadResponse, name, "", "give \"responseMessage\" or \"responseBytes\", not both")
			}
			if ms.ResponseBytes != "" {
				b, err := hex.DecodeString(trimHex(ms.ResponseBytes))
				if err != nil || len(b) == 0 {
					c.add(CodeBadResponse, name, "", "responseBytes %q is not hexadecimal bytes (e.g. AAAA0000)", ms.ResponseBytes)
				}
				m.ackBytes = b
			}
		}
	}
	if (m.kind == kResponse || m.kind == kReportResponse) && ms.ResponseMessage != "" {
		c.add(CodeBadFlag, name, "", "a %s cannot name a responseMessage", ms.Kind)
	}

	names := map[string]int{}
	for i := range ms.Fields {
		m.fields = append(m.fields, c.field(&m, &ms.Fields[i], i))
		fs := &ms.Fields[i]
		if fs.Name == "" {
			c.add(CodeMissingName, name, fmt.Sprintf("#%d", i+1), "field %d has no name", i+1)
		} else if _, dup := names[fs.Name]; dup {
			c.add(CodeDuplicateField, name, fs.Name, "two fields are named %q; names must be unique in a message", fs.Name)
		} else {
			names[fs.Name] = i
		}
	}
	// Length fields: resolve after all fields exist.
	for i := range ms.Fields {
		fs, f := &ms.Fields[i], &m.fields[i]
		if !f.variable() {
			if fs.LengthField != "" {
				c.add(CodeBadFlag, name, fs.Name, "\"lengthField\" belongs to varstring and variant fields only")
			}
			continue
		}
		j, ok := names[fs.LengthField]
		switch {
		case fs.LengthField == "":
			c.add(CodeLengthField, name, fs.Name, "a %s needs \"lengthField\": the name of an earlier integer field holding its length", fs.Type)
			continue
		case !ok || j >= i:
			c.add(CodeLengthField, name, fs.Name, "lengthField %q is not an earlier field of this message", fs.LengthField)
			continue
		}
		lf := &m.fields[j]
		switch {
		case !lf.integer():
			c.add(CodeLengthField, name, fs.Name, "lengthField %q is %s; it must be an integer type", fs.LengthField, lf.typName)
		case lf.role == roleLength:
			c.add(CodeSharedLength, name, fs.Name, "lengthField %q already gives the length of %q; each variable field needs its own", fs.LengthField, m.fields[lf.ref].name)
		case lf.role != roleData || lf.scaled:
			c.add(CodeLengthField, name, fs.Name, "lengthField %q is a messageId, mid, errcode or scaled field and cannot hold a length", fs.LengthField)
		default:
			lf.role = roleLength
			lf.ref = i
			f.ref = j
			if f.hasDef && uint64(len(f.def)) > maxUint(lf.size) {
				c.add(CodeDefaultTooLong, name, fs.Name, "default is %d bytes; length field %q holds at most %d", len(f.def), lf.name, maxUint(lf.size))
			}
		}
	}
	// Offsets, counts.
	off := 0
	for i := range m.fields {
		f := &m.fields[i]
		f.off = off
		if off >= 0 && !f.variable() && f.size > 0 {
			off += f.size
		} else {
			off = -1
		}
		if f.role == roleData {
			m.nData++
			if m.kind == kReport && f.service == "" {
				f.service = ms.Service
				if f.service == "" {
					c.add(CodeMissingService, name, f.name, "the field maps to no service; give \"service\" on the message or the field")
				}
			}
		}
	}
	svcIndex := map[string]int{}
	for i := range m.fields {
		f := &m.fields[i]
		if m.kind != kReport || f.role != roleData {
			continue
		}
		j, ok := svcIndex[f.service]
		if !ok {
			j = len(m.services)
			svcIndex[f.service] = j
			m.services = append(m.services, service{name: f.service})
		}
		f.svc = j
		m.services[j].n++
	}
	m.fixedLen = off
	buildPlan(&m)
	if m.kind == kReportResponse {
		for _, f := range m.fields {
			if f.role == roleData && !f.hasDef {
				c.add(CodeResponseDefault, name, f.name, "every field of a report response needs a default: the platform fills it in")
			}
		}
	}
	return m
}

func maxUint(size int) uint64 {
	if size >= 8 {
		return math.MaxUint64
	}
	return 1<<(8*size) - 1
}

func (c *compiler) field(m *message, fs *FieldSpec, i int) field {
	f := field{name: fs.Name, typName: fs.Type, service: fs.Service, ref: -1}
	tn, ok := typeNames[fs.Type]
	if !ok {
		c.add(CodeBadType, m.name, fs.Name, "type %q is not one of int8, int16, int24, int32, int64, uint8…uint64, float32, float64, string, varstring, array, variant", fs.Type)
		tn.t, tn.size = tArray, max(fs.Length, 1) // keep going with something harmless
	}
	f.typ, f.size = tn.t, tn.size
	switch {
	case !ok:
	case f.typ == tString || f.typ == tArray:
		if fs.Length <= 0 || fs.Length > MaxFieldLength {
			c.add(CodeBadLength, m.name, fs.Name, "a %s needs \"length\": its size in bytes, 1 to %d", fs.Type, MaxFieldLength)
			f.size = 1
		} else {
			f.size = fs.Length
		}
	case f.variable():
		if fs.Length != 0 {
			c.add(CodeBadLength, m.name, fs.Name, "a %s takes its length from \"lengthField\"; remove \"length\"", fs.Type)
		}
	default:
		if fs.Length != 0 && fs.Length != f.size {
			c.add(CodeBadLength, m.name, fs.Name, "length %d contradicts type %s, which is %d bytes", fs.Length, fs.Type, f.size)
		}
	}
	if fs.Service != "" && m.kind != kReport {
		c.add(CodeBadFlag, m.name, fs.Name, "\"service\" on a field belongs to report messages only")
	}

	// Flags.
	nflags := 0
	if fs.MessageID {
		nflags++
		f.role = roleMessageID
		if !f.integer() {
			c.add(CodeMessageIDType, m.name, fs.Name, "a messageId field must be an integer type, not %s", fs.Type)
		}
		if fs.Default == "" {
			c.add(CodeMessageIDValue, m.name, fs.Name, "a messageId field needs \"default\": the hex value that identifies this message")
		}
		if m.idIndex >= 0 {
			c.add(CodeBadFlag, m.name, fs.Name, "a message has at most one messageId field")
		} else {
			m.idIndex = i
		}
	}
	if fs.Mid {
		nflags++
		f.role = roleMid
		if !f.integer() {
			c.add(CodeMidType, m.name, fs.Name, "a mid field must be an integer type, not %s", fs.Type)
		}
		if m.kind != kCommand && m.kind != kResponse {
			c.add(CodeBadFlag, m.name, fs.Name, "mid belongs to commands and command responses only")
		}
		if m.midIndex >= 0 {
			c.add(CodeBadFlag, m.name, fs.Name, "a message has at most one mid field")
		} else {
			m.midIndex = i
		}
	}
	if fs.Errcode {
		nflags++
		f.role = roleErrcode
		if !f.integer() || m.kind != kResponse {
			c.add(CodeBadFlag, m.name, fs.Name, "errcode belongs to an integer field of a command response")
		}
		if m.errIndex < 0 {
			m.errIndex = i
		}
	}
	if nflags > 1 {
		c.add(CodeBadFlag, m.name, fs.Name, "a field is at most one of messageId, mid, errcode")
	}

	// Scale and offset.
	if fs.Scale != 0 || fs.Offset != 0 {
		switch {
		case !f.integer() || f.size > 4:
			c.add(CodeBadScale, m.name, fs.Name, "scale/offset apply to integer fields of 1 to 4 bytes, not %s", fs.Type)
		case f.role != roleData:
			c.add(CodeBadScale, m.name, fs.Name, "a messageId, mid or errcode field cannot be scaled")
		case math.IsNaN(fs.Scale) || math.IsInf(fs.Scale, 0) || math.IsNaN(fs.Offset) || math.IsInf(fs.Offset, 0):
			c.add(CodeBadScale, m.name, fs.Name, "scale and offset must be finite numbers")
		default:
			f.scaled = true
			f.scale = fs.Scale
			if f.scale == 0 {
				f.scale = 1
			}
			f.offset = fs.Offset
			if inv := 1 / f.scale; inv == math.Trunc(inv) && math.Abs(inv) < 1<<52 {
				f.inv = inv
			}
		}
	}

	// Default.
	if fs.Default != "" {
		h := trimHex(fs.Default)
		numeric := f.integer() || f.typ == tFloat
		if numeric && len(h)%2 == 1 {
			h = "0" + h
		}
		b, err := hex.DecodeString(h)
		switch {
		case err != nil || h == "":
			c.add(CodeDefaultNotHex, m.name, fs.Name, "default %q is not hexadecimal bytes (digits 0-9, A-F, e.g. \"01\")", fs.Default)
		case !f.variable() && len(b) > f.size:
			c.add(CodeDefaultTooLong, m.name, fs.Name, "default %q is %d bytes; the field holds %d", fs.Default, len(b), f.size)
		default:
			f.hasDef = true
			if f.variable() {
				f.def = b
			} else {
				f.def = make([]byte, f.size)
				if numeric {
					copy(f.def[f.size-len(b):], b)
				} else {
					copy(f.def, b)
				}
			}
			if fs.MessageID && f.integer() {
				m.id = readUint(f.def)
				if i == 0 && m.kind.uplink() && pcp.IsPCP(f.def) {
					c.add(CodePCPPrefix, m.name, fs.Name, "messageId %s makes every payload start FF FE, which the platform treats as a PCP frame and never decodes; choose another id", fs.Default)
				}
			}
			if f.typ == tFloat && !finite(f.def) {
				c.add(CodeDefaultNotHex, m.name, fs.Name, "default %q is NaN or infinite as %s", fs.Default, fs.Type)
			}
		}
	}
	return f
}

func finite(b []byte) bool {
	if len(b) == 4 {
		v := float64(math.Float32frombits(uint32(readUint(b))))
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	v := math.Float64frombits(readUint(b))
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}

// responses links commands and reports to their response messages and checks
// the mids of commands with a response.
func (c *compiler) responses(s *Spec, d *Declarative, byName map[string]int) {
	for i := range s.Messages {
		ms, m := &s.Messages[i], &d.messages[i]
		if ms.ResponseMessage == "" || (m.kind != kCommand && m.kind != kReport) {
			continue
		}
		want := kResponse
		if m.kind == kReport {
			want = kReportResponse
			if !ms.AddResponse {
				continue
			}
		}
		j, ok := byName[ms.ResponseMessage]
		if !ok || d.messages[j].kind != want {
			wantName := KindResponse
			if want == kReportResponse {
				wantName = KindReportResponse
			}
			c.add(CodeUnknownResponse, m.name, "", "responseMessage %q is not a %s message of this codec", ms.ResponseMessage, wantName)
			continue
		}
		m.response = j
		if m.kind != kCommand {
			continue
		}
		r := &d.messages[j]
		if m.midIndex < 0 {
			c.add(CodeMissingMid, m.name, "", "the command has response %q but no mid field; mark an integer field \"mid\": true", r.name)
		}
		if r.midIndex < 0 {
			c.add(CodeMissingMid, r.name, "", "the command response of %q has no mid field; mark an integer field \"mid\": true", m.name)
		}
		if m.midIndex >= 0 && r.midIndex >= 0 && m.midIndex != r.midIndex {
			c.add(CodeMidPosition, r.name, r.fields[r.midIndex].name,
				"mid is field %d here but field %d in command %q; it must sit at the same position in both", r.midIndex+1, m.midIndex+1, m.name)
		}
	}
}

// direction checks the messageId rules of COD-3 for the messages of one
// direction (§9.2, §9.5).
func (c *compiler) direction(d *Declarative, idx []int, dir string) {
	if len(idx) < 2 {
		return
	}
	first := -1
	seen := map[uint64]string{}
	for _, i := range idx {
		m := &d.messages[i]
		if m.idIndex < 0 {
			c.add(CodeMissingMessageID, m.name, "", "there are %d %s messages, so each needs a messageId field at the same position", len(idx), dir)
			continue
		}
		if first < 0 {
			first = i
		} else if f := &d.messages[first]; f.idIndex != m.idIndex {
			c.add(CodeMessageIDPosition, m.name, m.fields[m.idIndex].name,
				"messageId is field %d here but field %d in %q; %s messages must have it at the same position", m.idIndex+1, f.idIndex+1, f.name, dir)
		}
		if !m.fields[m.idIndex].hasDef {
			continue
		}
		if other, dup := seen[m.id]; dup {
			c.add(CodeDuplicateMessageID, m.name, m.fields[m.idIndex].name,
				"messageId %d is also the id of %q; %s messages need distinct ids", m.id, other, dir)
		} else {
			seen[m.id] = m.name
		}
	}
}

func (c *compiler) commands(d *Declarative) {
	seen := map[string]string{}
	for i := range d.messages {
		m := &d.messages[i]
		if m.kind != kCommand || m.command == "" {
			continue
		}
		k := m.service + "\x00" + m.command
		if other, dup := seen[k]; dup {
			c.add(CodeDuplicateCommand, m.name, "", "command %s of service %s is also encoded by %q", m.command, m.service, other)
		} else {
			seen[k] = m.name
		}
	}
}

// model checks every data field against the product model (COD-3, §8.5).
func (c *compiler) model(d *Declarative, model Model) {
	rm, _ := model.(ResponseModel)
	check := func(m *message, f *field, what, dataType string, ok bool) {
		if !ok {
			c.add(CodeUnknownProperty, m.name, f.name, "the product model has no %s", what)
			return
		}
		good, known := accepts(dataType, f.class())
		switch {
		case !known:
			c.add(CodeTypeMismatch, m.name, f.name, "%s has dataType %q, which no codec field can feed", what, dataType)
		case !good:
			c.add(CodeTypeMismatch, m.name, f.name, "%s is %s, which cannot hold a %s field (%s); %s",
				what, dataType, f.class(), f.typName, allowedText(dataType))
		}
	}
	for i := range d.messages {
		m := &d.messages[i]
		if c.tick(1 + len(m.fields)) {
			return
		}
		for j := range m.fields {
			f := &m.fields[j]
			if f.role != roleData {
				continue
			}
			switch m.kind {
			case kReport:
				if f.service == "" {
					continue
				}
				dt, ok := model.PropertyType(f.service, f.name)
				check(m, f, fmt.Sprintf("property %s of service %s", f.name, f.service), dt, ok)
			case kCommand:
				if m.service == "" || m.command == "" {
					continue
				}
				dt, ok := model.ParaType(m.service, m.command, f.name)
				check(m, f, fmt.Sprintf("para %s of command %s of service %s", f.name, m.command, m.service), dt, ok)
			}
		}
		if m.kind != kCommand || m.response < 0 || rm == nil {
			continue
		}
		r := &d.messages[m.response]
		for j := range r.fields {
			f := &r.fields[j]
			if f.role != roleData {
				continue
			}
			dt, ok := rm.ResponseParaType(m.service, m.command, f.name)
			check(r, f, fmt.Sprintf("response para %s of command %s of service %s", f.name, m.command, m.service), dt, ok)
		}
	}
}

// trimHex drops a 0x or 0X prefix.
func trimHex(s string) string {
	return strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
}
