package lwm2m

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// linkTests are the table of ParseLinks (LWM-3 registration bodies,
// LWM-6 content format 40). They also seed FuzzParseLinks.
var linkTests = []struct {
	name   string
	in     string
	want   []Link
	errOff int // byte offset of the error; -1 when parsing succeeds
	errHas string
}{
	{name: "empty", in: "", want: nil, errOff: -1},
	{name: "registration with root and version",
		in: `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</19/0>;ver=1.0`,
		want: []Link{
			{Target: "/", Attrs: []LinkAttr{{Name: "rt", Value: "oma.lwm2m", Quoted: true}, {Name: "ct", Value: "11543"}}},
			{Target: "/1/0"}, {Target: "/3/0"},
			{Target: "/19/0", Attrs: []LinkAttr{{Name: "ver", Value: "1.0"}}},
		}, errOff: -1},
	{name: "LwM2M 1.1 ct list and object without instance",
		in: `</>;rt="oma.lwm2m";ct="60 110 112 11542",</1>;ver=1.1,</1/0>,</3/0>,</5>`,
		want: []Link{
			{Target: "/", Attrs: []LinkAttr{{Name: "rt", Value: "oma.lwm2m", Quoted: true}, {Name: "ct", Value: "60 110 112 11542", Quoted: true}}},
			{Target: "/1", Attrs: []LinkAttr{{Name: "ver", Value: "1.1"}}},
			{Target: "/1/0"}, {Target: "/3/0"}, {Target: "/5"},
		}, errOff: -1},
	{name: "discover answer with attributes",
		in: `</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/7>;dim=8;obs`,
		want: []Link{
			{Target: "/3/0", Attrs: []LinkAttr{{Name: "pmin", Value: "10"}, {Name: "pmax", Value: "60"}}},
			{Target: "/3/0/1"},
			{Target: "/3/0/7", Attrs: []LinkAttr{{Name: "dim", Value: "8"}, {Name: "obs"}}},
		}, errOff: -1},
	{name: "escaped quote and empty quoted value",
		in: `</a>;title="say \"hi\", then \\ go";x=""`,
		want: []Link{{Target: "/a", Attrs: []LinkAttr{
			{Name: "title", Value: `say "hi", then \ go`, Quoted: true}, {Name: "x", Value: "", Quoted: true}}}},
		errOff: -1},
	{name: "trailing NUL and newline tolerated", in: "</1/0>,</3/0>\x00\r\n",
		want: []Link{{Target: "/1/0"}, {Target: "/3/0"}}, errOff: -1},
	{name: "ptoken with odd characters", in: `</x>;a=b<c>=d/e:f`,
		want: []Link{{Target: "/x", Attrs: []LinkAttr{{Name: "a", Value: "b<c>=d/e:f"}}}}, errOff: -1},

	{name: "missing <", in: `/1/0`, errOff: 0, errHas: "want '<'"},
	{name: "no closing >", in: `</1/0>,</3/0`, errOff: 7, errHas: "no closing '>'"},
	{name: "space after comma", in: `</1/0>, </3/0>`, errOff: 7, errHas: "want '<'"},
	{name: "trailing comma", in: `</1/0>,`, errOff: 7, errHas: "end of payload"},
	{name: "garbage after link", in: `</1/0>x`, errOff: 6, errHas: "want ',' or ';'"},
	{name: "empty attribute name", in: `</1/0>;=3`, errOff: 7, errHas: "attribute name"},
	{name: "attribute at end", in: `</1/0>;`, errOff: 7, errHas: "end of payload"},
	{name: "value missing", in: `</1/0>;ver=`, errOff: 11, errHas: `attribute "ver": want a value`},
	{name: "value bad byte", in: `</1/0>;ver=,`, errOff: 11, errHas: `want a value`},
	{name: "unterminated quote", in: `</>;rt="oma.lwm2m`, errOff: 7, errHas: "no closing"},
	{name: "backslash at end", in: `</>;rt="oma\`, errOff: 11, errHas: "backslash"},
	{name: "control byte in quote", in: "</>;rt=\"a\x01\"", errOff: 9, errHas: "control byte"},
	{name: "space in target", in: `</1 0>`, errOff: 3, errHas: "not allowed in a link target"},
}

func TestParseLinks(t *testing.T) {
	for _, tt := range linkTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLinks([]byte(tt.in))
			if tt.errOff >= 0 {
				var de *DecodeError
				require.ErrorAs(t, err, &de, "ParseLinks(%q)", tt.in)
				require.ErrorIs(t, err, ErrMalformed)
				require.Equal(t, FormatLink, de.Format)
				require.Equal(t, tt.errOff, de.Offset, "ParseLinks(%q) error offset; error %v", tt.in, err)
				require.Contains(t, err.Error(), tt.errHas)
				require.Contains(t, err.Error(), "application/link-format")
				return
			}
			require.NoError(t, err, "ParseLinks(%q)", tt.in)
			require.Equal(t, tt.want, got, "ParseLinks(%q)", tt.in)
			// Encoding what was parsed gives back the input (less what
			// ParseLinks tolerates at the end).
			want := strings.TrimRight(tt.in, "\x00\r\n\t ")
			require.Equal(t, want, string(AppendLinks(nil, got)), "AppendLinks(ParseLinks(%q))", tt.in)
		})
	}
}

func TestAppendLinksQuoting(t *testing.T) {
	links := []Link{{Target: "/3/0", Attrs: []LinkAttr{
		{Name: "a", Value: "x,y"},       // ',' forces quotes
		{Name: "b", Value: `q"\`},       // escapes
		{Name: "c", Value: "plain"},     // ptoken
		{Name: "d"},                     // no value
		{Name: "e", Quoted: true},       // empty quoted
		{Name: "f", Value: "has space"}, // space forces quotes
		{Name: "g", Value: "a\nb\x7f"},  // control bytes are escaped
	}}}
	s := string(AppendLinks([]byte("prefix:"), links))
	require.Equal(t, "prefix:</3/0>;a=\"x,y\";b=\"q\\\"\\\\\";c=plain;d;e=\"\";f=\"has space\";g=\"a\\\nb\\\x7f\"", s)
	back, err := ParseLinks([]byte(s[len("prefix:"):]))
	require.NoError(t, err)
	require.Equal(t, "x,y", back[0].Attrs[0].Value)
	require.Equal(t, `q"\`, back[0].Attrs[1].Value)
	require.Equal(t, "a\nb\x7f", back[0].Attrs[6].Value, "escaped control bytes read back")
	v, ok := back[0].Attr("F")
	require.True(t, ok, "Attr is case-insensitive")
	require.Equal(t, "has space", v)
	_, ok = back[0].Attr("zz")
	require.False(t, ok)
	require.Equal(t, `</3/0>;c=plain`, Link{Target: "/3/0", Attrs: []LinkAttr{{Name: "c", Value: "plain"}}}.String())
}

// TestParseClientObjects covers the registration body semantics of LwM2M
// 1.1 Core §6.2.1 (LWM-3): root link, ct list, alternate path,
// objects with and without instances, versions.
func TestParseClientObjects(t *testing.T) {
	c, err := ParseClientObjects([]byte(`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</19/0>;ver=1.0,</19/1>,</5>,</3/0>`))
	require.NoError(t, err)
	require.Equal(t, ClientObjects{
		RootPath: "/",
		Formats:  []Format{FormatJSON},
		Objects: []ObjectLink{
			{ID: 1, Instances: []uint16{0}},
			{ID: 3, Instances: []uint16{0}},
			{ID: 5},
			{ID: 19, Version: "1.0", Instances: []uint16{0, 1}},
		},
	}, c)
	require.True(t, c.Has(MustPath("/19/1")))
	require.True(t, c.Has(MustPath("/19/1/0")), "a resource of an announced instance")
	require.True(t, c.Has(MustPath("/5")))
	require.False(t, c.Has(MustPath("/5/0")))
	require.False(t, c.Has(MustPath("/4")))
	require.False(t, c.Has(RootPath))
	o, ok := c.Object(19)
	require.True(t, ok)
	require.Equal(t, "1.0", o.Version)
	_, ok = c.Object(2)
	require.False(t, ok)
	require.Equal(t, []Path{MustPath("/1/0"), MustPath("/3/0"), MustPath("/5"), MustPath("/19/0"), MustPath("/19/1")}, c.Paths())

	// LwM2M 1.1: ct as a quoted list, ver on the object link, alternate path.
	c, err = ParseClientObjects([]byte(`</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11542",</lwm2m/1>;ver=1.1,</lwm2m/1/101>,</lwm2m/3/0>`))
	require.NoError(t, err)
	require.Equal(t, "/lwm2m", c.RootPath)
	require.Equal(t, []Format{60, FormatSenMLJSON, FormatSenMLCBOR, FormatTLV}, c.Formats)
	require.Equal(t, []ObjectLink{{ID: 1, Version: "1.1", Instances: []uint16{101}}, {ID: 3, Instances: []uint16{0}}}, c.Objects)

	// LwM2M 1.0 body without a root link.
	c, err = ParseClientObjects([]byte(`</1/0>,</3/0>,</19/0>`))
	require.NoError(t, err)
	require.Equal(t, "/", c.RootPath)
	require.Nil(t, c.Formats)
	require.Len(t, c.Objects, 3)

	c, err = ParseClientObjects(nil)
	require.NoError(t, err)
	require.Empty(t, c.Objects)
}

