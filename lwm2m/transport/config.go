package transport

import (
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/pion/dtls/v3"
)

// CipherSuite is a DTLS 1.2 PSK cipher suite the server offers (LWM-1).
type CipherSuite uint16

// The two PSK cipher suites of LWM-1.
const (
	TLS_PSK_WITH_AES_128_CCM_8      = CipherSuite(dtls.TLS_PSK_WITH_AES_128_CCM_8)      //nolint:revive // IANA name
	TLS_PSK_WITH_AES_128_CBC_SHA256 = CipherSuite(dtls.TLS_PSK_WITH_AES_128_CBC_SHA256) //nolint:revive // IANA name
)

// Config configures a Server. The zero value is a working server on the
// standard ports with the NB-IoT profile.
type Config struct {
	UDPAddr     string // plain CoAP listen address; "" means ":5683"
	DTLSAddr    string // CoAP over DTLS listen address; "" means ":5684"
	DisableUDP  bool   // true switches plain CoAP off (DTLS only)
	DisableDTLS bool   // true switches DTLS off (plain CoAP only; for tests and labs)

	// CipherSuites the DTLS listener offers; nil means both suites of LWM-1
	// (TLS_PSK_WITH_AES_128_CCM_8 first).
	CipherSuites []CipherSuite
	// ConnectionIDLength is the length of the DTLS Connection ID (RFC 9146)
	// the server asks devices to send (LWM-10); 0 means 8, negative
	// switches Connection IDs off.
	ConnectionIDLength int
	// HandshakeTimeout bounds one DTLS handshake; 0 means 30s.
	HandshakeTimeout time.Duration
	// IdleTimeout ends a session that has no registration after this long
	// without traffic; 0 means 5 minutes. Sessions of registered devices
	// live as long as their registration (sleeping devices keep them).
	IdleTimeout time.Duration

	// ParkSessions parks the DTLS session of a queue-mode device once its
	// awake window has passed: the connection state is serialized and the
	// connection closed without a close_notify, and the device's next record
	// resumes it without a handshake (see park.go). Off by default.
	ParkSessions bool

	// AwakeWindow is how long a queue-mode device stays reachable after it
	// sends anything (LWM-8); 0 means 93s (CoAP MAX_TRANSMIT_WAIT).
	AwakeWindow time.Duration
	// DefaultLifetime applies when a registration has no lt; 0 means 86400s
	// (or MaxLifetime when that is shorter).
	DefaultLifetime time.Duration
	// MaxLifetime is the longest registration lifetime (lt) accepted; a
	// Register or Update asking for more is refused with 4.00 Bad Request
	// naming the limit (SEC-2). 0 means 72h: three times the default, so a
	// device that reports once a day may miss a report. Refused rather
	// than shortened: LwM2M cannot tell the device a shorter lifetime, and
	// a device that believed itself registered longer than the server does
	// would be unreachable without knowing it; a refusal shows at once.
	MaxLifetime time.Duration
	// Transmission is the default retransmission profile for requests to
	// devices (LWM-9); the zero value is the NB-IoT profile (10 s, 1.5, 3).
	// Server.SetTransmission overrides it per device.
	Transmission Transmission

	// MaxSessions caps live device sessions (DTLS connections plus
	// registered plain CoAP peers; a plain CoAP peer counts only once its
	// registration is accepted, SEC-2); a device beyond it gets 5.03
	// Service Unavailable. 0 means 100000.
	MaxSessions int
	// MaxMessageSize is the largest datagram accepted; a larger request gets
	// 4.13 Request Entity Too Large with Size1. 0 means 4096.
	MaxMessageSize int
	// RequestRate is the sustained number of requests per second one
	// session may make; more get 4.29 Too Many Requests. 0 means 20.
	RequestRate float64
	// RequestBurst is how many requests a session may make at once; 0
	// means 40.
	RequestBurst int
	// StrangerAnswerRate caps the answers per second, all together, to
	// plain CoAP senders without a registration (SEC-2: their address may
	// be forged); beyond it answers are dropped and counted
	// (Server.StrangerAnswersDropped). 0 means 1000.
	StrangerAnswerRate float64
	// StrangerDownloadRate caps the bytes per second of file blocks sent,
	// all together, to plain CoAP peers that download without a
	// registration (SEC-2); StrangerDownloadRatePerIP caps them per source
	// IP (IPv6: /64). A block beyond either gets 4.29 with Max-Age.
	// 0 means 262144 (256 KiB/s) and 32768 (32 KiB/s).
	StrangerDownloadRate, StrangerDownloadRatePerIP int

	// MaxSendSize is the largest Send (/dp) body accepted, whole or
	// assembled from Block1 blocks (RFC 7959); a larger one is refused
	// with 4.13 Request Entity Too Large and Size1 (RFC 7959 §2.9.3,
	// LWM-12). 0 means 16384; at most 1 MiB (the largest Block1 body).
	MaxSendSize int
	// SendPaths are the paths, besides the data channel /19/0/0, whose
	// values a Send (/dp) may carry (LWM-12). A Send's records under them
	// come as one EventNotification with Path "/dp"; a Send with none of
	// them and no /19/0/0 value is refused with 4.04. nil means /5/0/3 and
	// /5/0/5, the firmware update State and Update Result;
	// []Path{RootPath} takes every path.
	SendPaths []lwm2m.Path

	// Policy says which endpoints may register and over which transport
	// (SEC-1); it is asked before the server keeps anything for a
	// registration. nil means: a DTLS device is accepted by virtue of its
	// key (the KeyStore), and plain CoAP refuses every registration with
	// 4.01 Unauthorized — set a Policy that answers SecurityNone for the
	// devices allowed on plain CoAP.
	Policy EndpointPolicy

	// Observations keeps observation tokens so that notifications are
	// understood after a restart; nil means a fresh MemoryObservationStore.
	Observations ObservationStore
	// Files are served to devices with GET and Block2 under FilesPath, e.g.
	// firmware packages for object 5; nil serves none.
	Files FileSource
	// FilesPath is the path prefix of Files; "" means "/fw".
	FilesPath string
	// Model defines the objects used to decode device payloads; nil
	// means lwm2m.NewBuiltinObjects() (objects 0, 1, 3, 4, 5, 19).
	Model *lwm2m.Objects
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger

	// MaxHandshakes caps DTLS handshakes in flight (SEC-2); a ClientHello
	// with a valid cookie beyond it is dropped and counted, and the device
	// retransmits it. 0 means 1024.
	MaxHandshakes int
	// MaxHandshakesPerIP caps the DTLS handshakes in flight from one source
	// IP address (IPv6: one /64), so that one host cannot hold the
	// MaxHandshakes slots; a ClientHello with a valid cookie beyond it is
	// dropped and counted (DTLSStats.HellosDroppedPerIP), and the device
	// retransmits it. NB-IoT devices behind a carrier NAT share addresses,
	// so keep it well above the handshakes one NAT address starts at once.
	// 0 means 32.
	MaxHandshakesPerIP int
	// Sessions keeps DTLS sessions for resumption by session ID (an
	// abbreviated handshake); nil means no resumption.
	Sessions SessionStore
	// Registrations keeps registrations and parked DTLS sessions across
	// restarts, crashes included (LWM-14, persist.go); nil means they
	// live as long as the Server.
	Registrations RegistrationStore
	// SharedRegistrations says that other servers write Registrations too
	// (a cluster on one database, CLU-3): a DTLS record the router does
	// not know is looked up there by its Connection ID (or, without one,
	// by its source address) and the session it belongs to taken over
	// without a handshake, and a session parked here is checked against
	// the store before it resumes, in case another server has used it
	// since (see adopt.go). It needs Registrations.
	SharedRegistrations bool
	// StoreLookupsPerSource caps the store lookups (SharedRegistrations)
	// that records from one source IP address start a second; 0 means 16.
	// Behind a balancer that replaces the devices' source addresses with
	// its own, all devices share one: raise it to StoreLookupsPerSecond.
	StoreLookupsPerSource int
	// StoreLookupsPerSecond caps the store lookups all sources start a
	// second; 0 means 2048.
	StoreLookupsPerSecond int
}

