package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/doze-io/doze/command"
)

// Routing between the nodes of a cluster over NATS (CLU-2), on with -nats
// beside -store postgres://. Every node answers every API call from the
// shared store; what needs a device's session — sending it a command or
// an LwM2M operation, reading its registration, calling it synchronously
// — happens on the node that has the session, and the others reach that
// node over NATS:
//
//   - A node has a device's session from the moment it hears the device
//     (a registration, an update, an uplink, an MQTT connection: the
//     transport's wake event) and announces that on <prefix>.arrived;
//     the node that had it before drops it from its set. So the set of a
//     node holds the devices whose last datagram reached it.
//   - The command engines (commands and queued LwM2M operations) send
//     only to devices whose session is here (command.Config.Sessions). A
//     command queued through another node is stored there and that node
//     publishes <prefix>.wake; the node with the session looks at the
//     device's queue at once (command.Engine.Kick) and sends it in the
//     device's current awake window, not at its next uplink.
//   - A synchronous call on a device (the LwM2M operations under
//     /doze/v1/devices/{deviceId}/lwm2m…, the registration view, the
//     MQTT service call, an immediate command: expireTime 0) made on a
//     node without the session asks
//     <prefix>.who which node has it and forwards the call to
//     <prefix>.node.<id>.api; that node serves it as its own API would,
//     for the same application, and the answer goes back as it is. When
//     no node answers within whoTimeout the call is served here (queued,
//     or refused as the single node refuses it).
//
// The prefix is "doze." + the cluster name (-cluster, default "doze"),
// so that several clusters can share one NATS server. NATS carries
// application identities and calls between nodes: it must be the
// cluster's own (credentials in the -nats URL, TLS with tls://), never
// reachable by devices or applications. Messages are JSON.
//
// The decision of which node has a session uses the nodes' clocks
// (an arrival older than the receiver's own last hearing of the device
// does not take the device away): keep them in sync (NTP).

// whoTimeout bounds the question of which node has a device's session:
// when none answers by then, the call is served by the node it reached.
const whoTimeout = 2 * time.Second

// maxForwarded bounds the forwarded calls a node serves at once; more are
// answered 503.
const maxForwarded = 256

// forwardedKey marks a request forwarded by another node: it is served
// here whatever this node thinks, never forwarded again.
type forwardedKey struct{}

type cluster struct {
	p      *Platform
	nc     *nats.Conn
	prefix string
	node   string
	log    *slog.Logger
	api    http.Handler // the routed routes, without authentication: the caller's node did it
	slots  chan struct{}

	mu   sync.Mutex
	here map[string]time.Time // deviceId → when this node last heard the device
}

// arrival is <prefix>.arrived's and <prefix>.wake's message.
type arrival struct {
	Node   string    `json:"node"`
	Device string    `json:"device"`
	At     time.Time `json:"at,omitzero"`
}

// forwardedCall is <prefix>.node.<id>.api's request, forwardedAnswer its
// answer.
type forwardedCall struct {
	App    string `json:"app"`
	Method string `json:"method"`
	URI    string `json:"uri"`
	Body   []byte `json:"body,omitempty"`
}

type forwardedAnswer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

// newCluster returns the cluster side of the node, not connected yet;
// nil without -nats.
func newCluster(p *Platform) (*cluster, error) {
	cfg := p.cfg
	if cfg.NATS == "" {
		return nil, nil
	}
	if !p.db.shared {
		return nil, errors.New("config: -nats routes between nodes that share one PostgreSQL store: it needs -store postgres://…")
	}
	return &cluster{p: p, prefix: "doze." + cfg.Cluster, node: cfg.NodeID, log: p.logger.With("part", "cluster"),
		here: map[string]time.Time{}, slots: make(chan struct{}, maxForwarded)}, nil
}

// sessions is the command engines' view of the cluster: nil (every
// session here) without one.
func (c *cluster) sessions() command.Sessions {
	if c == nil {
		return nil
	}
	return c
}

