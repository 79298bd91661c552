package lwm2m_test

import (
	"encoding/hex"
	"fmt"

	"github.com/doze-io/doze/lwm2m"
)

func ExampleParsePath() {
	p, err := lwm2m.ParsePath("/3/0/6/1")
	if err != nil {
		panic(err)
	}
	obj, _ := p.Object()
	res, _ := p.Resource()
	fmt.Println(p, p.Level(), obj, res, p.Parent())

	_, err = lwm2m.ParsePath("/3/zero/1")
	fmt.Println(err)
	// Output:
	// /3/0/6/1 resource instance 3 6 /3/0/6
	// lwm2m: invalid path "/3/zero/1" at byte 3: id "zero" is not a decimal number 0–65534
}

// A registration body (LWM-3): which objects and instances the client
// has, and in which content formats it can answer.
func ExampleParseClientObjects() {
	body := []byte(`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</5>,</19/0>;ver=1.0,</19/1>;ver=1.0`)
	c, err := lwm2m.ParseClientObjects(body)
	if err != nil {
		panic(err)
	}
	fmt.Println("formats:", c.Formats)
	for _, o := range c.Objects {
		fmt.Printf("object %d version %q instances %v\n", o.ID, o.Version, o.Instances)
	}
	fmt.Println("has /19/0/0:", c.Has(lwm2m.MustPath("/19/0/0")))
	// Output:
	// formats: [application/vnd.oma.lwm2m+json]
	// object 1 version "" instances [0]
	// object 3 version "" instances [0]
	// object 5 version "" instances []
	// object 19 version "1.0" instances [0 1]
	// has /19/0/0: true
}

func ExampleParseLinks() {
	links, err := lwm2m.ParseLinks([]byte(`</3/0>;pmin=10,</3/0/7>;dim=2`))
	if err != nil {
		panic(err)
	}
	for _, l := range links {
		dim, ok := l.Attr("dim")
		fmt.Println(l.Target, dim, ok)
	}
	fmt.Println(string(lwm2m.AppendLinks(nil, links)))
	// Output:
	// /3/0  false
	// /3/0/7 2 true
	// </3/0>;pmin=10,</3/0/7>;dim=2
}

// Decoding a TLV read of /3/0 with the built-in object definitions: the
// values get the types of the Device object.
func ExampleDecode() {
	// Three resources of the example of LwM2M 1.1 Core §7.4.3.1.
	payload, _ := hex.DecodeString("C800144F70656E204D6F62696C6520416C6C69616E6365" + // /3/0/0
		"C10964" + // /3/0/9
		"C40D5182428F") // /3/0/13
	recs, err := lwm2m.Decode(lwm2m.FormatTLV, lwm2m.MustPath("/3/0"), payload, lwm2m.NewBuiltinObjects())
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		fmt.Printf("%-7s %-7s %s\n", r.Path, r.Value.Type(), r.Value)
	}
	// A malformed payload names the path and the byte offset.
	_, err = lwm2m.Decode(lwm2m.FormatTLV, lwm2m.MustPath("/3/0"), []byte{0xC3, 0x09, 0x64}, nil)
	fmt.Println(err)
	// Output:
	// /3/0/0  String  Open Mobile Alliance
	// /3/0/9  Integer 100
	// /3/0/13 Time    1367491215
	// lwm2m: application/vnd.oma.lwm2m+tlv /3/0 at byte 0: TLV resource 9 declares 3 value bytes, only 1 left
}

// Writing application data to a device's downlink resource /19/1/0
// (LWM-5), and the same value as SenML JSON.
func ExampleEncode() {
	recs := []lwm2m.Record{{Path: lwm2m.MustPath("/19/1/0"), Value: lwm2m.OpaqueValue([]byte{0x01, 0x02})}}
	b, _ := lwm2m.Encode(lwm2m.FormatOpaque, lwm2m.MustPath("/19/1/0"), recs)
	fmt.Printf("% x\n", b)
	b, _ = lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.MustPath("/19/1/0"), recs)
	fmt.Println(string(b))
	b, _ = lwm2m.Encode(lwm2m.FormatTLV, lwm2m.MustPath("/19/1/0"), recs)
	fmt.Printf("% x\n", b)
	// Output:
	// 01 02
	// [{"bn":"/19/1/","n":"0","vd":"AQI"}]
	// c2 00 01 02
}

// Loading an object definition from OMA DDF XML, then decoding with it.
func ExampleObjects_LoadDDF() {
	reg := lwm2m.NewBuiltinObjects()
	err := reg.LoadDDF([]byte(`<LWM2M><Object ObjectType="MODefinition">
		<Name>Temperature</Name><ObjectID>3303</ObjectID>
		<MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>
		<Resources><Item ID="5700"><Name>Sensor Value</Name><Operations>R</Operations>
		<MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>
		<Type>Float</Type><Units>Cel</Units></Item></Resources></Object></LWM2M>`), "3303.xml")
	if err != nil {
		panic(err)
	}
	recs, _ := lwm2m.Decode(lwm2m.FormatText, lwm2m.MustPath("/3303/0/5700"), []byte("21.5"), reg)
	def, _ := reg.Resource(3303, 5700)
	fmt.Println(def.Name, recs[0].Value.Type(), recs[0].Value, def.Units)
	// Output:
	// Sensor Value Float 21.5 Cel
}

// Without a definition, TLV values stay raw; As converts one when the
// caller knows the type.
func ExampleValue_As() {
	// /2/0/2/127 of the Access Control example of LwM2M 1.1 Core §7.4.3.2.
	recs, err := lwm2m.Decode(lwm2m.FormatTLV, lwm2m.MustPath("/2/0/2"), []byte{0x41, 0x7F, 0x07}, lwm2m.NewBuiltinObjects())
	if err != nil {
		panic(err)
	}
	raw := recs[0].Value
	acl, err := raw.As(lwm2m.TypeInteger)
	if err != nil {
		panic(err)
	}
	fmt.Println(recs[0].Path, raw.Type(), acl.Type(), acl)
	// Output:
	// /2/0/2/127 Raw Integer 7
}
