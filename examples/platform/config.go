package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/store"
)

// Config is everything the platform can be told. Flags set the common
// fields; -config names a JSON file with any of them (flags given on the
// command line win over the file).
type Config struct {
	DataDir string `json:"dataDir"` // bbolt file and apps live here; default ./doze-data
	// Store is where devices, commands, history … are kept: "" (the
	// default) is the bbolt file doze.db in DataDir, a path another bbolt
	// file, a postgres:// or postgresql:// URL a PostgreSQL database that
	// several platform nodes may share (apps are kept there too).
	Store string `json:"store"`
	// NodeID names this platform node in the shared store and in logs;
	// default the host name. Keep it stable across restarts: a node
	// replays the acknowledged uplinks it had not processed by this id.
	NodeID string `json:"nodeId"`
	// NATS, a nats:// (or tls://) URL, routes between the nodes that
	// share a PostgreSQL Store (cluster.go, docs/cluster.md): commands,
	// wake-ups and LwM2M operations reach the node that has the device's
	// session. "" (the default) runs without routing.
	NATS string `json:"nats"`
	// Cluster names the cluster on NATS (subjects doze.<cluster>.…), so
	// that several clusters can share one NATS server; default "doze".
	Cluster  string `json:"cluster"`
	HTTPAddr string `json:"httpAddr"` // northbound REST API and console; default :8743
	// HTTPMaxConns and HTTPMaxConnsPerIP bound the connections open at
	// once on the REST API and operator listeners, in all and from one IP
	// address; one over either is answered 503 (closed, over TLS) at once;
	// defaults 8,192 and 256 (connlimit.go).
	HTTPMaxConns      int      `json:"httpMaxConns"`
	HTTPMaxConnsPerIP int      `json:"httpMaxConnsPerIP"`
	CoAPAddr          string   `json:"coapAddr"`  // plain CoAP over UDP; default :5683; "off" disables it
	DTLSAddr          string   `json:"dtlsAddr"`  // CoAP over DTLS-PSK; default :5684
	TLSCert           string   `json:"tlsCert"`   // PEM certificate for HTTPS; empty serves plain HTTP
	TLSKey            string   `json:"tlsKey"`    // PEM key for HTTPS
	Demo              bool     `json:"demo"`      // create the demo app and water-meter product; default true
	AllowPush         []string `json:"allowPush"` // callback hosts/CIDRs allowed despite the SSRF guard; default: loopback with demo, none without

	// BootstrapAddr and BootstrapDTLSAddr are the LwM2M bootstrap
	// server's plain CoAP and DTLS addresses (LWM-13; conventionally
	// :5783 and :5784); default "off", both.
	BootstrapAddr     string `json:"bootstrapAddr"`
	BootstrapDTLSAddr string `json:"bootstrapDtlsAddr"`

	// AdminAddr serves the operator endpoints (/metrics), apart from the
	// public API (SEC-5); default 127.0.0.1:8744; "off" disables it. An
	// address that is not loopback needs AdminToken.
	AdminAddr string `json:"adminAddr"`
	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on the admin listener, and is the administrator credential of the
	// apps API (/doze/v1/apps, APP-3); default none: the admin listener
	// is loopback only, and the apps API takes a token created and
	// printed on the first start.
	AdminToken string `json:"adminToken"`
	// LogLevel is debug, info, warn or error; default info: device
	// connections (aggregated under load), server errors and shutdown.
	// debug adds every connection and every refused API call.
	LogLevel  string `json:"logLevel"`
	LogFormat string `json:"logFormat"` // text or json; default text, on stderr
	// ResetSecret names an app whose secret is replaced at this start and
	// printed once (the -reset-secret flag); not kept.
	ResetSecret string `json:"-"`

	TokenTTL     Duration `json:"tokenTTL"`     // access-token lifetime; default 1h (APP-1)
	RateLimit    int      `json:"rateLimit"`    // API calls per second per app; default 100 (APP-1)
	QueueWindow  Duration `json:"queueWindow"`  // how long a queue-mode device stays reachable after uplink; default 93s (LWM-8)
	HistoryKeep  Duration `json:"historyKeep"`  // history retention; default 168h (STO-2)
	OfflineAfter Duration `json:"offlineAfter"` // NB-IoT silence before OFFLINE; default 25h (REG-3)
	// DisconnectGrace is how long after its LwM2M registration ends
	// (De-register, or lifetime expired) a device goes OFFLINE unless it
	// registers again; default 1m (REG-3).
	DisconnectGrace Duration `json:"disconnectGrace"`
	// AbnormalAfter is how many unusable uplinks in a row (undecodable,
	// over the size limit, fitting no service of the product) make a device
	// ABNORMAL until it sends one that can be used; default 3 (REG-3).
	AbnormalAfter int `json:"abnormalAfter"`
	// DeviceLogSize is how many entries of each device's log are kept
	// (GET /doze/v1/devices/{id}/log); default 200.
	DeviceLogSize int `json:"deviceLogSize"`
	// AckFirst is how long an acknowledged uplink's processing may be held
	// back while devices are acknowledged faster than the pipeline takes
	// their uplinks (a wake storm), so that the CPU goes to acknowledging
	// them and they can sleep again; default 2s, a negative value never
	// holds one back (eventqueue.go).
	AckFirst Duration `json:"ackFirst"`
	// MaxBacklog bounds the uplinks acknowledged and not yet taken by the
	// pipeline; one beyond it is not acknowledged, and the device sends it
	// again; default 200,000 (a few hundred bytes of memory each).
	MaxBacklog  int   `json:"maxBacklog"`
	MaxMessage  int   `json:"maxMessage"`  // largest uplink payload in bytes; default 4096 (APP-2)
	MaxSessions int   `json:"maxSessions"` // device sessions (DTLS plus registered plain CoAP) at once; default 250,000 (~10 KB each when parked)
	MaxUpload   int64 `json:"maxUpload"`   // largest upgrade package in bytes; default 32 MiB (SEC-3)
	MaxUploads  int   `json:"maxUploads"`  // uploads in progress at once, all apps; default 4 (SEC-3)
	// MoveLookupsPerSource caps, with -store postgres://, the database
	// lookups of unknown DTLS Connection IDs that one source IP address
	// causes a second (devices moving between nodes, CLU-3); 0 means 16.
	// Behind a balancer that replaces the devices' addresses with its
	// own, raise it (docs/cluster.md).
	MoveLookupsPerSource int `json:"moveLookupsPerSource"`
	// FirmwareURI is the base of the Package URI written to /5/0/1 (the
	// package id follows), an absolute coap:// or coaps:// URI naming the
	// address devices reach the platform at. Default: derived per device
	// from the bound listeners: coaps://<DTLS listener>/fw/ for a device
	// registered over DTLS (it downloads on a DTLS session of its own,
	// with its PSK), coap://<CoAP listener>/fw/ for one registered over
	// plain CoAP (the package id is the credential). A listener bound to a
	// wildcard address (":5684") gives the host 127.0.0.1: set FirmwareURI
	// when devices are elsewhere.
	FirmwareURI string `json:"firmwareURI"`

	// MQTT devices (MQT-1, MQT-4). A default address that is taken is
	// logged and left out; the platform serves the rest.
	MQTTAddr  string `json:"mqttAddr"`  // plain MQTT over TCP; default :1883; "off" disables it
	MQTTSAddr string `json:"mqttsAddr"` // MQTT over TLS with tlsCert/tlsKey; default :8883; "off" disables it; no TLS without a certificate
	MQTTRate  int    `json:"mqttRate"`  // messages per second per MQTT connection; default 300 (§2.11)
	// MQTTMaxSubDevices is how many sub-devices one gateway may have,
	// however they were registered: a gateway's add_sub_device_request
	// past it is refused for the devices over it
	// ("too_many_sub_devices"); default 1,000 (MQT-5).
	MQTTMaxSubDevices int `json:"mqttMaxSubDevices"`
}

