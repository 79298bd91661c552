package ceiling_test

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/mqtt/ceiling"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// TestBroker: any client connects with any credentials and its QoS 1
// publishes on any topic are acknowledged; after Close (twice) nobody
// connects.
func TestBroker(t *testing.T) {
	b, err := ceiling.Start(ceiling.Config{})
	require.NoError(t, err)
	defer b.Close()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("dev-1").
		SetUsername("dev-1").SetPassword("anything").SetAutoReconnect(false).SetConnectRetry(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second), "connect")
	require.NoError(t, tok.Error())
	for _, topic := range []string{"$oc/devices/dev-1/sys/properties/report", "any/topic"} {
		tok = c.Publish(topic, 1, false, []byte(`{}`))
		require.True(t, tok.WaitTimeout(5*time.Second), "PUBACK on %s", topic)
		require.NoError(t, tok.Error(), topic)
	}
	c.Disconnect(100)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	c = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("dev-2").
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(time.Second))
	tok = c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second), "connect after Close")
	require.Error(t, tok.Error(), "connect after Close")
}
