package main

// The LwM2M bootstrap server (LWM-13) and each device's bootstrap
// configuration through the API: PUT, GET and DELETE
// /doze/v1/bootstrap/{nodeId} with {serverUri, securityMode: psk|none,
// pskIdentity?, pskHex?, lifetime, binding} and, ours, bootstrapPskHex?.
//
// Only a device registered on the platform has a configuration, and the
// bootstrap server knows only devices with one (SEC-1). A device proves
// itself to the bootstrap server with bootstrapPskHex over DTLS, or,
// without one, with its own PSK in the registry; a device registered
// with security NONE bootstraps over plain CoAP. The key written for the
// LwM2M server is pskHex, or without one the device's own PSK, read at
// each bootstrap: a device that starts with only its bootstrap
// information registers on the platform with its PSK.
//
// The bootstrap server listens on -bootstrap (plain CoAP) and
// -bootstrap-dtls; both are off by default (conventional ports: 5783 and
// 5784).

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// maxBootstrapLifetime is the longest lifetime a bootstrap configuration
// may give: the lwm2m server's MaxLifetime (72 h), which refuses longer.
const maxBootstrapLifetime = 72 * 3600

// bootstrapBody is the body of PUT /doze/v1/bootstrap/{nodeId}.
type bootstrapBody struct {
	ServerURI       string `json:"serverUri"`
	SecurityMode    string `json:"securityMode"`
	PSKIdentity     string `json:"pskIdentity"`
	PSKHex          string `json:"pskHex"`
	Lifetime        int64  `json:"lifetime"`
	Binding         string `json:"binding"`
	BootstrapPSKHex string `json:"bootstrapPskHex"`
}

// bootstrapJSON is a configuration as GET shows it: keys are never shown,
// only where they come from.
type bootstrapJSON struct {
	NodeID        string     `json:"nodeId"`
	ServerURI     string     `json:"serverUri"`
	SecurityMode  string     `json:"securityMode"`
	PSKIdentity   string     `json:"pskIdentity,omitempty"`
	PSK           string     `json:"psk"`          // "given", "device" (the registry's) or "none"
	BootstrapKey  string     `json:"bootstrapKey"` // "given", "device" or "none" (plain CoAP)
	Lifetime      int64      `json:"lifetime"`
	Binding       string     `json:"binding"`
	Updated       time.Time  `json:"updated"`
	LastBootstrap *time.Time `json:"lastBootstrap,omitempty"`
	LastResult    string     `json:"lastResult,omitempty"`
}

func (p *Platform) putBootstrap(w http.ResponseWriter, r *http.Request) error {
	d, err := p.bootstrapDevice(r)
	if err != nil {
		return err
	}
	var b bootstrapBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	c, err := bootstrapConfig(d, b)
	if err != nil {
		return err
	}
	if err := p.db.Bootstrap().Put(c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, showBootstrap(c, d))
	return nil
}

