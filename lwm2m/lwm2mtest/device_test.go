package lwm2mtest

import (
	"bytes"
	"testing"
)

// The conformance device's own parsers never panic, and the TLV it writes
// reads back.
func FuzzDeviceParsers(f *testing.F) {
	f.Add(multipleTLV(0, []byte{0xCA, 0xFE}))
	f.Add([]byte(`[{"bn":"/19/1/0/","n":"0","vd":"yv4"}]`))
	f.Add([]byte{0x88, 0x00, 0x03, 0x41, 0x00, 0x01})
	f.Add([]byte{0xC1, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseMultipleTLV(b, 0)
		_, _ = parseSenMLJSON(b)
		if len(b) <= 0xffff-4 {
			got, err := parseMultipleTLV(multipleTLV(0, b), 0)
			if err != nil || len(got) != 1 || !bytes.Equal(got[0], b) {
				t.Fatalf("parseMultipleTLV(multipleTLV(%x)) = %x, %v", b, got, err)
			}
		}
	})
}

func TestParseMultipleTLV(t *testing.T) {
	// Two instances (8-bit lengths), as OMA's TLV example for /3/0/6.
	got, err := parseMultipleTLV([]byte{0x86, 0x00, 0x41, 0x00, 0x01, 0x41, 0x01, 0x05}, 0)
	if err != nil || len(got) != 2 || got[0][0] != 1 || got[1][0] != 5 {
		t.Fatalf("parseMultipleTLV = %x, %v; want [01 05]", got, err)
	}
	for _, bad := range [][]byte{
		{0xC1, 0x00, 0x01},                   // a single resource, not Multiple
		{0x83, 0x01, 0x41, 0x00, 0x01},       // Multiple resource 1, not 0
		{0x86, 0x00, 0xC1, 0x00, 0x01, 0x00}, // holds a resource
		{0x86, 0x00, 0x41},                   // truncated
	} {
		if _, err := parseMultipleTLV(bad, 0); err == nil {
			t.Errorf("parseMultipleTLV(%x) took it; want an error", bad)
		}
	}
}