// connect connects to NATS and starts answering the other nodes; New calls
// it last.
func (c *cluster) connect() error {
	if c == nil {
		return nil
	}
	cfg := c.p.cfg
	c.api = c.p.routedHandler()
	nc, err := nats.Connect(cfg.NATS, nats.Name("doze "+cfg.NodeID), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Warn("NATS connection lost; routing between nodes waits for it", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { c.log.Info("NATS connection back") }))
	if err != nil {
		return fmt.Errorf("-nats %s: %w (start NATS there, or leave -nats out to run without routing between nodes)", redactURL(cfg.NATS), err)
	}
	c.nc = nc
	subs := []struct {
		subject string
		f       nats.MsgHandler
	}{
		{c.prefix + ".arrived", c.onArrived},
		{c.prefix + ".wake", c.onWake},
		{c.prefix + ".who", c.onWho},
		{c.prefix + ".node." + c.node + ".api", c.onCall},
	}
	for _, s := range subs {
		if _, err := nc.Subscribe(s.subject, s.f); err != nil {
			nc.Close()
			return fmt.Errorf("-nats: subscribing to %s: %w", s.subject, err)
		}
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return fmt.Errorf("-nats: %w", err)
	}
	c.log.Info("routing between nodes over NATS", "nats", redactURL(cfg.NATS), "subjects", c.prefix+".>")
	return nil
}

// redactURL hides a password in a URL for messages.
func redactURL(s string) string {
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		if i := strings.Index(s, "://"); i >= 0 && i < at {
			return s[:i+3] + "…@" + s[at+1:]
		}
	}
	return s
}

func (c *cluster) close() {
	if c != nil && c.nc != nil {
		_ = c.nc.Drain()
	}
}

func (c *cluster) publish(subject string, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		err = c.nc.Publish(subject, b)
	}
	if err != nil {
		c.log.Warn("publishing to NATS", "subject", subject, "err", err)
	}
}

// heard records that the device reached this node; the first time (since
// another node had it) it tells the others.
func (c *cluster) heard(deviceID string) {
	if c == nil {
		return
	}
	now := time.Now()
	c.mu.Lock()
	_, had := c.here[deviceID]
	c.here[deviceID] = now
	c.mu.Unlock()
	if !had {
		c.publish(c.prefix+".arrived", arrival{Node: c.node, Device: deviceID, At: now})
	}
}

// forget drops a device (deleted) from this node's set.
func (c *cluster) forget(deviceID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.here, deviceID)
	c.mu.Unlock()
}

func (c *cluster) onArrived(m *nats.Msg) {
	var a arrival
	if json.Unmarshal(m.Data, &a) != nil || a.Node == c.node || a.Device == "" {
		return
	}
	c.mu.Lock()
	mine, ok := c.here[a.Device]
	if ok && !mine.After(a.At) {
		delete(c.here, a.Device)
	}
	c.mu.Unlock()
	if ok && mine.After(a.At) {
		// This node heard the device after the other did (the device
		// came back meanwhile): it keeps the session, and says so again.
		c.publish(c.prefix+".arrived", arrival{Node: c.node, Device: a.Device, At: mine})
	}
}

// Here implements command.Sessions.
func (c *cluster) Here(deviceID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.here[deviceID]
	return ok
}

// Elsewhere implements command.Sessions: the node with the session looks
// at the device's queues.
func (c *cluster) Elsewhere(deviceID string) {
	c.publish(c.prefix+".wake", arrival{Node: c.node, Device: deviceID})
}

var _ command.Sessions = (*cluster)(nil)

func (c *cluster) onWake(m *nats.Msg) {
	var a arrival
	if json.Unmarshal(m.Data, &a) != nil || a.Node == c.node || !c.Here(a.Device) {
		return
	}
	for _, e := range []*command.Engine{c.p.cmds, c.p.ops} {
		if err := e.Kick(a.Device); err != nil && !errors.Is(err, command.ErrClosed) {
			c.log.Warn("kicking a device's queue", "device", a.Device, "err", err)
		}
	}
}