// bootstrapConfig checks b for device d and returns what is stored; every
// problem is a 400 naming the field and what is allowed.
func bootstrapConfig(d registry.Device, b bootstrapBody) (store.BootstrapConfig, error) {
	bad := func(format string, args ...any) (store.BootstrapConfig, error) {
		return store.BootstrapConfig{}, badRequest("bad_bootstrap", format, args...)
	}
	c := store.BootstrapConfig{NodeID: d.NodeID, ServerURI: b.ServerURI, SecurityMode: b.SecurityMode,
		PSKIdentity: b.PSKIdentity, Lifetime: b.Lifetime, Binding: b.Binding, Updated: time.Now().UTC()}
	u, err := url.Parse(b.ServerURI)
	switch {
	case b.ServerURI == "":
		return bad("serverUri is required: the LwM2M server the device registers with, coaps://host:port or coap://host:port")
	case err != nil || u.Host == "" || (u.Scheme != "coaps" && u.Scheme != "coap"):
		return bad("serverUri %q: want coaps://host:port (DTLS) or coap://host:port (plain CoAP)", b.ServerURI)
	case b.SecurityMode == "psk" && u.Scheme != "coaps", b.SecurityMode == "none" && u.Scheme != "coap":
		return bad("serverUri %q does not fit securityMode %q: psk goes with coaps://, none with coap://", b.ServerURI, b.SecurityMode)
	case b.SecurityMode != "psk" && b.SecurityMode != "none":
		return bad("securityMode %q: want \"psk\" or \"none\"", b.SecurityMode)
	case b.SecurityMode == "none" && (b.PSKIdentity != "" || b.PSKHex != ""):
		return bad("securityMode \"none\" takes no pskIdentity or pskHex")
	case b.Lifetime == 0:
		c.Lifetime = 86400
	case b.Lifetime < 1 || b.Lifetime > maxBootstrapLifetime:
		return bad("lifetime %d: want 1 to %d seconds (the server refuses longer registrations)", b.Lifetime, maxBootstrapLifetime)
	}
	switch b.Binding {
	case "":
		c.Binding = "U"
	case "U", "UQ":
	default:
		return bad("binding %q: want \"U\" or \"UQ\" (queue mode)", b.Binding)
	}
	if b.PSKHex != "" {
		if c.PSK, err = parseKeyHex("pskHex", b.PSKHex); err != nil {
			return c, err
		}
	} else if b.SecurityMode == "psk" && securityOf(d) == registry.SecurityNone {
		return bad("pskHex is required: device %s is registered without security, so it has no PSK of its own to write", d.NodeID)
	}
	if b.BootstrapPSKHex != "" {
		if c.BootstrapPSK, err = parseKeyHex("bootstrapPskHex", b.BootstrapPSKHex); err != nil {
			return c, err
		}
	}
	return c, nil
}

func parseKeyHex(field, s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil || len(k) < 8 || len(k) > 64 {
		return nil, badRequest("bad_bootstrap", "%s: want 8 to 64 bytes in hex (16 to 128 hex digits)", field)
	}
	return k, nil
}

func showBootstrap(c store.BootstrapConfig, d registry.Device) bootstrapJSON {
	j := bootstrapJSON{NodeID: c.NodeID, ServerURI: c.ServerURI, SecurityMode: c.SecurityMode, PSKIdentity: c.PSKIdentity,
		Lifetime: c.Lifetime, Binding: c.Binding, Updated: c.Updated, LastResult: c.LastResult,
		PSK: "none", BootstrapKey: "none"}
	if c.SecurityMode == "psk" {
		j.PSK = "device"
		if j.PSKIdentity == "" {
			j.PSKIdentity = d.NodeID
		}
	}
	if c.PSK != nil {
		j.PSK = "given"
	}
	switch {
	case c.BootstrapPSK != nil:
		j.BootstrapKey = "given"
	case securityOf(d) == registry.SecurityPSK:
		j.BootstrapKey = "device"
	}
	if !c.LastBootstrap.IsZero() {
		j.LastBootstrap = &c.LastBootstrap
	}
	return j
}

// bootstrapDevice returns the caller's device of the path's nodeId: a
// bootstrap configuration is its device owner's (APP-3), another app's is
// answered as an unknown device.
func (p *Platform) bootstrapDevice(r *http.Request) (registry.Device, error) {
	nodeID := pathValue(r, "nodeId")
	d, err := p.reg.GetByNodeID(r.Context(), nodeID)
	if errors.Is(err, registry.ErrNotFound) || err == nil && d.AppID != appOf(r) {
		return registry.Device{}, missingDevice("nodeId", nodeID)
	}
	if err != nil {
		return registry.Device{}, apiErr(err)
	}
	return d, nil
}

func (p *Platform) getBootstrap(w http.ResponseWriter, r *http.Request) error {
	d, err := p.bootstrapDevice(r)
	if err != nil {
		return err
	}
	c, err := p.db.Bootstrap().Get(d.NodeID)
	if errors.Is(err, transport.ErrNotFound) {
		return notFound("bootstrap_not_found", "device %s has no bootstrap configuration", d.NodeID)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, showBootstrap(c, d))
	return nil
}

