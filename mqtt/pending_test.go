package mqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// serveConfig is serve with a Config (Addr and TLSAddr are set here).
func serveConfig(t *testing.T, devs Devices, h Handler, cfg Config) (*Server, string) {
	t.Helper()
	cfg.Addr, cfg.TLSAddr = "127.0.0.1:0", "off"
	s, err := New(devs, h, cfg)
	require.NoError(t, err)
	runServer(t, s)
	return s, s.Addr("tcp")
}

// partialConnect dials addr and sends the start of a CONNECT that
// announces 65535 bytes and never sends them.
func partialConnect(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write([]byte{0x10, 0xff, 0xff, 0x03})
	require.NoError(t, err)
	return c
}

// closedWithin reports whether the server closes c within d (reads end
// with EOF or a reset, not with the read deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// waitPending waits until the server holds n pending connections.
func waitPending(t *testing.T, s *Server, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return s.pending.len() == n }, 5*time.Second, 5*time.Millisecond,
		"%d pending connections", n)
}

// TestConnectTimeout: a connection that sends part of a CONNECT and then
// nothing is closed after Config.ConnectTimeout, and counted.
func TestConnectTimeout(t *testing.T) {
	s, addr := serveConfig(t, testDevices{}, newRecorder(), Config{ConnectTimeout: 200 * time.Millisecond})
	c := partialConnect(t, addr)
	start := time.Now()
	require.True(t, closedWithin(c, 5*time.Second), "the connection without a CONNECT is still open")
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "closed before the connect timeout")
	require.Eventually(t, func() bool { return s.Stats().ConnectTimeouts == 1 }, 5*time.Second, 5*time.Millisecond)
	waitPending(t, s, 0)
}

// TestMaxPendingConnects: with two connections pending, a third is closed
// at once and counted; a connected client is not affected, and a pending
// connection's close frees its place.
func TestMaxPendingConnects(t *testing.T) {
	s, addr := serveConfig(t, testDevices{}, newRecorder(), Config{MaxPendingConnects: 2})
	dev, code, _ := dialRaw(t, addr, "dev1", "dev1", "secret", true)
	require.Zero(t, code)
	waitPending(t, s, 0) // the CONNACK ended dev1's pending time
	a := partialConnect(t, addr)
	partialConnect(t, addr)
	// The listener admits connections in the order it accepts them:
	// these two first.
	third := partialConnect(t, addr)
	require.True(t, closedWithin(third, 2*time.Second), "the connection over MaxPendingConnects is open")
	require.EqualValues(t, 1, s.Stats().PendingRefused)
	dev.ping() // the connected client still works
	a.Close()
	waitPending(t, s, 1)
	dev2, code, _ := dialRaw(t, addr, "dev2", "dev2", "secret", true)
	require.Zero(t, code, "a place is free again")
	dev2.ping()
}

// TestKeepaliveZeroAfterConnectTimeout: a client with keep-alive 0 (paho)
// connects and still publishes after the connect timeout has passed: the
// broker replaced the CONNECT deadline with none.
func TestKeepaliveZeroAfterConnectTimeout(t *testing.T) {
	rec := newRecorder()
	_, addr := serveConfig(t, testDevices{}, rec, Config{ConnectTimeout: 200 * time.Millisecond})
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("dev1").
		SetUsername("dev1").SetPassword("secret").SetKeepAlive(0).SetAutoReconnect(false).SetConnectRetry(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	defer c.Disconnect(0)
	time.Sleep(600 * time.Millisecond) // three connect timeouts
	require.True(t, c.IsConnectionOpen())
	tok = c.Publish(topicPrefix+"dev1"+propertiesTopic, 1, false, `{"services":[]}`)
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	select {
	case m := <-rec.msgs:
		require.Equal(t, "dev1", m.DeviceID)
	case <-time.After(5 * time.Second):
		t.Fatal("the message did not arrive")
	}
}

// selfSigned is a TLS server config with a fresh self-signed certificate
// for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// TestConnectTimeoutTLS: on the TLS listener, a connection that never
// starts its handshake is closed after the connect timeout, and a client
// that completes it and its CONNECT works past it.
func TestConnectTimeoutTLS(t *testing.T) {
	s, err := New(testDevices{}, newRecorder(), Config{Addr: "off", TLSAddr: "127.0.0.1:0", TLS: selfSigned(t), ConnectTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	runServer(t, s)
	addr := s.Addr("tls")
	silent, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer silent.Close()
	require.True(t, closedWithin(silent, 5*time.Second), "the connection without a handshake is still open")

	c := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("dev1").
		SetUsername("dev1").SetPassword("secret").SetKeepAlive(0).SetAutoReconnect(false).SetConnectRetry(false).
		SetTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	defer c.Disconnect(0)
	time.Sleep(400 * time.Millisecond)
	tok = c.Subscribe(CommandTopic("dev1", "+"), 1, nil)
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
}
