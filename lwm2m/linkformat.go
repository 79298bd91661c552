package lwm2m

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Link is one link-value of the CoRE link format (RFC 6690 §2): a target
// URI in angle brackets followed by attributes, as in
// `</3/0>;ver=1.0` or `</>;rt="oma.lwm2m";ct=11543`.
type Link struct {
	Target string     // the URI-Reference between < and >, e.g. "/3/0"
	Attrs  []LinkAttr // attributes in the order they appear
}

// LinkAttr is one link-param of a Link.
//
// An attribute without a value (`;obs`) has Value "" and Quoted false. An
// empty quoted value (`;title=""`) has Value "" and Quoted true.
type LinkAttr struct {
	Name   string // parmname, e.g. "rt", "ct", "ver"
	Value  string // value with quotes and backslash escapes removed
	Quoted bool   // the value is (or is to be) written as a quoted-string
}

// Attr returns the value of the first attribute named name (compared
// without regard to case, as RFC 6690 parmnames are) and whether there is
// one.
func (l Link) Attr(name string) (string, bool) {
	for _, a := range l.Attrs {
		if strings.EqualFold(a.Name, name) {
			return a.Value, true
		}
	}
	return "", false
}

// String returns the link in link format.
func (l Link) String() string { return string(appendLink(nil, l)) }

// ParseLinks parses a CoRE link-format payload (content format 40, RFC 6690
// §2), such as the body of an LwM2M registration:
//
//	</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</19/0>;ver=1.0
//
// Attribute values are quoted-strings (backslash escapes are removed) or
// ptokens. Following RFC 6690 strictly, there is no whitespace between
// links; the package only tolerates trailing whitespace and NUL bytes at the
// end of the payload, which some C clients send. An empty payload has no
// links. Errors are *DecodeError with the byte offset of the problem.
func ParseLinks(b []byte) ([]Link, error) {
	links, _, err := parseLinks(b)
	return links, err
}

// parseLinks is ParseLinks that also returns the byte offset of each link.
func parseLinks(b []byte) ([]Link, []int, error) {
	end := len(b)
	for end > 0 && (b[end-1] == 0 || b[end-1] == ' ' || b[end-1] == '\t' || b[end-1] == '\r' || b[end-1] == '\n') {
		end--
	}
	b = b[:end]
	if len(b) == 0 {
		return nil, nil, nil
	}
	// The slices grow with the links actually parsed, never with what the
	// payload seems to announce (a run of commas is not a run of links).
	var links []Link
	var offs []int
	p := linkParser{b: b}
	for {
		start := p.off
		l, err := p.link()
		if err != nil {
			return nil, nil, err
		}
		links = append(links, l)
		offs = append(offs, start)
		if p.off == len(b) {
			return links, offs, nil
		}
		if b[p.off] != ',' {
			return nil, nil, p.errorf("want ',' or ';' after link <%s>, got %q", l.Target, b[p.off])
		}
		p.off++
	}
}

type linkParser struct {
	b   []byte
	off int
}

func (p *linkParser) errorf(format string, args ...any) *DecodeError {
	return &DecodeError{Format: FormatLink, Offset: p.off, Reason: fmt.Sprintf(format, args...)}
}

func (p *linkParser) link() (Link, error) {
	if p.off >= len(p.b) {
		return Link{}, p.errorf("want '<' starting a link, got end of payload")
	}
	if p.b[p.off] != '<' {
		return Link{}, p.errorf("want '<' starting a link, got %q", p.b[p.off])
	}
	p.off++
	start := p.off
	for p.off < len(p.b) && p.b[p.off] != '>' {
		c := p.b[p.off]
		if c <= ' ' || c == 0x7f || c == '<' || c == '"' {
			return Link{}, p.errorf("byte %q is not allowed in a link target", c)
		}
		p.off++
	}
	if p.off == len(p.b) {
		return Link{}, &DecodeError{Format: FormatLink, Offset: start - 1, Reason: "link target has no closing '>'"}
	}
	l := Link{Target: string(p.b[start:p.off])}
	p.off++
	for p.off < len(p.b) && p.b[p.off] == ';' {
		p.off++
		a, err := p.attr()
		if err != nil {
			return Link{}, err
		}
		l.Attrs = append(l.Attrs, a)
	}
	return l, nil
}

func (p *linkParser) attr() (LinkAttr, error) {
	start := p.off
	for p.off < len(p.b) && isParmNameChar(p.b[p.off]) {
		p.off++
	}
	if p.off == start {
		if p.off == len(p.b) {
			return LinkAttr{}, p.errorf("want an attribute name after ';', got end of payload")
		}
		return LinkAttr{}, p.errorf("want an attribute name (letters, digits, !#$&+-.^_`|~) after ';', got %q", p.b[p.off])
	}
	a := LinkAttr{Name: string(p.b[start:p.off])}
	if p.off == len(p.b) || p.b[p.off] != '=' {
		return a, nil
	}
	p.off++
	if p.off < len(p.b) && p.b[p.off] == '"' {
		v, err := p.quoted()
		if err != nil {
			return LinkAttr{}, err
		}
		a.Value, a.Quoted = v, true
		return a, nil
	}
	start = p.off
	for p.off < len(p.b) && isPTokenChar(p.b[p.off]) {
		p.off++
	}
	if p.off == start {
		if p.off == len(p.b) {
			return LinkAttr{}, p.errorf("attribute %q: want a value after '=', got end of payload", a.Name)
		}
		return LinkAttr{}, p.errorf("attribute %q: want a value (a token or a quoted string) after '=', got %q", a.Name, p.b[p.off])
	}
	a.Value = string(p.b[start:p.off])
	return a, nil
}