func (p *Platform) deleteBootstrap(w http.ResponseWriter, r *http.Request) error {
	d, err := p.bootstrapDevice(r)
	if err != nil {
		return err
	}
	nodeID := transport.NormalizeEndpoint(d.NodeID)
	err = p.db.Bootstrap().Delete(nodeID)
	if errors.Is(err, transport.ErrNotFound) {
		return notFound("bootstrap_not_found", "device %s has no bootstrap configuration", nodeID)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bootstrapStore is the lwm2m bootstrap server's view of the
// configurations: only a device both registered and configured is known.
type bootstrapStore struct{ p *Platform }

var (
	_ transport.BootstrapStore    = bootstrapStore{}
	_ transport.BootstrapReporter = bootstrapStore{}
)

func (s bootstrapStore) BootstrapInfo(endpoint string) (transport.BootstrapInfo, error) {
	ctx := context.Background()
	c, err := s.p.db.Bootstrap().Get(endpoint)
	if err != nil {
		return transport.BootstrapInfo{}, err
	}
	d, err := s.p.reg.GetByNodeID(ctx, endpoint)
	if errors.Is(err, registry.ErrNotFound) {
		return transport.BootstrapInfo{}, fmt.Errorf("device %s was deleted: %w", endpoint, transport.ErrNotFound)
	}
	if err != nil {
		return transport.BootstrapInfo{}, err
	}
	info := transport.BootstrapInfo{Security: transport.SecurityNone, Account: transport.ServerAccount{URI: c.ServerURI,
		Security: transport.SecurityNone, Lifetime: time.Duration(c.Lifetime) * time.Second, Binding: c.Binding}}
	switch {
	case c.BootstrapPSK != nil:
		info.Security, info.Key = transport.SecurityPSK, c.BootstrapPSK
	case securityOf(d) == registry.SecurityPSK:
		info.Security, info.Key = transport.SecurityPSK, transport.Key(d.PSK)
	}
	if c.SecurityMode == "psk" {
		a := &info.Account
		a.Security, a.Identity, a.Key = transport.SecurityPSK, c.PSKIdentity, transport.Key(c.PSK)
		if a.Identity == "" {
			a.Identity = d.NodeID
		}
		if a.Key == nil {
			a.Key = transport.Key(d.PSK)
		}
	}
	return info, nil
}

// Bootstrapped keeps how the device's bootstrap ended, in its
// configuration and its device log.
func (s bootstrapStore) Bootstrapped(endpoint string, err error) {
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	if c, gerr := s.p.db.Bootstrap().Get(endpoint); gerr == nil {
		c.LastBootstrap, c.LastResult = time.Now().UTC(), result
		if perr := s.p.db.Bootstrap().Put(c); perr != nil {
			s.p.logger.Error("keeping a bootstrap result", "endpoint", endpoint, "err", perr)
		}
	}
	if d, gerr := s.p.reg.GetByNodeID(context.Background(), endpoint); gerr == nil {
		s.p.log.Add(d.ID, "bootstrap", "bootstrap: "+result)
	}
}

// newBootstrap builds the bootstrap server of the configuration, or nil
// when both its listeners are off.
func (p *Platform) newBootstrap() (*transport.BootstrapServer, error) {
	udp, dtls := p.cfg.BootstrapAddr, p.cfg.BootstrapDTLSAddr
	if (udp == "" || udp == "off") && (dtls == "" || dtls == "off") {
		return nil, nil
	}
	return transport.NewBootstrapServer(transport.BootstrapConfig{
		UDPAddr: udp, DisableUDP: udp == "" || udp == "off",
		DTLSAddr: dtls, DisableDTLS: dtls == "" || dtls == "off",
		Logger: p.logger.With("pkg", "lwm2m-bootstrap"),
	}, bootstrapStore{p})
}

// listenBootstrap, runBootstrap and closeBootstrap are the bootstrap
// server's part of Listen, Run and Close; they do nothing without one.
func (p *Platform) listenBootstrap() error {
	if p.bs == nil {
		return nil
	}
	return p.bs.Listen()
}

func (p *Platform) runBootstrap(ctx context.Context) error {
	if p.bs == nil {
		return nil
	}
	return p.bs.Run(ctx)
}

func (p *Platform) closeBootstrap() error {
	if p.bs == nil {
		return nil
	}
	return p.bs.Close()
}
