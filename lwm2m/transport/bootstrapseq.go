package transport

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// ServerAccount is one LwM2M server account as a bootstrap server writes
// it (LwM2M 1.1 Core §6.1.7): an instance of the Security object (0) and
// the Server object (1) instance linked to it by the Short Server ID. A
// BootstrapServer writes it; Client.Bootstrap returns what it was given.
type ServerAccount struct {
	// URI is the LwM2M Server URI (/0/x/0), "coaps://host:port" for DTLS
	// or "coap://host:port" for plain CoAP.
	URI string
	// Security is the Security Mode (/0/x/2): SecurityPSK is mode 0
	// (Pre-Shared Key), SecurityNone mode 3 (NoSec).
	Security Security
	// Identity is the PSK identity (/0/x/3), for SecurityPSK.
	Identity string
	// Key is the PSK (/0/x/5), for SecurityPSK.
	Key Key
	// ShortServerID links the two instances (/0/x/10, /1/y/0); 0 means 1.
	ShortServerID uint16
	// Lifetime is the registration lifetime (/1/y/1); 0 means 86400 s.
	Lifetime time.Duration
	// Binding is the binding (/1/y/7), e.g. "U" or "UQ"; "" means "U".
	Binding string
}

// Security Mode values of the Security object (/0/x/2, LwM2M 1.1 Core E.1).
const (
	securityModePSK   = 0
	securityModeNoSec = 3
)

// check returns what is wrong with a, or nil.
func (a ServerAccount) check() error {
	u, err := url.Parse(a.URI)
	if err != nil || u.Host == "" {
		return fmt.Errorf("server URI %q: want coaps://host:port or coap://host:port", a.URI)
	}
	switch {
	case a.Security == SecurityPSK && u.Scheme != "coaps":
		return fmt.Errorf("server URI %q: a PSK account needs a coaps:// URI", a.URI)
	case a.Security == SecurityNone && u.Scheme != "coap":
		return fmt.Errorf("server URI %q: a NoSec account needs a coap:// URI", a.URI)
	case a.Security != SecurityPSK && a.Security != SecurityNone:
		return errors.New("security mode: want PSK (0) or NoSec (3)")
	case a.Security == SecurityPSK && (a.Identity == "" || len(a.Key) == 0):
		return errors.New("a PSK account needs a PSK identity and a key")
	case a.Lifetime < 0 || a.Lifetime > 0 && a.Lifetime < time.Second:
		return fmt.Errorf("lifetime %v: want whole seconds, at least 1 s", a.Lifetime)
	case strings.ContainsFunc(a.Binding, func(r rune) bool { return !strings.ContainsRune("UMHTSNQ", r) }):
		return fmt.Errorf("binding %q: want letters of U, M, H, T, S, N, Q", a.Binding)
	}
	return nil
}

func (a ServerAccount) withDefaults() ServerAccount {
	if a.ShortServerID == 0 {
		a.ShortServerID = 1
	}
	if a.Lifetime == 0 {
		a.Lifetime = 86400 * time.Second
	}
	if a.Binding == "" {
		a.Binding = "U"
	}
	return a
}

// ClientConfig returns base with the server, credentials, lifetime and
// binding of a: the configuration of a client that registers with the
// account's server after a bootstrap.
func (a ServerAccount) ClientConfig(base ClientConfig) (ClientConfig, error) {
	if err := a.check(); err != nil {
		return base, fmt.Errorf("lwm2m: server account: %w", err)
	}
	a = a.withDefaults()
	u, _ := url.Parse(a.URI)
	host := u.Host
	if u.Port() == "" {
		port := "5683"
		if u.Scheme == "coaps" {
			port = "5684"
		}
		host += ":" + port
	}
	base.Server = host
	base.Identity, base.Key = "", nil
	if a.Security == SecurityPSK {
		base.Identity, base.Key = a.Identity, append(Key(nil), a.Key...)
	}
	base.Lifetime = a.Lifetime
	base.Binding = strings.ReplaceAll(a.Binding, "Q", "")
	base.Queue = strings.Contains(a.Binding, "Q") || base.Queue
	if base.Binding == "" {
		base.Binding = "U"
	}
	return base, nil
}

// securityRecords are the resources of the Security object instance p
// for a: the mandatory ones of LwM2M 1.1 (0–5) and the Short Server ID.
func securityRecords(p lwm2m.Path, a ServerAccount) []lwm2m.Record {
	mode, ident, key := int64(securityModeNoSec), []byte{}, []byte{}
	if a.Security == SecurityPSK {
		mode, ident, key = securityModePSK, []byte(a.Identity), a.Key
	}
	r := func(id uint16, v lwm2m.Value) lwm2m.Record {
		q, _ := p.Child(id)
		return lwm2m.Record{Path: q, Value: v}
	}
	return []lwm2m.Record{
		r(0, lwm2m.StringValue(a.URI)),
		r(1, lwm2m.BoolValue(false)),
		r(2, lwm2m.IntValue(mode)),
		r(3, lwm2m.OpaqueValue(ident)),
		r(4, lwm2m.OpaqueValue(nil)),
		r(5, lwm2m.OpaqueValue(key)),
		r(10, lwm2m.IntValue(int64(a.ShortServerID))),
	}
}