// quoted parses a quoted-string starting at the opening quote.
func (p *linkParser) quoted() (string, error) {
	open := p.off
	p.off++
	var sb []byte
	start := p.off
	for p.off < len(p.b) {
		c := p.b[p.off]
		switch {
		case c == '"':
			var v string
			if sb == nil {
				v = string(p.b[start:p.off])
			} else {
				v = string(sb)
			}
			p.off++
			return v, nil
		case c == '\\':
			if sb == nil {
				sb = append([]byte(nil), p.b[start:p.off]...)
			}
			if p.off+1 == len(p.b) {
				return "", p.errorf("backslash at end of payload inside a quoted string")
			}
			// quoted-pair = "\" CHAR (RFC 2616 §2.2, which RFC 6690
			// cites): a control byte may be escaped, never bare.
			sb = append(sb, p.b[p.off+1])
			p.off += 2
		case c < ' ' && c != '\t' || c == 0x7f:
			return "", p.errorf("control byte %q inside a quoted string", c)
		default:
			if sb != nil {
				sb = append(sb, c)
			}
			p.off++
		}
	}
	return "", &DecodeError{Format: FormatLink, Offset: open, Reason: "quoted string has no closing '\"'"}
}

// isParmNameChar reports whether c may appear in a parmname (RFC 6690 §2,
// RFC 5987 attr-char without '*').
func isParmNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// isPTokenChar reports whether c may appear in an unquoted value (RFC 6690
// §2 ptokenchar).
func isPTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'()*+-./:<=>?@[]^_`{|}~", c) >= 0
}

// AppendLinks appends links in link format to dst, separated by commas.
// A value is quoted when LinkAttr.Quoted says so or when it is empty or
// holds a byte a ptoken may not (such as ',', ';', space or '"'); inside
// the quotes '"', '\\' and control bytes are escaped with a backslash, so
// ParseLinks reads back every value.
func AppendLinks(dst []byte, links []Link) []byte {
	for i, l := range links {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendLink(dst, l)
	}
	return dst
}

func appendLink(dst []byte, l Link) []byte {
	dst = append(dst, '<')
	dst = append(dst, l.Target...)
	dst = append(dst, '>')
	for _, a := range l.Attrs {
		dst = append(dst, ';')
		dst = append(dst, a.Name...)
		if a.Value == "" && !a.Quoted {
			continue
		}
		dst = append(dst, '=')
		if !a.Quoted && isPToken(a.Value) {
			dst = append(dst, a.Value...)
			continue
		}
		dst = append(dst, '"')
		for i := 0; i < len(a.Value); i++ {
			if c := a.Value[i]; c == '"' || c == '\\' || c < ' ' || c == 0x7f {
				dst = append(dst, '\\') // quoted-pair; control bytes may not stand bare
			}
			dst = append(dst, a.Value[i])
		}
		dst = append(dst, '"')
	}
	return dst
}

func isPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isPTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// ClientObjects is what an LwM2M client announces in the link-format body
// of its registration or registration update (LwM2M 1.1 Core §6.2.1): the
// root path of its objects, the content formats it supports, and its
// objects with their instances and versions.
type ClientObjects struct {
	// RootPath is the alternate path announced with rt="oma.lwm2m" (such
	// as "/lwm2m"), or "/" when the client announced none.
	RootPath string
	// Formats are the content formats of the ct attribute of the root
	// link, in the order given; nil when none were announced.
	Formats []Format
	// Objects are the announced objects, ordered by id.
	Objects []ObjectLink
}

// ObjectLink is one object announced at registration.
type ObjectLink struct {
	ID        uint16   // object id
	Version   string   // the ver attribute, "" when absent (meaning 1.0)
	Instances []uint16 // announced instances in ascending order; empty for `</5>`
}

// Object returns the announced object with id and whether there is one.
func (c ClientObjects) Object(id uint16) (ObjectLink, bool) {
	i, ok := slices.BinarySearchFunc(c.Objects, id, func(o ObjectLink, id uint16) int { return int(o.ID) - int(id) })
	if !ok {
		return ObjectLink{}, false
	}
	return c.Objects[i], true
}

