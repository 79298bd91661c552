package lwm2m

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ddf")

// dumpObjects writes object definitions as a plain table for golden files.
func dumpObjects(defs []ObjectDef) string {
	var b strings.Builder
	for _, o := range defs {
		fmt.Fprintf(&b, "object %d %q version=%s lwm2m=%s urn=%s multiple=%t mandatory=%t\n",
			o.ID, o.Name, o.Version, o.LwM2MVersion, o.URN, o.Multiple, o.Mandatory)
		for _, r := range o.Resources {
			fmt.Fprintf(&b, "  %5d %-45q ops=%-2s multiple=%-5t mandatory=%-5t type=%-16s range=%q units=%q\n",
				r.ID, r.Name, r.Operations, r.Multiple, r.Mandatory, r.Type, r.Range, r.Units)
		}
	}
	return b.String()
}

// TestParseDDFGolden loads each DDF XML file of testdata/ddf and compares
// the object table with its golden file (go test -update rewrites them).
// LWM-6: object definitions load from OMA DDF XML.
func TestParseDDFGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/ddf/*.xml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		defs, err := ParseDDF(data, filepath.Base(file))
		require.NoError(t, err, "ParseDDF(%s)", file)
		got := dumpObjects(defs)
		golden := strings.TrimSuffix(file, ".xml") + ".golden"
		if *update {
			require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
		}
		want, err := os.ReadFile(golden)
		require.NoError(t, err, "golden file; run go test -update to create it")
		require.Equal(t, string(want), got, "ParseDDF(%s) against %s", file, golden)
	}
}

// TestBuiltinMatchesDDF checks that the built-in objects 3 and 19 and
// their DDF XML files in testdata/ddf describe the same resources.
func TestBuiltinMatchesDDF(t *testing.T) {
	reg := NewBuiltinObjects()
	for _, id := range []uint16{3, 19} {
		data, err := os.ReadFile(fmt.Sprintf("testdata/ddf/%d.xml", id))
		require.NoError(t, err)
		defs, err := ParseDDF(data, "x")
		require.NoError(t, err)
		b, ok := reg.Object(id)
		require.True(t, ok)
		require.Equal(t, dumpObjects([]ObjectDef{*b}), dumpObjects(defs), "object %d", id)
	}
}

// TestBuiltinObjects checks the built-in table: objects 0, 1, 3, 4, 5, 19
// (LWM-6), object 5 as in LwM2M 1.1 (Update Result 0–9, State 0–3),
// object 19's Data an opaque multiple resource.
func TestBuiltinObjects(t *testing.T) {
	reg := NewBuiltinObjects()
	require.Equal(t, []uint16{0, 1, 3, 4, 5, 19}, reg.IDs())
	for _, o := range BuiltinObjects() {
		require.NoError(t, o.validate("builtin"), "object %d", o.ID)
		require.NotEmpty(t, o.Name)
		for _, r := range o.Resources {
			require.NotEmpty(t, r.Name, "object %d resource %d", o.ID, r.ID)
			if r.Operations == OpExecute {
				require.Equal(t, TypeNone, r.Type, "executable /%d/x/%d has no type", o.ID, r.ID)
			}
		}
	}
	state, ok := reg.Resource(ObjectFirmware, FirmwareState)
	require.True(t, ok)
	require.Equal(t, "0..3", state.Range)
	require.Equal(t, TypeInteger, state.Type)
	result, ok := reg.Resource(ObjectFirmware, FirmwareUpdateResult)
	require.True(t, ok)
	require.Equal(t, "0..9", result.Range)
	require.Contains(t, result.Description, "9 unsupported protocol")
	require.Equal(t, 9, FirmwareResultUnsupportedProtocol)
	uri, _ := reg.Resource(ObjectFirmware, FirmwarePackageURI)
	require.Equal(t, TypeString, uri.Type)
	require.Equal(t, OpRead|OpWrite, uri.Operations)
	upd, _ := reg.Resource(ObjectFirmware, FirmwareUpdate)
	require.Equal(t, OpExecute, upd.Operations)
	data, ok := reg.Resource(ObjectBinaryAppData, 0)
	require.True(t, ok)
	require.Equal(t, TypeOpaque, data.Type)
	require.True(t, data.Multiple)
	o19, _ := reg.Object(ObjectBinaryAppData)
	require.True(t, o19.Multiple, "object 19 has instances 0 (uplink) and 1 (downlink)")
	o0, _ := reg.Object(ObjectSecurity)
	require.Equal(t, "1.1", o0.Version)

	// BuiltinObjects returns copies: changing one does not change the registry.
	objs := BuiltinObjects()
	objs[0].Resources[0].Name = "changed"
	sec, _ := reg.Resource(0, 0)
	require.Equal(t, "LWM2M Server URI", sec.Name)
}

func TestObjectsLoad(t *testing.T) {
	reg := NewBuiltinObjects()
	require.NoError(t, reg.LoadFS(os.DirFS("testdata/ddf"), "3303.xml"))
	sv, ok := reg.Resource(3303, 5700)
	require.True(t, ok)
	require.Equal(t, TypeFloat, sv.Type)
	got, err := Decode(FormatText, MustPath("/3303/0/5700"), []byte("21.5"), reg)
	require.NoError(t, err)
	require.Equal(t, FloatValue(21.5), got[0].Value, "a loaded definition types decoded values")

	var nilReg *Objects
	_, ok = nilReg.Resource(3, 0)
	require.False(t, ok, "a nil registry knows nothing")
	require.Nil(t, nilReg.IDs())

	err = reg.LoadFS(os.DirFS("testdata/ddf"), "[")
	require.ErrorIs(t, err, ErrInvalidDefinition)
	require.NoError(t, reg.LoadDDF([]byte(`<LWM2M><Object><ObjectID>3</ObjectID><Name>Mine</Name></Object></LWM2M>`), "mine.xml"))
	d, _ := reg.Object(3)
	require.Equal(t, "Mine", d.Name, "a later definition replaces the built-in one")

	err = reg.Add(ObjectDef{ID: 7, Resources: []ResourceDef{{ID: 1}, {ID: 1}}})
	require.ErrorIs(t, err, ErrInvalidDefinition)
	require.Contains(t, err.Error(), "resource 1 is defined twice")
	_, ok = reg.Object(7)
	require.False(t, ok, "nothing added on error")
	err = reg.Add(ObjectDef{ID: 65535})
	require.ErrorIs(t, err, ErrInvalidDefinition)
	err = reg.Add(ObjectDef{ID: 8, Resources: []ResourceDef{{ID: 1, Type: TypeRaw}}})
	require.ErrorIs(t, err, ErrInvalidDefinition)
	err = reg.Add(ObjectDef{ID: 8, Resources: []ResourceDef{{ID: 1, Operations: OpExecute | OpRead}}})
	require.ErrorIs(t, err, ErrInvalidDefinition)
}

func TestParseDDFErrors(t *testing.T) {
	item := func(body string) string {
		return "<LWM2M>\n<Object>\n<ObjectID>9</ObjectID>\n<Resources>\n<Item ID=\"1\">" + body + "</Item>\n</Resources>\n</Object>\n</LWM2M>"
	}
	for _, tt := range []struct {
		in   string
		line int
		has  string
	}{
		{"<LWM2M><Object>", 1, "<Object> not closed"},
		{"<html></html>", 1, "root element is <html>"},
		{"<LWM2M></LWM2M>", 0, "no <Object> element"},
		{"<LWM2M>\n<Object>\n<Name>x</Name>\n</Object></LWM2M>", 2, "has no <ObjectID>"},
		{"<LWM2M>\n<Object>\n<ObjectID>x</ObjectID>\n</Object></LWM2M>", 3, `<ObjectID> id "x" is not a decimal number`},
		{item("<Type>Integer</Type><Operations>RX</Operations>"), 5, `<Operations> is "RX"`},
		{item("<Type>Decimal</Type>"), 5, `resource 1: <Type> is "Decimal"`},
		{item("<MultipleInstances>Many</MultipleInstances>"), 5, `<MultipleInstances> is "Many"`},
		{item("<Mandatory>Yes</Mandatory>"), 5, `<Mandatory> is "Yes"`},
		{"<LWM2M>\n<Object>\n<ObjectID>9</ObjectID>\n<Resources>\n<Item ID=\"a\"></Item>\n</Resources>\n</Object>\n</LWM2M>", 5, `<Item ID="a">`},
		{"<LWM2M>\n<Object>\n<ObjectID>9</ObjectID>\n<MultipleInstances>Few</MultipleInstances>\n</Object>\n</LWM2M>", 2, `<MultipleInstances> is "Few"`},
	} {
		_, err := ParseDDF([]byte(tt.in), "t.xml")
		var de *DefinitionError
		require.ErrorAs(t, err, &de, "ParseDDF(%q)", tt.in)
		require.ErrorIs(t, err, ErrInvalidDefinition)
		require.Contains(t, err.Error(), tt.has, "ParseDDF(%q)", tt.in)
		require.Contains(t, err.Error(), "t.xml")
		if tt.line > 0 {
			require.Equal(t, tt.line, de.Line, "ParseDDF(%q): %v", tt.in, err)
		}
	}
}

// FuzzParseDDF checks that ParseDDF never panics and that what it accepts
// can be added to a registry.
func FuzzParseDDF(f *testing.F) {
	files, _ := filepath.Glob("testdata/ddf/*.xml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("<LWM2M><Object><ObjectID>1</ObjectID><Resources><Item ID=\"1\"><Type>Float</Type></Item></Resources></Object></LWM2M>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		defs, err := ParseDDF(b, "fuzz")
		if err != nil {
			return
		}
		if err := NewObjects().Add(defs...); err != nil {
			t.Fatalf("ParseDDF accepted %q but Add refused it: %v", b, err)
		}
	})
}
