package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// command starts Server.Command in the background; its result arrives on
// the returned channel.
func command(s *Server, deviceID, requestID string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- s.Command(ctx, deviceID, requestID, []byte(`{"command_name":"`+requestID+`"}`))
	}()
	return done
}

// result waits for a Command's result.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Command did not return")
		return nil
	}
}

// connections is how many connections of the device the server counts.
func connections(s *Server, deviceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[deviceID]
}

// listened waits for the handler's next Listening call and returns the
// device.
func listened(t *testing.T, rec *recorder) string {
	t.Helper()
	select {
	case d := <-rec.listening:
		return d.ID
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not told that the device listens for commands")
		return ""
	}
}

func requirePending(t *testing.T, done <-chan error, why string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Command returned %v: %s", err, why)
	default:
	}
}

// oldConnectionWithCommand connects dev1 (CleanSession 0), subscribes to
// its commands, and sends it command A, which the connection reads and
// never acknowledges.
func oldConnectionWithCommand(t *testing.T, s *Server, addr string, rec *recorder) (*rawClient, <-chan error, packets.Packet) {
	old, code, _ := dialRaw(t, addr, "dev1", "dev1", "secret", false)
	require.Zero(t, code)
	old.subscribe("$oc/devices/dev1/sys/commands/#")
	require.Equal(t, "dev1", listened(t, rec))
	a := command(s, "dev1", "A")
	pub := old.read()
	require.Equal(t, packets.Publish, pub.FixedHeader.Type)
	require.Equal(t, CommandTopic("dev1", "A"), pub.TopicName)
	require.EqualValues(t, 1, pub.FixedHeader.Qos)
	require.False(t, pub.FixedHeader.Dup)
	return old, a, pub
}

// TestCommandSessionTakeover: a device reconnects with the same client id
// while a command PUBLISH is in flight to its old connection, which never
// acknowledges it. DELIVERED (Command returns nil) means a PUBACK for that
// command on the connection that holds the session now (MQTT 3.1.1 §4.4,
// §3.1.2.4; 5.0 §4.4).
func TestCommandSessionTakeover(t *testing.T) {
	t.Run("session resumed: the command is re-sent with DUP and delivered by the new connection's PUBACK", func(t *testing.T) {
		rec := newRecorder()
		s, addr := serve(t, testDevices{}, rec)
		old, a, pub := oldConnectionWithCommand(t, s, addr, rec)

		cur, code, present := dialRaw(t, addr, "dev1", "dev1", "secret", false)
		require.Zero(t, code)
		require.True(t, present, "CleanSession 0: the session is resumed")
		dup := cur.read()
		require.Equal(t, packets.Publish, dup.FixedHeader.Type)
		require.True(t, dup.FixedHeader.Dup, "re-sent with DUP (MQTT 3.1.1 §4.4)")
		require.Equal(t, pub.PacketID, dup.PacketID)
		require.Equal(t, pub.TopicName, dup.TopicName)
		require.True(t, old.closed(), "the old connection is closed (session taken over)")
		require.Eventually(t, func() bool { return connections(s, "dev1") == 1 }, 5*time.Second, time.Millisecond,
			"the old connection's close is handled")
		cur.ping()
		requirePending(t, a, "neither connection acknowledged the command; the resumed session still carries it")

		cur.puback(dup.PacketID)
		require.NoError(t, result(t, a), "the new connection's PUBACK delivers it")
		require.Equal(t, "dev1", listened(t, rec), "the resumed session's subscription covers the command topic: the device listens")
	})

	t.Run("clean session: the command fails undelivered, and a PUBACK of the same packet id for another command is that command's", func(t *testing.T) {
		rec := newRecorder()
		s, addr := serve(t, testDevices{}, rec)
		old, a, pub := oldConnectionWithCommand(t, s, addr, rec)

		cur, code, present := dialRaw(t, addr, "dev1", "dev1", "secret", true)
		require.Zero(t, code)
		require.False(t, present, "CleanSession 1: the old session and its in-flight message are discarded")
		require.True(t, old.closed(), "the old connection is closed (session taken over)")
		select {
		case err := <-a:
			require.ErrorIs(t, err, ErrDisconnected, "the command left with the discarded session: not delivered")
		case <-time.After(10 * time.Second):
			t.Fatal("Command still waits for a PUBACK that cannot come: the session that carried it is gone")
		}

		// A PUBACK on the new connection for the old packet id, before
		// anything was sent on it, delivers nothing.
		cur.puback(pub.PacketID)
		cur.ping()

		cur.subscribe("$oc/devices/dev1/sys/commands/#")
		require.Equal(t, "dev1", listened(t, rec))
		b := command(s, "dev1", "B")
		pubB := cur.read()
		require.Equal(t, CommandTopic("dev1", "B"), pubB.TopicName)
		require.False(t, pubB.FixedHeader.Dup)
		require.Equal(t, pub.PacketID, pubB.PacketID, "B goes out under A's packet id: the PUBACK below is for both ids alike")
		require.Eventually(t, func() bool { return connections(s, "dev1") == 1 }, 5*time.Second, time.Millisecond)
		cur.ping()
		requirePending(t, b, "B is not acknowledged yet")
		cur.puback(pubB.PacketID)
		require.NoError(t, result(t, b))
	})
}

// TestCommandToConnectionUnknownToBroker: the broker writes downlinks
// only to the clients it knows by id, and the clean-up of a connection
// that closed cleanly removes its client id after the disconnect hook — so
// a connection with the same id opened in between stays open and
// subscribed but is written nothing. Seen in the platform's tests: the
// command came out DELIVERED (Command returned nil) and the device never
// had it. Here the broker forgets the client the way that clean-up does: a
// command is not delivered (ErrNotSubscribed), and the connection is
// closed so that the device connects again.
func TestCommandToConnectionUnknownToBroker(t *testing.T) {
	rec := newRecorder()
	s, addr := serve(t, testDevices{}, rec)
	c, code, _ := dialRaw(t, addr, "dev1", "dev1", "secret", true)
	require.Zero(t, code)
	c.subscribe("$oc/devices/dev1/sys/commands/#")
	require.Equal(t, "dev1", listened(t, rec))

	known, ok := s.b.Clients.Get("dev1")
	require.True(t, ok)
	s.b.Clients.Delete(known.ID) // as the clean-up of an earlier connection with this id does

	err := result(t, command(s, "dev1", "Z"))
	require.ErrorIs(t, err, ErrNotSubscribed, "written to no connection: not delivered")
	require.True(t, c.closed(), "the connection the broker lost is closed")
	require.Eventually(t, func() bool { return connections(s, "dev1") == 0 }, 5*time.Second, time.Millisecond)
}