func TestParseClientObjectsErrors(t *testing.T) {
	for _, tt := range []struct {
		in     string
		off    int
		errHas string
	}{
		{`</1/0>,</3/0/1>`, 7, "is a resource; a registration announces objects"},
		{`</1/0>,</x/0>`, 7, "not an object or object instance"},
		{`</lwm2m>;rt="oma.lwm2m",</1/0>`, 24, `not below the root path "/lwm2m"`},
		{`</>;rt="oma.lwm2m",</a>;rt="oma.lwm2m"`, 19, "second link"},
		{`</>;rt="oma.lwm2m";ct="60 x",</1/0>`, 0, `ct value "x"`},
		{`<a>;rt="oma.lwm2m"`, 0, "root path must start with '/'"},
		{`</1/0>,</3/0`, 7, "no closing '>'"},
	} {
		_, err := ParseClientObjects([]byte(tt.in))
		var de *DecodeError
		require.ErrorAs(t, err, &de, "ParseClientObjects(%q)", tt.in)
		require.ErrorIs(t, err, ErrMalformed)
		require.Equal(t, tt.off, de.Offset, "ParseClientObjects(%q) offset; error %v", tt.in, err)
		require.Contains(t, err.Error(), tt.errHas)
	}
	_, err := ParseClientObjects([]byte(`</3/65535>`))
	require.ErrorIs(t, err, ErrInvalidPath, "the path error is wrapped")
}

