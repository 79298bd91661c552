package transport

import (
	"testing"

	"github.com/doze-io/doze/lwm2m"
	"github.com/stretchr/testify/require"
)

// A device that leaves the Content-Format out of its answers, as
// Telefonica's lwm2m-node-lib does (it follows the LwM2M 1.0 drafts, where
// text was the default): the answer to a Read with an Accept is in that
// format (RFC 7252 §5.10.4: the device answers in it or with 4.06; §5.5.1:
// a missing format is inferred from the context). Without an Accept
// nothing is guessed.
func TestReadWithoutContentFormatIsTheAccepted(t *testing.T) {
	const ep = "868333030000016"
	s, _ := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	c.Handle("/3/0/0", Resource{Read: func() (Content, error) {
		return Content{Format: NoFormat, Payload: []byte("Telefonica I+D")}, nil
	}})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	ctx := ctxT(t)

	got, err := s.Read(ctx, ep, "/3/0/0", lwm2m.FormatText)
	require.NoError(t, err)
	require.Equal(t, Content{Format: lwm2m.FormatText, Payload: []byte("Telefonica I+D")}, got,
		"Read with Accept: text/plain of an answer without Content-Format")
	recs, err := lwm2m.Decode(got.Format, lwm2m.MustPath("/3/0/0"), got.Payload, nil)
	require.NoError(t, err)
	require.Equal(t, "Telefonica I+D", recs[0].Value.String())

	got, err = s.Read(ctx, ep, "/3/0/0", NoFormat)
	require.NoError(t, err)
	require.Equal(t, NoFormat, got.Format, "no Accept, no Content-Format: the format stays unknown")
}
