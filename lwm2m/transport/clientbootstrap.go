package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// The client side of a client-initiated bootstrap (LwM2M 1.1 Core §6.1.7,
// §6.1.5 and Transport §8.2): the Client connected to its bootstrap
// server sends the Bootstrap-Request and then takes the server's
// Bootstrap-Delete, -Discover and -Write of objects 0 and 1 until
// Bootstrap-Finish, checking them as the specification asks:
//
//   - Bootstrap-Delete of "/", "/0" or "/1" deletes every instance of the
//     objects except the Bootstrap-Server Account (the Security instance
//     with Bootstrap-Server true), which cannot be deleted (4.00);
//   - Bootstrap-Write of an instance creates it or replaces the values it
//     names; values must have their resource's type (4.00);
//   - Bootstrap-Finish is refused with 4.06 Not Acceptable unless there is
//     a usable LwM2M server account: a Security instance (Bootstrap-Server
//     false) with its mandatory resources, Security Mode PSK or NoSec (the
//     modes this client has), a URI whose scheme fits it, and a Server
//     instance with the same Short Server ID and its mandatory values;
//   - any other operation during the bootstrap is refused with 4.05.

// bootstrapState is the Security and Server objects of a Client during a
// bootstrap: instance path → resource id → value.
type bootstrapState struct {
	objs     map[lwm2m.Path]map[uint16]lwm2m.Value
	bsInst   lwm2m.Path // the Bootstrap-Server Account
	finished chan []ServerAccount
}

// Bootstrap runs a client-initiated bootstrap with the server the client
// is connected to, its bootstrap server, and returns the LwM2M server
// accounts it was given once the server sent Bootstrap-Finish (see
// ServerAccount.ClientConfig to register with one). The client serves
// only bootstrap operations meanwhile. It fails when the server refuses
// the Bootstrap-Request, or ctx ends first.
func (c *Client) Bootstrap(ctx context.Context) ([]ServerAccount, error) {
	scheme := "coap://"
	if c.cfg.Key != nil {
		scheme = "coaps://"
	}
	bs, _ := lwm2m.NewPath(lwm2m.ObjectSecurity, 0)
	st := &bootstrapState{
		objs: map[lwm2m.Path]map[uint16]lwm2m.Value{bs: {
			0: lwm2m.StringValue(scheme + c.cfg.Server), 1: lwm2m.BoolValue(true),
		}},
		bsInst:   bs,
		finished: make(chan []ServerAccount, 1),
	}
	c.mu.Lock()
	c.bs = st
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.bs = nil
		c.mu.Unlock()
	}()
	m := newRequest(codes.POST, "/bs")
	addQuery(m, "ep="+c.cfg.Endpoint)
	if !strings.HasPrefix(c.cfg.Version, "1.0") {
		addQuery(m, "pct="+strconv.Itoa(int(lwm2m.FormatSenMLCBOR)))
	}
	resp, err := c.do(ctx, "bootstrap-request", m)
	if err != nil {
		return nil, err
	}
	if resp.Code != codes.Changed {
		return nil, &ResponseError{Op: "bootstrap-request", Endpoint: c.cfg.Endpoint, Path: "/bs", Code: Code(resp.Code), Message: "want 2.04 Changed"}
	}
	select {
	case accts := <-st.finished:
		return accts, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("lwm2m: client bootstrap: no Bootstrap-Finish: %w", ctx.Err())
	}
}

