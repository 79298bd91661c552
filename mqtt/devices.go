package mqtt

import (
	"context"
	"time"
)

// Device is the device a client authenticated as.
type Device struct {
	ID      string // deviceId
	NodeID  string
	Gateway bool // a gateway may use its sub-devices' topics (MQT-5)
}

// Devices authenticates clients. The platform adapts its device registry
// to it.
type Devices interface {
	// Authenticate checks a connecting client's username (the device's
	// deviceId or nodeId) and password (its secret), in constant time,
	// and returns the device. Any error refuses the connection with
	// "bad user name or password" (MQTT 5: 0x86; 3.1.1: 4) and spends
	// the failure budgets (package doc): an error wrapping
	// ErrUnknownDevice only the source address's, an *AuthError also the
	// device's under both its names, any other the address's and the
	// username's.
	Authenticate(ctx context.Context, username, password string) (Device, error)
}

// SubDevices is an optional ability of Devices (MQT-5): with it, a gateway
// may publish and subscribe on the topics of the devices registered
// behind it.
type SubDevices interface {
	// SubDevice reports whether deviceID sits behind the gateway
	// gatewayID.
	SubDevice(ctx context.Context, gatewayID, deviceID string) bool
}

// Message is what a device published on one of its uplink topics.
type Message struct {
	Kind      Kind
	DeviceID  string // the device the topic names: the sender, or a gateway's sub-device
	Via       Device // the connected device that sent it
	RequestID string // KindCommandResponse: the request_id of the topic
	Payload   []byte // at most Config.MaxPayload bytes (KindSubDeviceReports: MaxBatchPayload); owned by the handler
	Time      time.Time
}

// Handler is told what devices send and when they come and go. Its
// methods are called from the connections' goroutines and must be safe
// for concurrent use.
type Handler interface {
	// Message is called before a QoS 1 message is acknowledged: a nil
	// error means the message is kept, and the device gets its PUBACK
	// once Message returns. See ErrRefused for errors.
	Message(m Message) error
	// Connected is called when a device's first connection is
	// established (CONNACK sent).
	Connected(d Device)
	// Listening is called when a connection of the device subscribed to
	// a filter covering its command topic: downlinks can reach it now.
	Listening(d Device)
	// Disconnected is called when the device's last connection closed:
	// it disconnected, its keep-alive expired, or it was refused. err is
	// why (nil for a clean DISCONNECT).
	Disconnected(d Device, err error)
}
