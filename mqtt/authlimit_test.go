package mqtt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// namedDevices accepts every username but "nobody" with the password
// "secret", under the deviceId {name} or the nodeId node-{name}; it says
// which failures name a device (AuthError) and which none
// (ErrUnknownDevice), and counts its calls.
type namedDevices struct{ calls atomic.Int64 }

func (d *namedDevices) Authenticate(_ context.Context, user, pass string) (Device, error) {
	d.calls.Add(1)
	id, node := user, "node-"+user
	if len(user) > 5 && user[:5] == "node-" {
		id, node = user[5:], user
	}
	if id == "nobody" {
		return Device{}, ErrUnknownDevice
	}
	if pass != "secret" {
		return Device{}, &AuthError{DeviceID: id, NodeID: node, Err: errors.New("bad secret")}
	}
	return Device{ID: id, NodeID: node}, nil
}

// bubbleServer runs a Server with no listener in the test's bubble; pipe
// connects clients to it. It is closed when f returns.
func bubbleServer(t *testing.T, devs Devices, cfg Config) *Server {
	cfg.Addr, cfg.TLSAddr = "off", "off"
	s, err := New(devs, noHandler{}, cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, s.Close())
		require.NoError(t, <-done)
	})
	synctest.Wait()
	return s
}

// pipeConnect connects to s over an in-memory pipe with MQTT 3.1.1 (or 5)
// and returns the CONNACK's code; the connection is closed.
func pipeConnect(t *testing.T, s *Server, user, pass string, v5 bool) byte {
	t.Helper()
	cli, srv := net.Pipe()
	defer cli.Close()
	go s.b.EstablishConnection("pipe", srv)
	c := &rawClient{t: t, conn: cli, r: bufio.NewReader(cli)}
	version := byte(4)
	if v5 {
		version = 5
	}
	return c.connect(version, "", user, pass, true).ReasonCode
}

// TestAuthLimitDevice: after Burst bad secrets a device is refused with
// 0x9F (3.1.1: 3) even with the right secret, which is not checked, under
// either of its names; another device connects; after Every the device
// connects again.
func TestAuthLimitDevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := &namedDevices{}
		s := bubbleServer(t, devs, Config{DeviceAuthLimit: AuthLimit{Burst: 3, Every: 10 * time.Second}})
		for range 3 {
			require.Equal(t, packets.Err3NotAuthorized.Code, pipeConnect(t, s, "dev1", "guess", false))
		}
		calls := devs.calls.Load()
		require.Equal(t, packets.Err3ServerUnavailable.Code, pipeConnect(t, s, "dev1", "secret", false), "the right secret while limited")
		require.Equal(t, packets.ErrConnectionRateExceeded.Code, pipeConnect(t, s, "dev1", "secret", true), "MQTT 5")
		require.Equal(t, packets.Err3ServerUnavailable.Code, pipeConnect(t, s, "node-dev1", "secret", false), "the device's other name")
		require.Equal(t, calls, devs.calls.Load(), "the secret of a limited device is not checked")
		require.EqualValues(t, 3, s.Stats().AuthLimited)

		require.Zero(t, pipeConnect(t, s, "dev2", "secret", false), "another device")

		time.Sleep(10 * time.Second)
		require.Zero(t, pipeConnect(t, s, "dev1", "secret", false), "a token is back")
	})
}

// TestAuthLimitAddress: failures from one source address, for unknown
// devices or spread over devices, exhaust the address's budget (and keep
// no state for the unknown names); successes never do.
func TestAuthLimitAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := bubbleServer(t, &namedDevices{}, Config{AddrAuthLimit: AuthLimit{Burst: 5, Every: time.Second}})
		for range 20 {
			require.Zero(t, pipeConnect(t, s, "dev1", "secret", false), "honest devices behind one address")
		}
		for range 5 {
			require.Equal(t, packets.Err3NotAuthorized.Code, pipeConnect(t, s, "nobody", "guess", false))
		}
		s.limits.dev.mu.Lock()
		require.Empty(t, s.limits.dev.m, "no state for a name that is no device, nor for devices that connected")
		s.limits.dev.mu.Unlock()
		require.Equal(t, packets.Err3ServerUnavailable.Code, pipeConnect(t, s, "dev2", "secret", false), "the address is limited")
		time.Sleep(time.Second)
		require.Zero(t, pipeConnect(t, s, "dev2", "secret", false))
	})
}

// TestAuthLimitParallel: attempts checked in parallel count as failures
// while they are checked, so no more than Burst pass together.
func TestAuthLimitParallel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l authLimits
		l.dev = authBuckets{r: AuthLimit{Burst: 3, Every: time.Second}, max: 10}
		l.addr = authBuckets{r: AuthLimit{Burst: 100, Every: time.Second}, max: 10}
		now := time.Now()
		var as []*attempt
		for range 3 {
			a, _ := l.begin(now, "dev1", "a")
			require.NotNil(t, a)
			as = append(as, a)
		}
		a, who := l.begin(now, "dev1", "a")
		require.Nil(t, a)
		require.Equal(t, "device", who)
		l.succeeded(now, as[0])
		a, _ = l.begin(now, "dev1", "a")
		require.NotNil(t, a, "a success gives its place back")
	})
}

// TestAuthLimitAddressParallel: honest devices behind one NAT address may
// all be checked at once (a reconnect storm) beyond the address's failure
// Burst; only failures spent, or more than addrParallel at once, limit it.
func TestAuthLimitAddressParallel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l authLimits
		l.dev = authBuckets{r: AuthLimit{Burst: 3, Every: time.Second}, max: 100_000}
		l.addr = authBuckets{r: AuthLimit{Burst: 5, Every: time.Second}, max: 10, parallel: 50}
		now := time.Now()
		var as []*attempt
		for i := range 50 {
			a, who := l.begin(now, fmt.Sprintf("dev%d", i), "nat")
			require.NotNil(t, a, "device %d of the NAT checked at once: %s", i, who)
			as = append(as, a)
		}
		a, who := l.begin(now, "dev50", "nat")
		require.Nil(t, a, "more than parallel at once")
		require.Equal(t, "source address", who)
		for _, a := range as {
			l.succeeded(now, a)
		}
		// Five failures spend the address's budget: then it is limited.
		for i := range 5 {
			a, _ := l.begin(now, fmt.Sprintf("bad%d", i), "nat")
			require.NotNil(t, a)
			l.failed(now, a, ErrUnknownDevice)
		}
		a, who = l.begin(now, "dev1", "nat")
		require.Nil(t, a)
		require.Equal(t, "source address", who)
	})
}