// handleBootstrap answers a request of the bootstrap server.
func (c *Client) handleBootstrap(st *bootstrapState, m *message.Message) (*message.Message, func()) {
	path := msgPath(m)
	if path == "/bs" && m.Code == codes.POST {
		return c.bootstrapFinish(st)
	}
	p, err := lwm2m.ParsePath(path)
	if err != nil {
		return errResp(codes.BadRequest, "%v", err), nil
	}
	obj, _ := p.Object()
	objOK := p.Len() >= 1 && (obj == lwm2m.ObjectSecurity || obj == lwm2m.ObjectServer)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case m.Code == codes.DELETE && (p.IsRoot() || objOK && p.Len() <= 2):
		if p == st.bsInst {
			return errResp(codes.BadRequest, "%s is the Bootstrap-Server Account; it cannot be deleted", p), nil
		}
		for q := range st.objs {
			if q != st.bsInst && p.Contains(q) {
				delete(st.objs, q)
			}
		}
		return &message.Message{Code: codes.Deleted}, nil
	case m.Code == codes.GET && p.Len() <= 1 && acceptsLink(m):
		return st.discover(p, c.cfg.Version), nil
	case m.Code == codes.PUT && objOK && p.Len() <= 3:
		return st.write(p, contentFormat(m), m.Payload, c.cfg.Model), nil
	}
	return errResp(codes.MethodNotAllowed, "%s %s: during a bootstrap this client takes only Bootstrap-Write and -Delete of /0 and /1, Bootstrap-Discover and Bootstrap-Finish",
		methodName(m.Code), path), nil
}

func acceptsLink(m *message.Message) bool {
	a, has := optUint(m, message.Accept)
	return has && lwm2m.Format(a) == cfLink
}

// discover answers a Bootstrap-Discover of "/" or an object (LwM2M 1.1
// Core §5.2.7.3): the version, then the instances of objects 0 and 1.
func (st *bootstrapState) discover(p lwm2m.Path, version string) *message.Message {
	if p.Len() == 1 {
		if o, _ := p.Object(); o != lwm2m.ObjectSecurity && o != lwm2m.ObjectServer {
			return errResp(codes.NotFound, "this client has no object %s", p)
		}
	}
	links := []string{`lwm2m="` + version + `"`}
	for _, q := range slices.SortedFunc(maps.Keys(st.objs), lwm2m.Path.Compare) {
		if !p.Contains(q) {
			continue
		}
		l := "<" + q.String() + ">"
		if v, ok := st.objs[q][0]; ok && q.ID(0) == lwm2m.ObjectSecurity {
			l += `;uri="` + v.String() + `"`
		}
		links = append(links, l)
	}
	r := &message.Message{Code: codes.Content, Payload: []byte(strings.Join(links, ","))}
	setContentFormat(r, cfLink)
	return r
}

// write takes a Bootstrap-Write of p (an object, an instance or a
// resource of object 0 or 1).
func (st *bootstrapState) write(p lwm2m.Path, f lwm2m.Format, payload []byte, reg *lwm2m.Objects) *message.Message {
	if f == NoFormat {
		f = lwm2m.FormatText
	}
	recs, err := lwm2m.Decode(f, p, payload, reg)
	if errors.Is(err, lwm2m.ErrUnsupportedFormat) {
		return errResp(codes.UnsupportedMediaType, "%v", err)
	}
	if err != nil {
		return errResp(codes.BadRequest, "bootstrap-write %s: %v", p, err)
	}
	if len(recs) == 0 {
		return errResp(codes.BadRequest, "bootstrap-write %s: no values", p)
	}
	for _, r := range recs {
		if r.Path.Len() != 3 {
			return errResp(codes.BadRequest, "bootstrap-write %s: %s is not a single resource (objects 0 and 1 have none with instances here)", p, r.Path)
		}
		d, ok := reg.Resource(r.Path.ID(0), r.Path.ID(2))
		if !ok {
			return errResp(codes.NotFound, "bootstrap-write %s: object %d has no resource %d", p, r.Path.ID(0), r.Path.ID(2))
		}
		if _, err := r.Value.As(d.Type); err != nil {
			return errResp(codes.BadRequest, "bootstrap-write %s: %s is %s: %v", p, r.Path, d.Type, err)
		}
	}
	for _, r := range recs {
		inst := r.Path.Parent()
		if st.objs[inst] == nil {
			st.objs[inst] = map[uint16]lwm2m.Value{}
		}
		d, _ := reg.Resource(r.Path.ID(0), r.Path.ID(2))
		v, _ := r.Value.As(d.Type)
		st.objs[inst][r.Path.ID(2)] = v
	}
	return &message.Message{Code: codes.Changed}
}