// Duration is a time.Duration written as "93s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"93s\" or \"25h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func defaultConfig() Config {
	return Config{
		DataDir:           "doze-data",
		HTTPAddr:          ":8743",
		HTTPMaxConns:      8192,
		HTTPMaxConnsPerIP: 256,
		CoAPAddr:          ":5683",
		DTLSAddr:          ":5684",
		Demo:              true,
		AdminAddr:         "127.0.0.1:8744",
		LogLevel:          "info",
		LogFormat:         "text",
		TokenTTL:          Duration(time.Hour),
		RateLimit:         100,
		QueueWindow:       Duration(93 * time.Second),
		HistoryKeep:       Duration(7 * 24 * time.Hour),
		OfflineAfter:      Duration(25 * time.Hour),
		DeviceLogSize:     store.DefaultDeviceLogMax,
		DisconnectGrace:   Duration(time.Minute),
		AbnormalAfter:     3,
		MaxMessage:        4096,
		AckFirst:          Duration(defaultAckFirst),
		MaxBacklog:        defaultMaxBacklog,
		MaxSessions:       250000,
		MaxUpload:         defaultMaxUpload,
		MaxUploads:        defaultMaxUploads,
		MQTTAddr:          ":1883",
		MQTTSAddr:         ":8883",
		MQTTRate:          300,

		MQTTMaxSubDevices: DefaultMaxSubDevices,

		BootstrapAddr:     "off",
		BootstrapDTLSAddr: "off",
	}
}

