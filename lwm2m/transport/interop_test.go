package transport

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/stretchr/testify/require"
)

// coapClients are libcoap's command-line clients, one per TLS library.
var coapClients = []string{"coap-client-openssl", "coap-client-gnutls", "coap-client"}

func findCoapClient(t *testing.T) string {
	for _, name := range coapClients {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("libcoap's coap-client is not installed (Debian package libcoap3-bin); the DTLS interop test needs it")
	return ""
}

// LWM-1 interop with a peer no one here wrote: libcoap's coap-client does a
// DTLS 1.2 PSK handshake with each cipher suite and a registration POST.
func TestInteropLibcoapDTLSRegistration(t *testing.T) {
	bin := findCoapClient(t)
	const ep = "868333030000100"
	key := "0123456789abcdef"
	for _, cs := range []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256} {
		t.Run(codeName(cs), func(t *testing.T) {
			ks := NewMemoryKeyStore()
			ks.Set(ep, []byte(key))
			s, rec := startServer(t, Config{CipherSuites: []CipherSuite{cs}, DisableUDP: true}, ks)
			uri := "coaps://" + s.DTLSAddr().String() + "/rd?ep=urn:imei:" + ep + "&lt=120&lwm2m=1.1&b=U"
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-m", "post", "-u", ep, "-k", key, "-t", "40", "-e", "</1/0>,</3/0>", "-B", "10", "-v", "7", uri)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s %s:\n%s", bin, strings.Join(cmd.Args[1:], " "), out)
			e := rec.wait(t, EventRegistered, ep, 1)
			require.True(t, e.Registration.Secure)
			require.True(t, e.Registration.Objects.Has(lwm2m.MustPath("/3/0")))
			require.Contains(t, string(out), "2.01", "coap-client saw 2.01 Created")
		})
	}
}

// LWM-1: libcoap with a wrong key fails the handshake and registers nothing.
func TestInteropLibcoapWrongKey(t *testing.T) {
	bin := findCoapClient(t)
	ks := NewMemoryKeyStore()
	ks.Set("dev", []byte("right-key-123456"))
	s, _ := startServer(t, Config{DisableUDP: true, HandshakeTimeout: 5 * time.Second}, ks)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "-m", "post", "-u", "dev", "-k", "wrong-key-123456", "-B", "3",
		"coaps://"+s.DTLSAddr().String()+"/rd?ep=dev").CombinedOutput()
	require.NotContains(t, string(out), "2.01")
	require.Empty(t, s.Registrations())
}