// bootstrapFinish checks the configuration written (4.06 Not Acceptable
// when it holds no usable server account) and ends Client.Bootstrap once
// the answer has left.
func (c *Client) bootstrapFinish(st *bootstrapState) (*message.Message, func()) {
	c.mu.Lock()
	accts, err := st.accounts(c.cfg.Model)
	c.mu.Unlock()
	if err != nil {
		return errResp(codes.NotAcceptable, "bootstrap-finish: %v", err), nil
	}
	return &message.Message{Code: codes.Changed}, func() {
		select {
		case st.finished <- accts:
		default:
		}
	}
}

// accounts returns the LwM2M server accounts of the configuration, or what
// makes it unusable.
func (st *bootstrapState) accounts(reg *lwm2m.Objects) ([]ServerAccount, error) {
	servers := map[int64]map[uint16]lwm2m.Value{}
	for _, q := range slices.SortedFunc(maps.Keys(st.objs), lwm2m.Path.Compare) {
		if q.ID(0) != lwm2m.ObjectServer {
			continue
		}
		vals := st.objs[q]
		if err := mandatory(reg, q, vals); err != nil {
			return nil, err
		}
		id, _ := vals[0].Int()
		servers[id] = vals
	}
	var out []ServerAccount
	for _, q := range slices.SortedFunc(maps.Keys(st.objs), lwm2m.Path.Compare) {
		vals := st.objs[q]
		if q.ID(0) != lwm2m.ObjectSecurity || q == st.bsInst {
			continue
		}
		if err := mandatory(reg, q, vals); err != nil {
			return nil, err
		}
		if bs, _ := vals[1].Bool(); bs {
			return nil, fmt.Errorf("%s is a second Bootstrap-Server Account", q)
		}
		ssid, ok := vals[10].Int()
		if !ok {
			return nil, fmt.Errorf("%s has no Short Server ID (/10)", q)
		}
		srv := servers[ssid]
		if srv == nil {
			return nil, fmt.Errorf("%s has Short Server ID %d, and no Server instance (/1) has it", q, ssid)
		}
		a := ServerAccount{URI: vals[0].String(), Identity: string(vals[3].Bytes()), Key: vals[5].Bytes(),
			ShortServerID: uint16(ssid), Binding: srv[7].String()}
		lt, _ := srv[1].Int()
		a.Lifetime = time.Duration(lt) * time.Second
		switch mode, _ := vals[2].Int(); mode {
		case securityModePSK:
			a.Security = SecurityPSK
		case securityModeNoSec:
			a.Security, a.Identity, a.Key = SecurityNone, "", nil
		default:
			return nil, fmt.Errorf("%s has Security Mode %d; this client has PSK (0) and NoSec (3)", q, mode)
		}
		if err := a.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no LwM2M server account was written (a Security instance with Bootstrap-Server false and its Server instance)")
	}
	return out, nil
}

// mandatory checks that the instance q has every mandatory resource of its
// object that holds a value.
func mandatory(reg *lwm2m.Objects, q lwm2m.Path, vals map[uint16]lwm2m.Value) error {
	def, ok := reg.Object(q.ID(0))
	if !ok {
		return fmt.Errorf("object %d is not defined", q.ID(0))
	}
	for _, r := range def.Resources {
		if _, has := vals[r.ID]; r.Mandatory && r.Type != lwm2m.TypeNone && !has {
			return fmt.Errorf("%s lacks the mandatory resource %d (%s)", q, r.ID, r.Name)
		}
	}
	return nil
}