var flagHelp = flag.ErrHelp

// parseConfig reads flags (and the -config file they may name).
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./examples/platform [flags]\n\nStarts the Doze platform: CoAP/DTLS for devices, the REST API and web console for applications.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	configFile := fs.String("config", "", "JSON config file with any Config field (see README); flags win over it")
	// The string flags, each with the Config field it sets and whose
	// default it shows: a flag given wins over the config file, and a
	// field the file leaves empty takes the flag's default.
	strs := []struct {
		name, usage  string
		field, value *string
	}{
		{name: "data", field: &cfg.DataDir, usage: "directory for the bbolt file and app credentials"},
		{name: "store", field: &cfg.Store, usage: `where data is kept: empty for doze.db in -data, a bbolt file path, or a postgres://user@host/db URL (shared by several nodes; ?search_path=name picks a schema)`},
		{name: "node-id", field: &cfg.NodeID, usage: "this node's name in the shared store and logs (default: the host name)"},
		{name: "nats", field: &cfg.NATS, usage: "nats://host:4222 URL: route commands and LwM2M operations to the node that has the device's session (needs -store postgres://…)"},
		{name: "cluster", field: &cfg.Cluster, usage: "the cluster's name on NATS (subjects doze.<name>.…)"},
		{name: "http", field: &cfg.HTTPAddr, usage: "address of the REST API and web console"},
		{name: "coap", field: &cfg.CoAPAddr, usage: `UDP address for plain CoAP, or "off"`},
		{name: "dtls", field: &cfg.DTLSAddr, usage: "UDP address for CoAP over DTLS-PSK"},
		{name: "bootstrap", field: &cfg.BootstrapAddr, usage: `UDP address of the LwM2M bootstrap server over plain CoAP (e.g. :5783), or "off"`},
		{name: "bootstrap-dtls", field: &cfg.BootstrapDTLSAddr, usage: `UDP address of the LwM2M bootstrap server over DTLS-PSK (e.g. :5784), or "off"`},
		{name: "tls-cert", field: &cfg.TLSCert, usage: "PEM certificate: serve the API over HTTPS"},
		{name: "tls-key", field: &cfg.TLSKey, usage: "PEM private key for -tls-cert"},
		{name: "admin", field: &cfg.AdminAddr, usage: `address of the operator endpoints (/metrics), or "off"`},
		{name: "mqtt", field: &cfg.MQTTAddr, usage: `TCP address for MQTT devices, or "off"`},
		{name: "mqtts", field: &cfg.MQTTSAddr, usage: `TCP address for MQTT devices over TLS (needs -tls-cert), or "off"`},
		{name: "reset-secret", field: &cfg.ResetSecret, usage: "give this appId a new secret, printed once at start"},
		{name: "log-level", field: &cfg.LogLevel, usage: "log level: debug, info, warn or error"},
		{name: "log-format", field: &cfg.LogFormat, usage: "log format on stderr: text or json"},
	}
	for i, f := range strs {
		strs[i].value = fs.String(f.name, *f.field, f.usage)
	}
	demo := fs.Bool("demo", cfg.Demo, "create the demo application and water-meter product; also allows loopback callback URLs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, flagHelp
		}
		return Config{}, err
	}
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", *configFile, err)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, f := range strs {
		if set[f.name] || *f.field == "" {
			*f.field = *f.value
		}
	}
	if set["demo"] {
		cfg.Demo = *demo
	}
	if cfg.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || !validNodeID(h) {
			h = "node"
		}
		cfg.NodeID = h
	}
	if !validNodeID(cfg.NodeID) {
		return Config{}, fmt.Errorf("config: nodeId %q: want 1-64 of A-Z a-z 0-9 . _ -", cfg.NodeID)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "doze"
	}
	if !validNodeID(cfg.Cluster) || strings.ContainsAny(cfg.Cluster, ".") {
		return Config{}, fmt.Errorf("config: cluster %q: want 1-64 of A-Z a-z 0-9 _ -", cfg.Cluster)
	}
	if strings.ContainsAny(cfg.NodeID, ".") && cfg.NATS != "" {
		return Config{}, fmt.Errorf("config: nodeId %q: with -nats a node id names a NATS subject: no dots", cfg.NodeID)
	}
	if _, err := newLogger(io.Discard, cfg.LogLevel, cfg.LogFormat); err != nil {
		return Config{}, err
	}
	if err := checkAdmin(cfg); err != nil {
		return Config{}, err
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return Config{}, errors.New("config: -tls-cert and -tls-key go together")
	}
	if cfg.RateLimit <= 0 || cfg.TokenTTL <= 0 || cfg.MaxMessage <= 0 || cfg.MaxUpload <= 0 || cfg.MaxUploads <= 0 || cfg.MQTTRate <= 0 || cfg.MaxSessions <= 0 {
		return Config{}, errors.New("config: rateLimit, tokenTTL, maxMessage, maxSessions, maxUpload, maxUploads and mqttRate must be positive")
	}
	if cfg.HTTPMaxConns <= 0 || cfg.HTTPMaxConnsPerIP <= 0 {
		return Config{}, fmt.Errorf("config: httpMaxConns %d and httpMaxConnsPerIP %d must be positive (defaults 8192 and 256)", cfg.HTTPMaxConns, cfg.HTTPMaxConnsPerIP)
	}
	if cfg.MQTTMaxSubDevices <= 0 {
		return Config{}, fmt.Errorf("config: mqttMaxSubDevices is %d: must be positive (default %d)", cfg.MQTTMaxSubDevices, DefaultMaxSubDevices)
	}
	if cfg.MaxBacklog < 0 {
		return Config{}, fmt.Errorf("config: maxBacklog is %d: must not be negative (0 means %d)", cfg.MaxBacklog, defaultMaxBacklog)
	}
	if cfg.MoveLookupsPerSource < 0 {
		return Config{}, errors.New("config: moveLookupsPerSource must not be negative (0 means 16)")
	}
	if err := checkFirmwareURI(cfg.FirmwareURI); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// validNodeID accepts the node names a log line and a lease owner show