// serverRecords are the resources of the Server object instance p for a:
// the mandatory ones of LwM2M 1.1 that hold values (0, 1, 6, 7).
func serverRecords(p lwm2m.Path, a ServerAccount) []lwm2m.Record {
	r := func(id uint16, v lwm2m.Value) lwm2m.Record {
		q, _ := p.Child(id)
		return lwm2m.Record{Path: q, Value: v}
	}
	return []lwm2m.Record{
		r(0, lwm2m.IntValue(int64(a.ShortServerID))),
		r(1, lwm2m.IntValue(int64(a.Lifetime/time.Second))),
		r(6, lwm2m.BoolValue(true)),
		r(7, lwm2m.StringValue(a.Binding)),
	}
}

// bootstrapSteps is one device's bootstrap after its Bootstrap-Request was
// answered (LwM2M 1.1 Core §6.1.7, client-initiated): Bootstrap-Delete of
// /0 and /1 (the client keeps its bootstrap server account), a
// Bootstrap-Discover of /0 to learn which Security instance that account
// holds, Bootstrap-Write of the new Security and Server instances, and
// Bootstrap-Finish.
func bootstrapSteps(ctx context.Context, ex *exchange, a ServerAccount, f lwm2m.Format) error {
	do := func(op string, m *message.Message, want codes.Code) (*message.Message, error) {
		resp, err := ex.do(ctx, m, true)
		if err != nil {
			return nil, fmt.Errorf("lwm2m: bootstrap %s %s: %w", op, msgPath(m), err)
		}
		if resp.Code != want {
			return resp, &ResponseError{Op: "bootstrap " + op, Path: msgPath(m), Code: Code(resp.Code), Message: string(resp.Payload)}
		}
		return resp, nil
	}
	for _, p := range []string{"/0", "/1"} {
		if _, err := do("delete", newRequest(codes.DELETE, p), codes.Deleted); err != nil {
			return err
		}
	}
	secID := uint16(1) // without Bootstrap-Discover (LwM2M 1.0), beside the usual /0/0
	m := newRequest(codes.GET, "/0")
	addUint(m, message.Accept, uint32(cfLink))
	resp, err := do("discover", m, codes.Content)
	var re *ResponseError
	switch {
	case err == nil:
		secID = freeInstance(resp.Payload, lwm2m.ObjectSecurity)
	case errors.As(err, &re) && re.ClientError():
		// a 1.0 client has no Bootstrap-Discover: keep the default
	default:
		return err
	}
	secPath, _ := lwm2m.NewPath(lwm2m.ObjectSecurity, secID)
	srvPath, _ := lwm2m.NewPath(lwm2m.ObjectServer, 0) // /1 was emptied
	for _, w := range []struct {
		p    lwm2m.Path
		recs []lwm2m.Record
	}{{secPath, securityRecords(secPath, a)}, {srvPath, serverRecords(srvPath, a)}} {
		body, err := lwm2m.Encode(f, w.p, w.recs)
		if err != nil {
			return fmt.Errorf("lwm2m: bootstrap write %s: %w", w.p, err)
		}
		m := newRequest(codes.PUT, w.p.String())
		setContentFormat(m, f)
		m.Payload = body
		if _, err := do("write", m, codes.Changed); err != nil {
			return err
		}
	}
	_, err = do("finish", newRequest(codes.POST, "/bs"), codes.Changed)
	return err
}

// freeInstance returns the lowest instance id of object obj that a
// Bootstrap-Discover answer (link format) does not list.
func freeInstance(links []byte, obj uint16) uint16 {
	used := map[uint16]bool{}
	for _, l := range strings.Split(string(links), ",") {
		t, ok := strings.CutPrefix(strings.TrimSpace(l), "<")
		if !ok {
			continue
		}
		t, _, _ = strings.Cut(t, ">")
		if p, err := lwm2m.ParsePath(t); err == nil && p.Len() == 2 && p.ID(0) == obj {
			used[p.ID(1)] = true
		}
	}
	var id uint16
	for used[id] {
		id++
	}
	return id
}

// bootstrapFormat is the content format of the Bootstrap-Writes: the
// client's preferred one (pct, LwM2M 1.1) when it is SenML, else TLV,
// which every version supports.
func bootstrapFormat(m *message.Message) lwm2m.Format {
	for _, q := range msgQueries(m) {
		if v, ok := strings.CutPrefix(q, "pct="); ok {
			if n, err := strconv.Atoi(v); err == nil && (lwm2m.Format(n) == lwm2m.FormatSenMLCBOR || lwm2m.Format(n) == lwm2m.FormatSenMLJSON) {
				return lwm2m.Format(n)
			}
		}
	}
	return lwm2m.FormatTLV
}
