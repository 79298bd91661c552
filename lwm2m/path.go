package lwm2m

import (
	"strconv"
	"strings"
)

// MaxID is the largest object, instance, resource or resource-instance id.
// LwM2M reserves 65535 (MAX_ID) to mean "no id".
const MaxID = 65534

// Level is the depth of a Path: how many ids it has.
type Level uint8

// The levels of a Path.
const (
	LevelRoot             Level = iota // "/"
	LevelObject                        // "/3"
	LevelInstance                      // "/3/0"
	LevelResource                      // "/3/0/1"
	LevelResourceInstance              // "/3/0/6/1"
)

// String names the level ("root", "object", "object instance", "resource",
// "resource instance").
func (l Level) String() string {
	switch l {
	case LevelRoot:
		return "root"
	case LevelObject:
		return "object"
	case LevelInstance:
		return "object instance"
	case LevelResource:
		return "resource"
	case LevelResourceInstance:
		return "resource instance"
	}
	return "level " + strconv.Itoa(int(l))
}

// Path is an LwM2M path: the root, an object (/3), an object instance
// (/3/0), a resource (/3/0/1) or a resource instance (/3/0/6/1). Each id is
// 0..MaxID. The zero Path is the root "/".
//
// Path is a small comparable value: use it as a map key and compare it with
// ==.
type Path struct {
	ids [4]uint16
	n   uint8
}

// RootPath is the root path "/".
var RootPath = Path{}

// NewPath returns the path made of ids: none for the root, up to four for a
// resource instance. It fails for more than four ids or an id above MaxID.
func NewPath(ids ...uint16) (Path, error) {
	if len(ids) > 4 {
		return Path{}, &PathError{Input: joinIDs(ids), Reason: "has " + strconv.Itoa(len(ids)) +
			" ids; a path has at most 4 (/object/instance/resource/resource-instance)"}
	}
	var p Path
	for i, id := range ids {
		if id > MaxID {
			return Path{}, &PathError{Input: joinIDs(ids), Offset: offsetOfID(ids, i),
				Reason: "id 65535 is reserved (MAX_ID); ids are 0–65534"}
		}
		p.ids[i] = id
	}
	p.n = uint8(len(ids))
	return p, nil
}

// MustPath is like ParsePath but panics on error. It is meant for constant
// paths in programs and tests.
func MustPath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// ParsePath parses a path such as "/", "/3", "/3/0", "/3/0/1" or "/3/0/6/1".
// Ids are decimal numbers 0..MaxID without sign or leading zeros, so that
// String returns the text that was parsed. Errors are *PathError naming the
// byte offset of the problem.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return Path{}, &PathError{Input: s, Reason: "empty; want \"/\" or /object[/instance[/resource[/resource-instance]]]"}
	}
	if s[0] != '/' {
		return Path{}, &PathError{Input: s, Reason: "must start with '/'"}
	}
	if s == "/" {
		return Path{}, nil
	}
	var p Path
	off := 1
	for off <= len(s) {
		end := strings.IndexByte(s[off:], '/')
		if end < 0 {
			end = len(s)
		} else {
			end += off
		}
		if p.n == 4 {
			return Path{}, &PathError{Input: s, Offset: off - 1,
				Reason: "more than 4 ids; a path is /object/instance/resource/resource-instance"}
		}
		id, reason := parseID(s[off:end])
		if reason != "" {
			return Path{}, &PathError{Input: s, Offset: off, Reason: reason}
		}
		p.ids[p.n] = id
		p.n++
		off = end + 1
	}
	return p, nil
}

// ParsePathSegments builds a path from CoAP Uri-Path segments, as in
// ["3", "0", "1"] for /3/0/1. No segments is the root.
func ParsePathSegments(segs []string) (Path, error) {
	if len(segs) > 4 {
		return Path{}, &PathError{Input: "/" + strings.Join(segs, "/"),
			Offset: len(strings.Join(segs[:4], "/")) + 1,
			Reason: "more than 4 ids; a path is /object/instance/resource/resource-instance"}
	}
	var p Path
	off := 1
	for _, seg := range segs {
		id, reason := parseID(seg)
		if reason != "" {
			return Path{}, &PathError{Input: "/" + strings.Join(segs, "/"), Offset: off, Reason: reason}
		}
		p.ids[p.n] = id
		p.n++
		off += len(seg) + 1
	}
	return p, nil
}

// parseID parses one decimal id. It returns a reason when s is not one.
func parseID(s string) (uint16, string) {
	if s == "" {
		return 0, "empty id; want a decimal number 0–65534"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			return 0, "id " + strconv.Quote(s) + " is not a decimal number 0–65534"
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, "id " + strconv.Quote(s) + " has a leading zero; want a decimal number 0–65534"
	}
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
		if n > MaxID {
			return 0, "id " + strconv.Quote(s) + " is above 65534 (65535 is reserved)"
		}
	}
	return uint16(n), ""
}