// as they are.
func validNodeID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkFirmwareURI refuses a FirmwareURI a device could not download from.
func checkFirmwareURI(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("config: firmwareURI %q: want an absolute coap:// or coaps:// URI with a host and no query, such as coaps://dm.example.com:5684/fw/", s)
	}
	return nil
}

// firmwarePath is the path under which the lwm2m server serves packages
// (transport.Config.FilesPath's default).
const firmwarePath = "/fw/"

// firmwareBase is the FirmwareURI given to the upgrade engine: the
// configured one, or firmwarePath alone, which packageURIs completes per
// device with the scheme and address of the listener it registered on.
func firmwareBase(cfg Config) string {
	if cfg.FirmwareURI != "" {
		return cfg.FirmwareURI
	}
	return firmwarePath
}

// packageURIs writes Package URIs for the upgrade engine; a relative one
// ("/fw/<id>", Config.FirmwareURI unset) becomes absolute with the
// device's listener (listenerURI).
type packageURIs struct{ object5 }

var _ ota.Object5 = packageURIs{}

func (o packageURIs) WritePackageURI(ctx context.Context, deviceID, uri string) error {
	if strings.HasPrefix(uri, "/") {
		d, err := o.p.reg.Get(ctx, deviceID)
		if err != nil {
			return err
		}
		r, ok := o.p.lwm.Registration(d.NodeID)
		if !ok {
			return fmt.Errorf("package URI for device %s: %w", deviceID, transport.ErrNotRegistered)
		}
		base, err := listenerURI(r.Secure, o.p.lwm.DTLSAddr(), o.p.lwm.UDPAddr())
		if err != nil {
			return fmt.Errorf("package URI for device %s: %w", deviceID, err)
		}
		uri = base + uri
	}
	return o.object5.WritePackageURI(ctx, deviceID, uri)
}

