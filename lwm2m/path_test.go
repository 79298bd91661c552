package lwm2m

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// pathTests are the table of ParsePath (LWM-6: paths /o/i/r/ri). They
// also seed FuzzParsePath.
var pathTests = []struct {
	in     string
	ids    []uint16
	errOff int    // byte offset named by the error; -1 when parsing succeeds
	errHas string // part of the error message
}{
	{"/", nil, -1, ""},
	{"/3", []uint16{3}, -1, ""},
	{"/3/0", []uint16{3, 0}, -1, ""},
	{"/3/0/1", []uint16{3, 0, 1}, -1, ""},
	{"/3/0/6/1", []uint16{3, 0, 6, 1}, -1, ""},
	{"/65534/65534/65534/65534", []uint16{65534, 65534, 65534, 65534}, -1, ""},
	{"/19/1/0", []uint16{19, 1, 0}, -1, ""},
	{"", nil, 0, "empty"},
	{"3/0/1", nil, 0, "must start with '/'"},
	{"/3/x/1", nil, 3, `"x" is not a decimal number`},
	{"/3//1", nil, 3, "empty id"},
	{"/3/0/", nil, 5, "empty id"},
	{"//", nil, 1, "empty id"},
	{"/3/0/6/1/2", nil, 8, "more than 4 ids"},
	{"/65535", nil, 1, "above 65534"},
	{"/99999999999999999999", nil, 1, "above 65534"},
	{"/03", nil, 1, "leading zero"},
	{"/-1", nil, 1, "not a decimal number"},
	{"/+1", nil, 1, "not a decimal number"},
	{"/3/0 ", nil, 3, "not a decimal number"},
}

func TestParsePath(t *testing.T) {
	for _, tt := range pathTests {
		p, err := ParsePath(tt.in)
		if tt.errOff >= 0 {
			var pe *PathError
			require.ErrorAs(t, err, &pe, "ParsePath(%q)", tt.in)
			require.ErrorIs(t, err, ErrInvalidPath)
			require.Equal(t, tt.errOff, pe.Offset, "ParsePath(%q) error offset; error %v", tt.in, err)
			require.Contains(t, err.Error(), tt.errHas, "ParsePath(%q)", tt.in)
			require.Contains(t, err.Error(), "lwm2m: invalid path")
			continue
		}
		require.NoError(t, err, "ParsePath(%q)", tt.in)
		require.Equal(t, len(tt.ids), p.Len(), "ParsePath(%q).Len()", tt.in)
		require.Equal(t, Level(len(tt.ids)), p.Level())
		require.Equal(t, tt.ids, nilIfEmpty(p.IDs()), "ParsePath(%q).IDs()", tt.in)
		require.Equal(t, tt.in, p.String(), "ParsePath(%q).String()", tt.in)
		q, err := NewPath(tt.ids...)
		require.NoError(t, err)
		require.Equal(t, p, q, "NewPath(%v) == ParsePath(%q)", tt.ids, tt.in)
		segs := []string{}
		for _, id := range tt.ids {
			segs = append(segs, strconv.Itoa(int(id)))
		}
		q, err = ParsePathSegments(segs)
		require.NoError(t, err)
		require.Equal(t, p, q, "ParsePathSegments(%q)", segs)
	}
}

