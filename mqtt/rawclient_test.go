package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// rawClient is an MQTT 3.1.1 client that sends exactly the packets a test
// asks for, and nothing else: no automatic PUBACK, no keep-alive, no
// re-sends. It encodes and decodes with the broker library's packets
// package (the codec, not the broker).
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	pid  uint16
}

// dialRaw connects as clientID with user/pass; clean is the CleanSession
// flag. It returns the CONNACK's return code and whether a session was
// present.
func dialRaw(t *testing.T, addr, clientID, user, pass string, clean bool) (c *rawClient, code byte, present bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c = &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	ack := c.connect(4, clientID, user, pass, clean)
	return c, ack.ReasonCode, ack.SessionPresent
}

// connect sends a CONNECT of protocol version (4: MQTT 3.1.1, 5) with a
// keep-alive of 60 s and returns the CONNACK.
func (c *rawClient) connect(version byte, clientID, user, pass string, clean bool) packets.Packet {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: clean, Keepalive: 60, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pass)}}
	var buf bytes.Buffer
	require.NoError(c.t, pk.ConnectEncode(&buf))
	c.write(buf.Bytes())
	ack := c.read()
	require.Equal(c.t, packets.Connack, ack.FixedHeader.Type)
	return ack
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetWriteDeadline(time.Now().Add(5*time.Second)))
	_, err := c.conn.Write(b)
	require.NoError(c.t, err)
}

// next reads one packet; io.EOF (or a reset) when the broker closed the
// connection.
func (c *rawClient) next() (packets.Packet, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return packets.Packet{}, err
	}
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	var pk packets.Packet
	pk.ProtocolVersion = 4
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pingresp:
	default:
		err = errors.New("unexpected packet type")
	}
	return pk, err
}

func (c *rawClient) read() packets.Packet {
	c.t.Helper()
	pk, err := c.next()
	require.NoError(c.t, err)
	return pk
}

// subscribe subscribes to filter at QoS 1 and waits for the SUBACK.
func (c *rawClient) subscribe(filter string) {
	c.t.Helper()
	c.pid++
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: c.pid,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}
	var buf bytes.Buffer
	require.NoError(c.t, pk.SubscribeEncode(&buf))
	c.write(buf.Bytes())
	ack := c.read()
	require.Equal(c.t, packets.Suback, ack.FixedHeader.Type)
	require.Equal(c.t, []byte{1}, ack.ReasonCodes, "granted QoS 1")
}

// puback acknowledges the broker's PUBLISH id.
func (c *rawClient) puback(id uint16) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: 4, PacketID: id}
	var buf bytes.Buffer
	require.NoError(c.t, pk.PubackEncode(&buf))
	c.write(buf.Bytes())
}

// ping sends PINGREQ and waits for PINGRESP: every packet the client sent
// before has been read and handled by the broker.
func (c *rawClient) ping() {
	c.t.Helper()
	c.write([]byte{packets.Pingreq << 4, 0})
	pk := c.read()
	require.Equal(c.t, packets.Pingresp, pk.FixedHeader.Type)
}

// closed reports whether the broker closed the connection (reads end).
func (c *rawClient) closed() bool {
	for {
		if _, err := c.next(); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// testDevices accepts every username with the password "secret"; the
// device's deviceId is the username. Gateways are the usernames in gw.
type testDevices struct{ gw map[string]bool }

func (d testDevices) Authenticate(_ context.Context, user, pass string) (Device, error) {
	if pass != "secret" {
		return Device{}, errors.New("bad secret")
	}
	return Device{ID: user, NodeID: "node-" + user, Gateway: d.gw[user]}, nil
}

// recorder is a Handler that records the devices' messages and comings and
// goings on channels.
type recorder struct {
	msgs      chan Message
	listening chan Device
}

func newRecorder() *recorder {
	return &recorder{msgs: make(chan Message, 64), listening: make(chan Device, 64)}
}

func (r *recorder) Message(m Message) error    { r.msgs <- m; return nil }
func (r *recorder) Connected(Device)           {}
func (r *recorder) Listening(d Device)         { r.listening <- d }
func (r *recorder) Disconnected(Device, error) {}

// serve runs a Server with the handler on a free loopback port and
// returns it and its address; it is closed when the test ends.
func serve(t *testing.T, devs Devices, h Handler) (*Server, string) {
	t.Helper()
	return serveConfig(t, devs, h, Config{})
}

// runServer listens and runs s until the test ends.
func runServer(t *testing.T, s *Server) {
	t.Helper()
	require.NoError(t, s.Listen())
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, s.Close())
		require.NoError(t, <-done)
	})
}