// listenerURI returns "coaps://host:port" of the DTLS listener for a
// device registered over DTLS, "coap://host:port" of the plain CoAP one
// otherwise: where the device already reaches the platform, with the
// security it registered with. A wildcard address gives the loopback
// host (see Config.FirmwareURI).
func listenerURI(secure bool, dtlsAddr, udpAddr net.Addr) (string, error) {
	scheme, a := "coap", udpAddr
	if secure {
		scheme, a = "coaps", dtlsAddr
	}
	ua, ok := a.(*net.UDPAddr)
	if !ok || ua == nil {
		return "", fmt.Errorf("no %s listener to download from", scheme)
	}
	ip := ua.AddrPort().Addr().Unmap()
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return scheme + "://" + netip.AddrPortFrom(ip.WithZone(""), ua.AddrPort().Port()).String(), nil
}

// checkAdmin refuses an admin listener reachable from other hosts without
// a token (SEC-5).
func checkAdmin(cfg Config) error {
	if cfg.AdminAddr == "off" || cfg.AdminToken != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("config: adminAddr %q: %w", cfg.AdminAddr, err)
	}
	if ip, err := netip.ParseAddr(host); host == "localhost" || err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("config: adminAddr %q is not a loopback address: set adminToken, or use 127.0.0.1:<port>, or \"off\"", cfg.AdminAddr)
}

// pushAllow is the push allow-list in force: loopback callbacks only for
// the demo, unless the config names its own list (SEC-5).
func pushAllow(cfg Config) []string {
	if cfg.AllowPush == nil && cfg.Demo {
		return []string{"127.0.0.0/8", "::1/128"}
	}
	return cfg.AllowPush
}

// loadApps reads the apps file in dir, creating it with one demo app when
// absent, so that the demo credentials stay the same across restarts.
func loadApps(dir string, demo bool) ([]App, bool, error) {
	path := filepath.Join(dir, "apps.json")
	b, err := os.ReadFile(path)
	if err == nil {
		var apps []App
		if err := json.Unmarshal(b, &apps); err != nil {
			return nil, false, fmt.Errorf("apps file %s: %w", path, err)
		}
		return apps, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if !demo {
		return nil, false, nil
	}
	apps := []App{{ID: "demo-" + randomHex(4), Secret: randomHex(16), HistoryEnabled: true}}
	b, _ = json.MarshalIndent(apps, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, false, err
	}
	return apps, true, nil
}