func (c Config) withDefaults() (Config, error) {
	if c.UDPAddr == "" {
		c.UDPAddr = ":5683"
	}
	if c.DTLSAddr == "" {
		c.DTLSAddr = ":5684"
	}
	if c.StoreLookupsPerSource < 0 || c.StoreLookupsPerSecond < 0 {
		return c, &ConfigError{Field: "StoreLookupsPerSource/StoreLookupsPerSecond", Problem: "must not be negative (0 means the default)"}
	}
	if c.StoreLookupsPerSource == 0 {
		c.StoreLookupsPerSource = lookupsPerIP
	}
	if c.StoreLookupsPerSecond == 0 {
		c.StoreLookupsPerSecond = lookupsPerSecond
	}
	if c.SharedRegistrations && c.Registrations == nil {
		return c, &ConfigError{Field: "SharedRegistrations", Problem: "needs Registrations, the store the servers share"}
	}
	if c.DisableUDP && c.DisableDTLS {
		return c, &ConfigError{Field: "DisableUDP/DisableDTLS", Problem: "both transports are switched off; keep at least one"}
	}
	if !c.DisableUDP {
		if _, err := net.ResolveUDPAddr("udp", c.UDPAddr); err != nil {
			return c, &ConfigError{Field: "UDPAddr", Problem: "not a host:port (" + err.Error() + ")"}
		}
	}
	if !c.DisableDTLS {
		if _, err := net.ResolveUDPAddr("udp", c.DTLSAddr); err != nil {
			return c, &ConfigError{Field: "DTLSAddr", Problem: "not a host:port (" + err.Error() + ")"}
		}
	}
	if len(c.CipherSuites) == 0 {
		c.CipherSuites = []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256}
	}
	for _, cs := range c.CipherSuites {
		if cs != TLS_PSK_WITH_AES_128_CCM_8 && cs != TLS_PSK_WITH_AES_128_CBC_SHA256 {
			return c, &ConfigError{Field: "CipherSuites", Problem: "only TLS_PSK_WITH_AES_128_CCM_8 (0xC0A8) and TLS_PSK_WITH_AES_128_CBC_SHA256 (0x00AE) are allowed"}
		}
	}
	if c.ConnectionIDLength == 0 {
		c.ConnectionIDLength = 8
	}
	if c.ConnectionIDLength > 255 {
		return c, &ConfigError{Field: "ConnectionIDLength", Problem: "at most 255 bytes"}
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.AwakeWindow <= 0 {
		c.AwakeWindow = 93 * time.Second
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = 72 * time.Hour
	}
	if c.DefaultLifetime <= 0 {
		c.DefaultLifetime = min(86400*time.Second, c.MaxLifetime)
	}
	if c.DefaultLifetime > c.MaxLifetime {
		return c, &ConfigError{Field: "DefaultLifetime", Problem: "longer than MaxLifetime (" + c.MaxLifetime.String() + ")"}
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 100000
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 4096
	}
	if c.MaxMessageSize < 64 {
		return c, &ConfigError{Field: "MaxMessageSize", Problem: "at least 64 bytes"}
	}
	if c.MaxSendSize <= 0 {
		c.MaxSendSize = 16384
	}
	if c.MaxSendSize > maxBlock1Body {
		return c, &ConfigError{Field: "MaxSendSize", Problem: "at most 1048576 bytes (the largest Block1 body)"}
	}
	if c.SendPaths == nil {
		c.SendPaths = []lwm2m.Path{lwm2m.MustPath("/5/0/3"), lwm2m.MustPath("/5/0/5")}
	}
	if c.RequestRate <= 0 {
		c.RequestRate = 20
	}
	if c.RequestBurst <= 0 {
		c.RequestBurst = 40
	}
	if c.StrangerAnswerRate <= 0 {
		c.StrangerAnswerRate = 1000
	}
	if c.StrangerDownloadRate <= 0 {
		c.StrangerDownloadRate = 256 << 10
	}
	if c.StrangerDownloadRatePerIP <= 0 {
		c.StrangerDownloadRatePerIP = 32 << 10
	}
	if c.Observations == nil {
		c.Observations = NewMemoryObservationStore()
	}
	if c.FilesPath == "" {
		c.FilesPath = "/fw"
	}
	c.FilesPath = "/" + strings.Trim(c.FilesPath, "/")
	if c.Model == nil {
		c.Model = lwm2m.NewBuiltinObjects()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = 1024
	}
	if c.MaxHandshakesPerIP <= 0 {
		c.MaxHandshakesPerIP = 32
	}
	return c, nil
}

func dtlsSuites(cs []CipherSuite) []dtls.CipherSuiteID {
	out := make([]dtls.CipherSuiteID, len(cs))
	for i, c := range cs {
		out[i] = dtls.CipherSuiteID(c)
	}
	return out
}