func (c *cluster) onWho(m *nats.Msg) {
	var a arrival
	if json.Unmarshal(m.Data, &a) != nil || !c.Here(a.Device) {
		return
	}
	b, _ := json.Marshal(arrival{Node: c.node, Device: a.Device})
	_ = m.Respond(b)
}

// forward serves r on the node that has the device's session when that is
// another node, and reports whether it did (the answer is written). body
// is the request's body when the caller has read it already, else nil.
func (c *cluster) forward(w http.ResponseWriter, r *http.Request, deviceID string, body []byte) bool {
	if c == nil || deviceID == "" || r.Context().Value(forwardedKey{}) != nil || c.Here(deviceID) {
		return false
	}
	q, _ := json.Marshal(arrival{Node: c.node, Device: deviceID})
	ctx, cancel := context.WithTimeout(r.Context(), whoTimeout)
	m, err := c.nc.RequestWithContext(ctx, c.prefix+".who", q)
	cancel()
	var who arrival
	if err != nil || json.Unmarshal(m.Data, &who) != nil || who.Node == "" || who.Node == c.node {
		return false // no node has the session: served here
	}
	if body == nil {
		if body, err = readSmallBody(r); err != nil {
			writeError(w, err)
			return true
		}
	}
	call, _ := json.Marshal(forwardedCall{App: appOf(r), Method: r.Method, URI: r.URL.RequestURI(), Body: body})
	ctx, cancel = context.WithTimeout(r.Context(), time.Duration(lwm2mTimeoutMax)*time.Second+10*time.Second)
	defer cancel()
	m, err = c.nc.RequestWithContext(ctx, c.prefix+".node."+who.Node+".api", call)
	var ans forwardedAnswer
	if err == nil {
		err = json.Unmarshal(m.Data, &ans)
	}
	if err != nil {
		writeError(w, &httpError{Status: http.StatusBadGateway, Code: "node_unreachable",
			Err: fmt.Errorf("the device's session is on node %s, which did not answer: %v", who.Node, err)})
		return true
	}
	for k, vs := range ans.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Doze-Node", who.Node)
	w.WriteHeader(ans.Status)
	_, _ = w.Write(ans.Body)
	return true
}

// onCall serves a call another node forwarded.
func (c *cluster) onCall(m *nats.Msg) {
	select {
	case c.slots <- struct{}{}:
	default:
		c.answer(m, forwardedAnswer{Status: http.StatusServiceUnavailable,
			Body: []byte(`{"error_code":"node_busy","error_desc":"the node with the device's session serves too many forwarded calls; try again"}`)})
		return
	}
	go func() {
		defer func() { <-c.slots }()
		var call forwardedCall
		if err := json.Unmarshal(m.Data, &call); err != nil {
			c.answer(m, forwardedAnswer{Status: http.StatusBadRequest})
			return
		}
		ctx := context.WithValue(context.WithValue(c.p.stopCtx, ctxKey{}, call.App), forwardedKey{}, true)
		r, err := http.NewRequestWithContext(ctx, call.Method, call.URI, bytes.NewReader(call.Body))
		if err != nil {
			c.answer(m, forwardedAnswer{Status: http.StatusBadRequest})
			return
		}
		rec := &recorder{header: http.Header{}}
		c.api.ServeHTTP(rec, r)
		c.answer(m, forwardedAnswer{Status: rec.statusOr200(), Header: rec.header, Body: rec.body.Bytes()})
	}()
}

func (c *cluster) answer(m *nats.Msg, a forwardedAnswer) {
	b, _ := json.Marshal(a)
	if err := m.Respond(b); err != nil {
		c.log.Warn("answering a forwarded call", "err", err)
	}
}

// recorder is the http.ResponseWriter of a forwarded call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
func (r *recorder) statusOr200() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

var _ io.Writer = (*recorder)(nil)