// TestParseLinksAllocationBound checks that memory follows the links
// actually parsed: a payload of commas fails at once without allocating for
// the links it seems to announce, and a long valid body allocates in
// proportion to its size.
func TestParseLinksAllocationBound(t *testing.T) {
	commas := []byte("<" + strings.Repeat(",", 65536))
	allocated := bytesAllocated(func() { _, _ = ParseLinks(commas) })
	require.Less(t, allocated, uint64(1024), "ParseLinks of 64 KiB of commas allocated %d bytes", allocated)

	in := []byte(strings.Repeat("</1/0>,", 1000) + "</1/0>")
	links, err := ParseLinks(in)
	require.NoError(t, err)
	require.Len(t, links, 1001)
	allocated = bytesAllocated(func() { _, _ = ParseLinks(in) })
	require.Less(t, allocated, uint64(40*len(in)), "ParseLinks of %d bytes allocated %d bytes", len(in), allocated)
}

// FuzzParseLinks checks that ParseLinks never panics, that what it parses
// re-encodes to something that parses to the same links, and that errors
// carry an offset inside the input. ParseClientObjects runs on the same
// input and must not panic either.
func FuzzParseLinks(f *testing.F) {
	for _, tt := range linkTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseClientObjects(b)
		links, err := ParseLinks(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("ParseLinks(%q) error %v: want *DecodeError with offset in 0..%d", b, err, len(b))
			}
			return
		}
		enc := AppendLinks(nil, links)
		back, err := ParseLinks(enc)
		if err != nil {
			t.Fatalf("ParseLinks(AppendLinks(ParseLinks(%q))) = %v; encoded %q", b, err, enc)
		}
		if len(back) != len(links) {
			t.Fatalf("round trip of %q: %d links, then %d", b, len(links), len(back))
		}
		for i := range links {
			if links[i].Target != back[i].Target || len(links[i].Attrs) != len(back[i].Attrs) {
				t.Fatalf("round trip of %q: link %d %v became %v", b, i, links[i], back[i])
			}
			for j := range links[i].Attrs {
				a, c := links[i].Attrs[j], back[i].Attrs[j]
				if a.Name != c.Name || a.Value != c.Value {
					t.Fatalf("round trip of %q: attr %v became %v", b, a, c)
				}
			}
		}
	})
}
