package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
)

// onePackage serves one firmware package under /fw/pkg1.
type onePackage []byte

func (p onePackage) Open(_, name string) (transport.File, error) {
	if name != "pkg1" {
		return transport.File{}, fmt.Errorf("%w: %s", transport.ErrNotFound, name)
	}
	return transport.File{Data: bytes.NewReader(p), Size: int64(len(p)), ETag: []byte{1, 2, 3, 4}}, nil
}

// openLog is a FileSource that records the endpoint the server gave each
// Open: "" for a peer with no registration on the socket it asks from.
type openLog struct {
	transport.FileSource
	mu  sync.Mutex
	eps []string
}

func (o *openLog) Open(ep, name string) (transport.File, error) {
	o.mu.Lock()
	o.eps = append(o.eps, ep)
	o.mu.Unlock()
	return o.FileSource.Open(ep, name)
}

func (o *openLog) endpoints() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.eps...)
}

// The conformance device's object 5 is as strict as OMA LwM2M's: Execute
// outside Downloaded gets 4.05, a Package URI not written as text gets
// 4.15, one it cannot use gets Update Result 7, a download the server
// refuses ends in Update Result 4. A good URI is downloaded from a second
// plain-CoAP socket (no registration: the package name is the
// credential), and Execute makes the device reboot and register anew from
// a new port, running the version the package names.
func TestConformDeviceObject5(t *testing.T) {
	pkg := append([]byte("FW2.0\n"), bytes.Repeat([]byte{0xA5}, 1500)...)
	files := &openLog{FileSource: onePackage(pkg)}
	s, err := transport.New(transport.Config{UDPAddr: "127.0.0.1:0", DisableDTLS: true, Files: files,
		Policy: transport.EndpointPolicyFunc(func(string) transport.Security { return transport.SecurityNone })}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	const ep = "868333030003001"
	flash := lwm2mtest.NewFlash("FW1.0")
	dl := &lwm2mtest.Dialer{}
	server := "coap://" + s.UDPAddr().String()
	d, err := lwm2mtest.StartDevice(testCtx(t), nil, lwm2mtest.DeviceConfig{Endpoint: ep, Stack: lwm2mtest.Stack11,
		Flash: flash, Server: server, Dial: dl.Dial, BlockSize: 128})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	tctx := testCtx(t)
	code := func(err error) string {
		var re *transport.ResponseError
		if errors.As(err, &re) {
			return re.Code.String()
		}
		return fmt.Sprint(err)
	}
	read := func(path string) string {
		c, err := s.Read(tctx, ep, path, transport.NoFormat)
		require.NoError(t, err, "read %s", path)
		require.Equal(t, lwm2m.FormatText, c.Format)
		return string(c.Payload)
	}
	text := func(v string) transport.Content {
		return transport.Content{Format: lwm2m.FormatText, Payload: []byte(v)}
	}

	require.Equal(t, "FW1.0", read("/3/0/3"))
	require.Equal(t, "0", read("/5/0/3"))
	require.Equal(t, transport.CodeMethodNotAllowed.String(), code(s.Execute(tctx, ep, "/5/0/2", nil)), "Execute in Idle")
	require.Equal(t, transport.CodeUnsupportedContentFormat.String(), code(s.Write(tctx, ep, "/5/0/1",
		transport.Content{Format: lwm2m.FormatOpaque, Payload: []byte(server + "/fw/pkg1")})), "the Package URI is a String")
	require.NoError(t, s.Write(tctx, ep, "/5/0/1", text("ftp://example.com/fw")))
	require.Equal(t, "7", read("/5/0/5"), "Invalid URI")

	require.NoError(t, s.Write(tctx, ep, "/5/0/1", text(server+"/fw/nope")))
	require.Eventually(t, func() bool { _, st, res := flash.Firmware(); return st == 0 && res == 4 }, 10*time.Second, 10*time.Millisecond,
		"a download answered 4.04 ends Idle with Update Result 4")

	require.NoError(t, s.Write(tctx, ep, "/5/0/1", text(server+"/fw/pkg1")))
	require.Eventually(t, func() bool { _, st, _ := flash.Firmware(); return st == 2 }, 10*time.Second, 10*time.Millisecond, "Downloaded")
	require.Equal(t, len(pkg), flash.Stored())
	// Every block GET came from a socket with no registration: the server
	// names the endpoint to Files only for a registered session's GETs.
	eps := files.endpoints()
	require.Len(t, eps, 1+(len(pkg)+127)/128, "one Open for /fw/nope, one per 128-byte block")
	for i, e := range eps {
		require.Empty(t, e, "Open %d: no block on the registered session", i)
	}
	require.Equal(t, transport.CodeBadRequest.String(), code(s.Write(tctx, ep, "/5/0/1", text(server+"/fw/pkg1"))),
		"a Package URI outside Idle")

	before, ok := s.Registration(ep)
	require.True(t, ok)
	// The device reboots right after its 2.04: its new Register, from
	// another address, may be handled before the ACK, ending the old
	// session and this exchange with it ("closed"). A caller learns the
	// outcome from the new registration, as ota does.
	if err := s.Execute(tctx, ep, "/5/0/2", nil); err != nil {
		require.ErrorIs(t, err, transport.ErrClosed, "Execute")
	}
	require.Eventually(t, func() bool { return len(d.Registrations()) == 2 }, 10*time.Second, 10*time.Millisecond, "registered anew")
	after, ok := s.Registration(ep)
	require.True(t, ok)
	require.NotEqual(t, before.Addr.String(), after.Addr.String(), "from a new source port")
	require.Equal(t, "FW2.0", read("/3/0/3"))
	require.Equal(t, "0", read("/5/0/3"))
	require.Equal(t, "1", read("/5/0/5"), "Update Result 1: success")
}
