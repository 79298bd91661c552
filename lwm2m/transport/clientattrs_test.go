package transport

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClientWriteAttributes: the client keeps what a Write-Attributes sets
// and refuses, with 4.00 and nothing changed, what a conforming client
// refuses (LwM2M TS Core §5.1.2, §5.4.4): unknown attributes, malformed
// values, a name given twice, numeric conditions above the resource level,
// and results that break pmin ≤ pmax or lt + 2·st < gt.
func TestClientWriteAttributes(t *testing.T) {
	const ep = "868333030000011"
	s, _ := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	c.Handle("/3303/0/5700", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("21.5")}, nil }})
	c.Handle("/3303/0", Resource{})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	ctx := ctxT(t)
	u32 := func(v uint32) *uint32 { return &v }
	f64 := func(v float64) *float64 { return &v }

	require.NoError(t, s.WriteAttributes(ctx, ep, "/3303/0/5700", "pmin=10", "pmax=60"))
	require.Equal(t, Attributes{Pmin: u32(10), Pmax: u32(60)}, c.Attributes("/3303/0/5700"))
	require.NoError(t, s.WriteAttributes(ctx, ep, "/3303/0/5700", "gt=30", "lt=-5.5", "st=2"))
	require.Equal(t, Attributes{Pmin: u32(10), Pmax: u32(60), Gt: f64(30), Lt: f64(-5.5), St: f64(2)}, c.Attributes("/3303/0/5700"))
	require.NoError(t, s.WriteAttributes(ctx, ep, "/3303/0/5700", "pmin", "st"), "a bare name clears")
	require.Equal(t, Attributes{Pmax: u32(60), Gt: f64(30), Lt: f64(-5.5)}, c.Attributes("/3303/0/5700"))
	require.NoError(t, s.WriteAttributes(ctx, ep, "/3303/0", "pmin=5", "epmin=1", "epmax=2"))
	require.Equal(t, Attributes{Pmin: u32(5), Epmin: u32(1), Epmax: u32(2)}, c.Attributes("/3303/0"))

	before := c.Attributes("/3303/0/5700")
	for _, tc := range []struct {
		path  string
		attrs []string
		has   string
	}{
		{"/3303/0/5700", []string{"pmin=x"}, `pmin="x" is not a whole number`},
		{"/3303/0/5700", []string{"pmin=-1"}, "not a whole number"},
		{"/3303/0/5700", []string{"pmax=4294967296"}, "not a whole number"},
		{"/3303/0/5700", []string{"foo=1"}, `unknown attribute "foo"`},
		{"/3303/0/5700", []string{"pmin=1", "pmin=2"}, "pmin given twice"},
		{"/3303/0/5700", []string{"pmin=100"}, "pmax 60 is less than pmin 100"},
		{"/3303/0/5700", []string{"lt=40"}, "lt 40 is not less than gt 30"},
		{"/3303/0/5700", []string{"st=20"}, "lt -5.5 + 2 × st 20 is not less than gt 30"},
		{"/3303/0/5700", []string{"st=-1"}, "st=\"-1\" is negative"},
		{"/3303/0/5700", []string{"gt=NaN"}, `gt="NaN" is not a decimal number`},
		{"/3303/0/5700", []string{"gt=1e3"}, "not a decimal number"},
		{"/3303/0/5700", []string{"gt=0x10"}, "not a decimal number"},
		{"/3303/0/5700", []string{"gt=5."}, "not a decimal number"},
		{"/3303/0", []string{"gt=1"}, "gt applies to a resource"},
		{"/3303/0/5700", []string{"pmax=20", "pmin=30"}, "pmax 20 is less than pmin 30"},
	} {
		err := s.WriteAttributes(ctx, ep, tc.path, tc.attrs...)
		var re *ResponseError
		require.True(t, errors.As(err, &re), "%v on %s: %v", tc.attrs, tc.path, err)
		require.Equal(t, CodeBadRequest, re.Code, "%v on %s", tc.attrs, tc.path)
		require.Contains(t, re.Message, tc.has, "%v on %s", tc.attrs, tc.path)
		require.Equal(t, before, c.Attributes("/3303/0/5700"), "%v on %s changed nothing", tc.attrs, tc.path)
	}
	var re *ResponseError
	require.True(t, errors.As(s.WriteAttributes(ctx, ep, "/3303/0/9", "pmin=1"), &re))
	require.Equal(t, CodeNotFound, re.Code, "a path the client does not serve")
}