func nilIfEmpty(s []uint16) []uint16 {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestPathAccessors(t *testing.T) {
	p := MustPath("/3/0/6/1")
	o, ok := p.Object()
	require.True(t, ok)
	require.Equal(t, uint16(3), o)
	i, ok := p.Instance()
	require.True(t, ok)
	require.Equal(t, uint16(0), i)
	r, ok := p.Resource()
	require.True(t, ok)
	require.Equal(t, uint16(6), r)
	ri, ok := p.ResourceInstance()
	require.True(t, ok)
	require.Equal(t, uint16(1), ri)
	require.Equal(t, uint16(6), p.ID(2))
	require.Equal(t, LevelResourceInstance, p.Level())
	require.Equal(t, "resource instance", p.Level().String())

	_, ok = MustPath("/3").Instance()
	require.False(t, ok, "/3 has no instance")
	_, ok = RootPath.Object()
	require.False(t, ok, "/ has no object")
	require.True(t, RootPath.IsRoot())
	require.Equal(t, "/", Path{}.String(), "zero Path is the root")
	require.Panics(t, func() { MustPath("/3").ID(1) })
	require.Panics(t, func() { MustPath("/x") })

	require.Equal(t, MustPath("/3/0/6"), p.Parent())
	require.Equal(t, RootPath, MustPath("/3").Parent())
	require.Equal(t, RootPath, RootPath.Parent())

	c, err := MustPath("/3/0").Child(9)
	require.NoError(t, err)
	require.Equal(t, MustPath("/3/0/9"), c)
	_, err = p.Child(1)
	require.ErrorIs(t, err, ErrInvalidPath)
	_, err = MustPath("/3").Child(65535)
	require.ErrorIs(t, err, ErrInvalidPath)
	require.Contains(t, err.Error(), `"/3/65535" at byte 3`)

	_, err = NewPath(1, 2, 3, 4, 5)
	require.ErrorIs(t, err, ErrInvalidPath)
	_, err = NewPath(3, 65535)
	var pe *PathError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 3, pe.Offset, "offset of the second id in /3/65535")

	_, err = ParsePathSegments([]string{"3", "0", "x"})
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 5, pe.Offset, "offset of x in /3/0/x")
	_, err = ParsePathSegments([]string{"1", "2", "3", "4", "5"})
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 8, pe.Offset, "offset of 5 in /1/2/3/4/5")
	q, err := ParsePathSegments(nil)
	require.NoError(t, err)
	require.Equal(t, RootPath, q)
}

func TestPathContainsCompare(t *testing.T) {
	require.True(t, RootPath.Contains(MustPath("/3/0/1")))
	require.True(t, MustPath("/3").Contains(MustPath("/3/0/1")))
	require.True(t, MustPath("/3/0/1").Contains(MustPath("/3/0/1")))
	require.False(t, MustPath("/3/0/1").Contains(MustPath("/3/0")))
	require.False(t, MustPath("/3/1").Contains(MustPath("/3/0/1")))

	ps := []Path{MustPath("/4"), MustPath("/3/1"), MustPath("/3/0/1"), MustPath("/3"), MustPath("/3/0"), RootPath}
	slices.SortFunc(ps, Path.Compare)
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	require.Equal(t, []string{"/", "/3", "/3/0", "/3/0/1", "/3/1", "/4"}, got)

	m := map[Path]int{MustPath("/3/0/1"): 1}
	require.Equal(t, 1, m[MustPath("/3/0/1")], "Path works as a map key")
}

func TestPathJSON(t *testing.T) {
	b, err := json.Marshal(map[string]Path{"p": MustPath("/5/0/3")})
	require.NoError(t, err)
	require.JSONEq(t, `{"p":"/5/0/3"}`, string(b))
	var v struct{ P Path }
	require.NoError(t, json.Unmarshal([]byte(`{"P":"/19/0/0"}`), &v))
	require.Equal(t, MustPath("/19/0/0"), v.P)
	err = json.Unmarshal([]byte(`{"P":"/19/a"}`), &v)
	require.True(t, errors.Is(err, ErrInvalidPath), "json.Unmarshal of a bad path: %v", err)
}

func TestPathStringAllocs(t *testing.T) {
	p := MustPath("/3/0/6/1")
	var b []byte
	allocs := testing.AllocsPerRun(100, func() { b, _ = p.AppendText(b[:0]) })
	require.Zero(t, allocs, "Path.AppendText into a buffer with room")
}

// FuzzParsePath checks that ParsePath never panics, that every path it
// accepts prints back as the same text, and that errors carry an offset
// inside the input.
func FuzzParsePath(f *testing.F) {
	for _, tt := range pathTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			var pe *PathError
			if !errors.As(err, &pe) {
				t.Fatalf("ParsePath(%q) error %v is not a *PathError", s, err)
			}
			if pe.Offset < 0 || pe.Offset > len(s) {
				t.Fatalf("ParsePath(%q) error offset %d outside input", s, pe.Offset)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("ParsePath(%q).String() = %q", s, p.String())
		}
	})
}
