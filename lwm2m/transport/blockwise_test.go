package transport

import (
	"bytes"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

type files map[string]File

func (f files) Open(endpoint, name string) (File, error) {
	if file, ok := f[name]; ok {
		return file, nil
	}
	return File{}, ErrNotFound
}

func TestBlockOption(t *testing.T) {
	for _, tc := range []struct {
		v    uint32
		want blockOpt
		size int
	}{
		{0x00, blockOpt{}, 16},
		{0x0e, blockOpt{num: 0, more: true, szx: 6}, 1024},
		{0x15, blockOpt{num: 1, szx: 5}, 512},
		{0xffff5, blockOpt{num: 0xffff, szx: 5}, 512},
	} {
		got, err := parseBlock(tc.v)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
		require.Equal(t, tc.size, got.size())
		require.Equal(t, tc.v, got.value(), "round trip")
	}
	_, err := parseBlock(0x07)
	require.ErrorContains(t, err, "reserved")
}

// LWM-1: payloads larger than one datagram travel in RFC 7959 blocks: a
// device downloads a 5000-byte file over DTLS with Block2 and the ETag.
func TestBlockwiseDownloadDTLS(t *testing.T) {
	const ep = "868333030000030"
	data := bytes.Repeat([]byte("0123456789abcdef"), 313)[:4999]
	s, _ := startServer(t, Config{Files: files{"v2.bin": {Data: bytes.NewReader(data), Size: int64(len(data)), ETag: []byte{1, 2}}}}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	for _, size := range []int{0, 1024, 64} {
		got, err := c.Download(ctxT(t), "/fw/v2.bin", size)
		require.NoError(t, err, "block size %d", size)
		require.Equal(t, data, got, "block size %d", size)
	}
	_, err := c.Download(ctxT(t), "/fw/nope.bin", 0)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, CodeNotFound, re.Code)
	_, err = c.Download(ctxT(t), "/fw/v2.bin", 100)
	require.ErrorContains(t, err, "power of two")
}

// Block2 beyond the end and the reserved size exponent get 4.02.
func TestBlockwiseBadRequests(t *testing.T) {
	s, _ := plainServer(t, Config{Files: files{"f": {Data: bytes.NewReader([]byte("abc")), Size: 3}}})
	p := newRawPeer(t, s.UDPAddr())
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=x"}, cfLink, nil))
	require.Equal(t, codes.Created, r.Code)
	m := p.request(codes.GET, "/fw/f", nil, cfNone, nil)
	r = p.roundTrip(m)
	require.Equal(t, codes.Content, r.Code)
	require.Equal(t, "abc", string(r.Payload))
	size, _ := optUint(&r, message.Size2)
	require.Equal(t, uint32(3), size)
	m = p.request(codes.GET, "/fw/f", nil, cfNone, nil)
	addUint(&m, message.Block2, blockOpt{num: 1, szx: 0}.value())
	r = p.roundTrip(m)
	require.Equal(t, codes.BadOption, r.Code, "%s", r.Payload)
	m = p.request(codes.GET, "/fw/f", nil, cfNone, nil)
	addUint(&m, message.Block2, 7)
	r = p.roundTrip(m)
	require.Equal(t, codes.BadOption, r.Code)
}

// LWM-1: a device answer larger than one datagram comes in Block2 blocks
// and the server reassembles it (a 3000-byte opaque resource).
func TestBlockwiseReadFromDevice(t *testing.T) {
	const ep = "868333030000031"
	s, _ := startServer(t, Config{MaxMessageSize: 1200}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	big := bytes.Repeat([]byte{0xAB, 0xCD, 0xEF}, 1000)
	c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfOpaque, Payload: big}, nil }})
	small := []byte("small")
	c.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: small}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	got, err := s.Read(ctxT(t), ep, "/19/0/0", cfNone)
	require.NoError(t, err)
	require.Equal(t, big, got.Payload)
	got, err = s.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.NoError(t, err)
	require.Equal(t, small, got.Payload)
}

// LWM-1: bodies above 1024 bytes go in Block1 blocks both ways: a 3000-byte
// downlink write to the device and a 2500-byte Send to the server.
func TestBlockwiseWriteAndSend(t *testing.T) {
	const ep = "868333030000032"
	s, rec := startServer(t, Config{MaxMessageSize: 1200}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	down := newBox()
	c.Handle("/19/1/0", Resource{Write: func(v Content) error { down.put(v.Payload); return nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	big := bytes.Repeat([]byte("downlink"), 375)
	require.NoError(t, s.Downlink(ctxT(t), ep, big))
	require.Equal(t, [][]byte{big}, down.all(), "one write with the whole body")

	up := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 500)
	require.NoError(t, c.Send(ctxT(t), Content{Format: cfOpaque, Payload: up}))
	e := rec.wait(t, EventUplink, ep, 1)
	require.Equal(t, up, e.Payload)
	require.Equal(t, 1, rec.count(EventUplink, ep))
}

// A Block1 block out of order gets 4.08 Request Entity Incomplete.
func TestBlock1OutOfOrder(t *testing.T) {
	s, _ := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=b1"}, cfLink, nil))
	require.Equal(t, codes.Created, r.Code)
	m := p.request(codes.POST, "/dp", nil, cfOpaque, bytes.Repeat([]byte{9}, 16))
	addUint(&m, message.Block1, blockOpt{num: 0, more: true, szx: 0}.value())
	r = p.roundTrip(m)
	require.Equal(t, codes.Continue, r.Code)
	m = p.request(codes.POST, "/dp", nil, cfOpaque, []byte{9})
	addUint(&m, message.Block1, blockOpt{num: 2, szx: 0}.value())
	r = p.roundTrip(m)
	require.Equal(t, codes.RequestEntityIncomplete, r.Code, "%s", r.Payload)
}
