package registry

import (
	"slices"
	"strings"
	"time"
)

// Status is a device's state (REG-3).
type Status string

// Device states (REG-3).
const (
	// StatusInactive: registered, never connected (not bound).
	StatusInactive Status = "INACTIVE"
	// StatusOnline: bound and heard from recently.
	StatusOnline Status = "ONLINE"
	// StatusOffline: bound, but silent longer than Config.SilencePeriod
	// (NB-IoT) or disconnected longer than Config.DisconnectGrace.
	StatusOffline Status = "OFFLINE"
	// StatusAbnormal: marked by the platform (Registry.MarkAbnormal); stays
	// until Registry.ClearAbnormal.
	StatusAbnormal Status = "ABNORMAL"
)

// Valid reports whether s is one of the four states.
func (s Status) Valid() bool {
	switch s {
	case StatusInactive, StatusOnline, StatusOffline, StatusAbnormal:
		return true
	}
	return false
}

// NodeType says whether a device is a plain endpoint or a gateway that
// other devices sit behind (REG-4).
type NodeType string

// Node types (REG-4).
const (
	Endpoint NodeType = "ENDPOINT"
	Gateway  NodeType = "GATEWAY"
)

// Security is how a device's transport is secured (SEC-1).
type Security string

// Transport securities (SEC-1).
const (
	// SecurityPSK: the device connects only over DTLS with its PSK; a
	// plain-CoAP connection in its name is refused. The default.
	SecurityPSK Security = "PSK"
	// SecurityNone: the device has no key and connects only over plain
	// CoAP, proving itself with its verifyCode; for networks that secure
	// the link themselves (a private APN).
	SecurityNone Security = "NONE"
	// SecuritySecret: the device connects only over MQTT, with its
	// deviceId or nodeId and the secret set at registration (MQT-1); it
	// has no PSK and no CoAP access. The default for protocolType MQTT.
	SecuritySecret Security = "SECRET"
)

// Valid reports whether s is SecurityPSK, SecurityNone or SecuritySecret.
func (s Security) Valid() bool { return s == SecurityPSK || s == SecurityNone || s == SecuritySecret }

// Info is the descriptive part of a device (deviceInfo in the API).
// ManufacturerID and Model name the device's product.
type Info struct {
	ManufacturerID   string
	ManufacturerName string
	DeviceType       string
	Model            string
	ProtocolType     string // "CoAP", "LWM2M", "MQTT", …
	Name             string
	SWVersion        string
	FWVersion        string
	Mode             string // power-saving mode as the device reports it: "PSM", "DRX", "eDRX"; free-form
}

// Device is one registered device. Stores hand out copies: changing a
// Device returned by Get changes nothing stored.
type Device struct {
	ID         string   // deviceId, assigned by the registry (a UUIDv7: sorts by registration time)
	NodeID     string   // IMEI or MAC as registered; unique by NodeKey
	VerifyCode string   // what a plain (non-DTLS) device presents to bind; defaults to NodeID
	PSK        PSK      // DTLS pre-shared key; prints as REDACTED; nil for SecurityNone
	Security   Security // SecurityPSK, SecurityNone or SecuritySecret; "" (a record older than SEC-1) means SecurityPSK
	// SecretHash is the salted hash of an MQTT device's secret
	// (SecuritySecret); nil for every other device.
	SecretHash SecretHash
	Info       Info

	// AppID is the application that owns the device (APP-3): opaque to
	// the registry, which keeps it, indexes it (Query.AppID) and gives a
	// gateway's sub-devices their gateway's. "" means no owner (a record
	// older than ownership, or a platform without applications).
	AppID string

	GatewayID string   // the gateway this device sits behind; "" for none
	NodeType  NodeType // ENDPOINT or GATEWAY
	Groups    []string // ids of the groups the device belongs to, sorted

	Status  Status
	Timeout time.Duration // binding timeout (REG-2); 0 means the registration never expires
	Bound   bool          // the device has connected with its credentials at least once

	// Connected is true while a connection-oriented device holds its
	// connection open (Connect with Persistent); NB-IoT devices are never
	// Connected and go OFFLINE by silence instead.
	Connected bool

	CreatedAt      time.Time
	LastModified   time.Time // last change by the application (Register, Update, groups)
	LastSeen       time.Time // last connection or uplink; zero before binding
	DisconnectedAt time.Time // when a connection-oriented device last disconnected

	// Deadline is the next moment the registry must look at the device:
	// its binding expiry while unbound, when it would go OFFLINE while
	// ONLINE, zero when nothing is pending. Stores index it (Store.Due).
	Deadline time.Time
}

// Clone returns a deep copy of d.
func (d Device) Clone() Device {
	d.PSK = slices.Clone(d.PSK)
	d.SecretHash = slices.Clone(d.SecretHash)
	d.Groups = slices.Clone(d.Groups)
	return d
}

// InGroup reports whether d belongs to the group with id groupID.
func (d *Device) InGroup(groupID string) bool {
	_, ok := slices.BinarySearch(d.Groups, groupID)
	return ok
}

// NodeKey returns the key under which nodeID is unique: "urn:imei:X" (any
// case of the prefix) and "X" are the same device (REG-1).
func NodeKey(nodeID string) string {
	const p = "urn:imei:"
	if len(nodeID) >= len(p) && strings.EqualFold(nodeID[:len(p)], p) {
		return nodeID[len(p):]
	}
	return nodeID
}

// Group is a named set of devices (REG-4). Membership is kept on the
// devices (Device.Groups).
type Group struct {
	ID          string
	Name        string // unique
	Description string
	CreatedAt   time.Time
}

// Query selects devices for List. Empty filters match everything; filters
// combine with AND. Results are ordered by deviceId (registration order).
type Query struct {
	Status         Status // "" for any
	ManufacturerID string // "" for any
	Model          string // "" for any
	DeviceType     string // "" for any
	GatewayID      string // sub-devices of this gateway
	GroupID        string // members of this group
	NodeType       NodeType
	AppID          string    // devices of this application (Device.AppID); "" for any
	From, To       time.Time // registered in [From, To); zero means open

	PageNo   int // 0 is the first page
	PageSize int // 0 means no paging: every match
}

// Match reports whether d passes q's filters (not its paging).
func (q *Query) Match(d *Device) bool {
	return (q.Status == "" || d.Status == q.Status) &&
		(q.ManufacturerID == "" || d.Info.ManufacturerID == q.ManufacturerID) &&
		(q.Model == "" || d.Info.Model == q.Model) &&
		(q.DeviceType == "" || d.Info.DeviceType == q.DeviceType) &&
		(q.GatewayID == "" || d.GatewayID == q.GatewayID) &&
		(q.NodeType == "" || d.NodeType == q.NodeType) &&
		(q.AppID == "" || d.AppID == q.AppID) &&
		(q.From.IsZero() || !d.CreatedAt.Before(q.From)) &&
		(q.To.IsZero() || d.CreatedAt.Before(q.To)) &&
		(q.GroupID == "" || d.InGroup(q.GroupID))
}

// Window returns the slice bounds [lo, hi) of q's page in a result of n
// matches.
func (q *Query) Window(n int) (lo, hi int) {
	if q.PageSize <= 0 {
		return 0, n
	}
	pages := n / q.PageSize
	if n%q.PageSize != 0 {
		pages++
	}
	if q.PageNo < 0 || q.PageNo >= pages {
		return n, n
	}
	lo = q.PageNo * q.PageSize
	return lo, min(lo+q.PageSize, n)
}
