package transport

import (
	"errors"
	"fmt"
	"testing"

	"github.com/doze-io/doze/lwm2m"
	"github.com/stretchr/testify/require"
)

// Issue 20.1: the client is as strict as the LwM2M data formats. Plain Text
// and Opaque carry one Single-Instance resource or one resource instance,
// so a single value written to the Multiple resource /19/1/0 gets 4.00,
// while its instances and the resource in TLV or SenML are taken.
func TestClientWriteMultipleResource(t *testing.T) {
	s, _ := startServer(t, Config{DisableDTLS: true, Policy: plainOnly}, nil)
	const ep = "868333030000401"
	c := newClient(t, ClientConfig{Server: s.UDPAddr().String(), Endpoint: ep})
	got := newBox()
	c.Handle("/19/1/0", Resource{Write: func(v Content) error {
		if v.Format != lwm2m.FormatOpaque {
			t.Errorf("the handler of the Multiple Opaque resource /19/1/0 got %v, want each instance as opaque", v.Format)
		}
		got.put(v.Payload)
		return nil
	}})
	c.Handle("/3/0/14", Resource{Write: func(v Content) error { got.put(append([]byte("tz:"), v.Payload...)); return nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))

	enc := func(f lwm2m.Format, base string, recs ...lwm2m.Record) []byte {
		b, err := lwm2m.Encode(f, lwm2m.MustPath(base), recs)
		require.NoError(t, err)
		return b
	}
	inst := func(i uint16, data string) lwm2m.Record {
		return lwm2m.Record{Path: lwm2m.MustPath(fmt.Sprintf("/19/1/0/%d", i)), Value: lwm2m.OpaqueValue([]byte(data))}
	}
	tests := []struct {
		name string
		path string
		c    Content
		code Code // 0: taken
		want [][]byte
	}{
		{"opaque to the resource", "/19/1/0", Content{Format: lwm2m.FormatOpaque, Payload: []byte("a")}, CodeBadRequest, nil},
		{"text to the resource", "/19/1/0", Content{Format: lwm2m.FormatText, Payload: []byte("a")}, CodeBadRequest, nil},
		{"no format to the resource", "/19/1/0", Content{Format: NoFormat, Payload: []byte("a")}, CodeBadRequest, nil},
		{"opaque to an instance", "/19/1/0/0", Content{Format: lwm2m.FormatOpaque, Payload: []byte("b")}, 0, [][]byte{[]byte("b")}},
		{"TLV with two instances", "/19/1/0", Content{Format: lwm2m.FormatTLV, Payload: enc(lwm2m.FormatTLV, "/19/1/0", inst(0, "c"), inst(1, "d"))},
			0, [][]byte{[]byte("c"), []byte("d")}},
		{"SenML JSON", "/19/1/0", Content{Format: lwm2m.FormatSenMLJSON, Payload: enc(lwm2m.FormatSenMLJSON, "/19/1/0", inst(0, "e"))}, 0, [][]byte{[]byte("e")}},
		{"SenML CBOR to an instance", "/19/1/0/0", Content{Format: lwm2m.FormatSenMLCBOR, Payload: enc(lwm2m.FormatSenMLCBOR, "/19/1/0/0", inst(0, "f"))},
			0, [][]byte{[]byte("f")}},
		{"TLV of the resource as single", "/19/1/0",
			Content{Format: lwm2m.FormatTLV, Payload: []byte{0xC1, 0x00, 'g'}}, CodeBadRequest, nil},
		{"TLV naming another instance", "/19/1/0/0", Content{Format: lwm2m.FormatTLV, Payload: enc(lwm2m.FormatTLV, "/19/1/0", inst(1, "h"))},
			CodeBadRequest, nil},
		{"unknown format", "/19/1/0", Content{Format: 9999, Payload: []byte("i")}, CodeUnsupportedContentFormat, nil},
		{"single resource as text, unchanged", "/3/0/14", Content{Format: lwm2m.FormatText, Payload: []byte("+02")}, 0, [][]byte{[]byte("tz:+02")}},
		{"unserved instance", "/19/2/0/0", Content{Format: lwm2m.FormatOpaque, Payload: []byte("j")}, CodeNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(got.all())
			err := s.Write(ctxT(t), ep, tt.path, tt.c)
			if tt.code != 0 {
				var re *ResponseError
				require.True(t, errors.As(err, &re), "Write(%s, %v) = %v, want a %s answer", tt.path, tt.c.Format, err, tt.code.String())
				require.Equal(t, tt.code.String(), re.Code.String(), "Write(%s, %v): %v", tt.path, tt.c.Format, err)
				require.Len(t, got.all(), before, "a refused write reaches no handler")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.all()[before:])
		})
	}
}

// Downlink reaches our own client in the form of its version: the instance
// for 1.1, TLV for 1.0.
func TestDownlinkToClientVersions(t *testing.T) {
	s, _ := startServer(t, Config{DisableDTLS: true, Policy: plainOnly}, nil)
	for i, v := range []string{"1.1", "1.0"} {
		ep := fmt.Sprintf("86833303000050%d", i)
		c := newClient(t, ClientConfig{Server: s.UDPAddr().String(), Endpoint: ep, Version: v})
		got := newBox()
		c.Handle("/19/1/0", Resource{Write: func(v Content) error { got.put(v.Payload); return nil }})
		require.NoError(t, c.Connect(ctxT(t)))
		require.NoError(t, c.Register(ctxT(t)))
		require.NoError(t, s.Downlink(ctxT(t), ep, []byte{0xAB}))
		require.Equal(t, [][]byte{{0xAB}}, got.all())
		f, _ := s.LearnedDownlinkForm(ep)
		want := map[string]DownlinkForm{"1.1": DownlinkInstance, "1.0": DownlinkTLV}[v]
		require.Equal(t, want, f, "LwM2M %s", v)
	}
}