// Has reports whether the client announced the object instance of p (for
// a path of two or more levels) or the object (for a one-level path).
func (c ClientObjects) Has(p Path) bool {
	obj, ok := p.Object()
	if !ok {
		return false
	}
	o, ok := c.Object(obj)
	if !ok {
		return false
	}
	inst, ok := p.Instance()
	if !ok {
		return true
	}
	_, found := slices.BinarySearch(o.Instances, inst)
	return found
}

// Paths returns the announced object instances as paths (/1/0, /3/0, …),
// and objects without instances as one-level paths (/5).
func (c ClientObjects) Paths() []Path {
	var ps []Path
	for _, o := range c.Objects {
		if len(o.Instances) == 0 {
			ps = append(ps, Path{ids: [4]uint16{o.ID}, n: 1})
		}
		for _, i := range o.Instances {
			ps = append(ps, Path{ids: [4]uint16{o.ID, i}, n: 2})
		}
	}
	return ps
}

// ParseClientObjects parses the link-format body of a registration or
// registration update (see ParseLinks) and interprets its links: an
// optional root link with rt="oma.lwm2m" (its target becomes RootPath and
// its ct attribute, a number or a quoted space-separated list as in
// ct="60 110 112 11543", becomes Formats), then links to objects (</5>) and
// object instances (</3/0>) below the root path, with an optional ver
// attribute. Links repeated are merged. A link whose target is not an
// object or object instance below the root path is a *DecodeError naming
// the target and its byte offset.
func ParseClientObjects(body []byte) (ClientObjects, error) {
	links, offs, err := parseLinks(body)
	if err != nil {
		return ClientObjects{}, err
	}
	c := ClientObjects{RootPath: "/"}
	rootIdx := -1
	for i, l := range links {
		if rt, ok := l.Attr("rt"); ok && hasToken(rt, "oma.lwm2m") {
			if rootIdx >= 0 {
				return ClientObjects{}, &DecodeError{Format: FormatLink, Path: "<" + l.Target + ">", Offset: offs[i],
					Reason: "second link with rt=\"oma.lwm2m\"; a client has one root"}
			}
			rootIdx = i
			if !strings.HasPrefix(l.Target, "/") {
				return ClientObjects{}, &DecodeError{Format: FormatLink, Path: "<" + l.Target + ">", Offset: offs[i],
					Reason: "root path must start with '/'"}
			}
			c.RootPath = l.Target
			if len(c.RootPath) > 1 {
				c.RootPath = strings.TrimSuffix(c.RootPath, "/")
			}
			if ct, ok := l.Attr("ct"); ok {
				for _, f := range strings.Fields(ct) {
					n, err := strconv.ParseUint(f, 10, 16)
					if err != nil {
						return ClientObjects{}, &DecodeError{Format: FormatLink, Path: "<" + l.Target + ">", Offset: offs[i],
							Reason: "ct value " + strconv.Quote(f) + " is not a content-format number 0–65535"}
					}
					c.Formats = append(c.Formats, Format(n))
				}
			}
		}
	}
	prefix := ""
	if c.RootPath != "/" {
		prefix = c.RootPath
	}
	byID := map[uint16]int{}
	for i, l := range links {
		if i == rootIdx {
			continue
		}
		if l.Target == "/" || l.Target == c.RootPath {
			continue // a bare root link without rt carries nothing
		}
		rest, ok := strings.CutPrefix(l.Target, prefix)
		if !ok || !strings.HasPrefix(rest, "/") {
			return ClientObjects{}, &DecodeError{Format: FormatLink, Path: "<" + l.Target + ">", Offset: offs[i],
				Reason: "link target is not below the root path " + strconv.Quote(c.RootPath)}
		}
		p, err := ParsePath(rest)
		if err != nil {
			return ClientObjects{}, &DecodeError{Format: FormatLink, Path: "<" + l.Target + ">", Offset: offs[i],
				Reason: "link target is not an object or object instance", Err: err}
		}
		if p.n != 1 && p.n != 2 {
			return ClientObjects{}, &DecodeError{Format: FormatLink, Path: "<" + l.Target + ">", Offset: offs[i],
				Reason: "link target is a " + p.Level().String() + "; a registration announces objects (</3>) and object instances (</3/0>)"}
		}
		j, seen := byID[p.ids[0]]
		if !seen {
			j = len(c.Objects)
			byID[p.ids[0]] = j
			c.Objects = append(c.Objects, ObjectLink{ID: p.ids[0]})
		}
		if v, ok := l.Attr("ver"); ok {
			c.Objects[j].Version = v
		}
		if p.n == 2 {
			c.Objects[j].Instances = append(c.Objects[j].Instances, p.ids[1])
		}
	}
	slices.SortFunc(c.Objects, func(a, b ObjectLink) int { return int(a.ID) - int(b.ID) })
	for i := range c.Objects {
		slices.Sort(c.Objects[i].Instances)
		c.Objects[i].Instances = slices.Compact(c.Objects[i].Instances)
	}
	return c, nil
}

func hasToken(list, tok string) bool {
	for _, f := range strings.Fields(list) {
		if f == tok {
			return true
		}
	}
	return false
}