// Level returns how many ids p has.
func (p Path) Level() Level { return Level(p.n) }

// Len returns how many ids p has (0 for the root, 4 for a resource instance).
func (p Path) Len() int { return int(p.n) }

// ID returns the i-th id of p (0 = object, 1 = instance, 2 = resource, 3 =
// resource instance). It panics if i >= p.Len().
func (p Path) ID(i int) uint16 {
	if i < 0 || i >= int(p.n) {
		panic("lwm2m: Path.ID(" + strconv.Itoa(i) + ") of " + p.String())
	}
	return p.ids[i]
}

// IDs returns the ids of p.
func (p Path) IDs() []uint16 { return append([]uint16(nil), p.ids[:p.n]...) }

// Object returns the object id and whether p has one.
func (p Path) Object() (uint16, bool) { return p.ids[0], p.n >= 1 }

// Instance returns the object instance id and whether p has one.
func (p Path) Instance() (uint16, bool) { return p.ids[1], p.n >= 2 }

// Resource returns the resource id and whether p has one.
func (p Path) Resource() (uint16, bool) { return p.ids[2], p.n >= 3 }

// ResourceInstance returns the resource instance id and whether p has one.
func (p Path) ResourceInstance() (uint16, bool) { return p.ids[3], p.n >= 4 }

// IsRoot reports whether p is the root "/".
func (p Path) IsRoot() bool { return p.n == 0 }

// Parent returns p without its last id. The parent of the root is the root.
func (p Path) Parent() Path {
	if p.n == 0 {
		return p
	}
	q := p
	q.n--
	q.ids[q.n] = 0
	return q
}

// Child returns p with id appended. It fails when p is already a resource
// instance or id is above MaxID.
func (p Path) Child(id uint16) (Path, error) {
	if p.n == 4 {
		return Path{}, &PathError{Input: p.String() + "/" + strconv.Itoa(int(id)), Offset: len(p.String()),
			Reason: "a resource instance has no children; a path has at most 4 ids"}
	}
	if id > MaxID {
		s := p.String()
		if p.n == 0 {
			s = ""
		}
		return Path{}, &PathError{Input: s + "/" + strconv.Itoa(int(id)), Offset: len(s) + 1,
			Reason: "id 65535 is reserved (MAX_ID); ids are 0–65534"}
	}
	q := p
	q.ids[q.n] = id
	q.n++
	return q, nil
}

// Contains reports whether q is p or lies below p: /3 contains /3/0/1, and
// the root contains every path.
func (p Path) Contains(q Path) bool {
	if q.n < p.n {
		return false
	}
	return equalIDs(p.ids[:p.n], q.ids[:p.n])
}

func equalIDs(a, b []uint16) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Compare orders paths by their ids, a parent before its children: /3 <
// /3/0 < /3/0/1 < /3/1 < /4. It returns -1, 0 or +1.
func (p Path) Compare(q Path) int {
	for i := 0; i < int(min(p.n, q.n)); i++ {
		if p.ids[i] != q.ids[i] {
			if p.ids[i] < q.ids[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case p.n < q.n:
		return -1
	case p.n > q.n:
		return 1
	}
	return 0
}

// String returns the path as text: "/" for the root, "/3/0/1" otherwise.
func (p Path) String() string {
	if p.n == 0 {
		return "/"
	}
	var buf [24]byte
	return string(p.appendText(buf[:0]))
}

func (p Path) appendText(b []byte) []byte {
	if p.n == 0 {
		return append(b, '/')
	}
	for i := 0; i < int(p.n); i++ {
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(p.ids[i]), 10)
	}
	return b
}

// AppendText appends the text of p to b (encoding.TextAppender). It never
// fails.
func (p Path) AppendText(b []byte) ([]byte, error) { return p.appendText(b), nil }

// MarshalText returns the text of p (encoding.TextMarshaler), so a Path
// appears as "/3/0/1" in JSON. It never fails.
func (p Path) MarshalText() ([]byte, error) { return p.appendText(nil), nil }

// UnmarshalText parses text with ParsePath (encoding.TextUnmarshaler).
func (p *Path) UnmarshalText(text []byte) error {
	q, err := ParsePath(string(text))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

func joinIDs(ids []uint16) string {
	var b []byte
	for _, id := range ids {
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	if len(b) == 0 {
		return "/"
	}
	return string(b)
}

// offsetOfID returns the byte offset of the i-th id in joinIDs(ids).
func offsetOfID(ids []uint16, i int) int {
	off := 1
	for _, id := range ids[:i] {
		off += len(strconv.Itoa(int(id))) + 1
	}
	return off
}
