package forward

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/doze-io/doze/push"
)

// targetScheme is the scheme of the endpoint URL a forwarding message
// carries: rule://<rule id>/<target index>. The URL names the target, not
// the broker, so credentials never sit in the outbox or in endpoint states,
// and a queued message follows its rule's current settings.
const targetScheme = "rule"

// targetURL returns the endpoint URL of a rule's target.
func targetURL(ruleID string, i int) string {
	return targetScheme + "://" + ruleID + "/" + strconv.Itoa(i)
}

// parseTargetURL reverses targetURL.
func parseTargetURL(u *url.URL) (ruleID string, i int, ok bool) {
	if u == nil || u.Scheme != targetScheme || u.Host == "" {
		return "", 0, false
	}
	i, err := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
	if err != nil || i < 0 {
		return "", 0, false
	}
	return u.Host, i, true
}

// addrGuard refuses broker addresses the push SSRF guard refuses
// (push.DeniedReason) unless allow covers them.
type addrGuard struct {
	allow []netip.Prefix
}

func (g addrGuard) check(ip netip.Addr) error {
	ip = ip.Unmap()
	why := push.DeniedReason(ip)
	if why == "" {
		return nil
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is %s; the operator may allow it (Config.Delivery.Allow)", push.ErrAddressDenied, ip, why)
}

// dialer returns a dialer whose connections pass the guard at connect
// time (after DNS, so a name re-pointed later is still checked).
func (g addrGuard) dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse dial address %q", push.ErrAddressDenied, address)
		}
		return g.check(ap.Addr())
	}}
}

// resolve checks every address of u's host.
func (g addrGuard) resolve(ctx context.Context, r Resolver, u *url.URL) error {
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.check(ip)
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("host %q does not resolve: %v", host, err)
	}
	for _, ip := range ips {
		if err := g.check(ip); err != nil {
			return err
		}
	}
	return nil
}

// router is the delivery engine's http.RoundTripper: it takes the POST the
// push engine makes for a message to rule://<rule>/<target> and publishes
// the body to that target's broker. A published message is answered 200; a
// broker that cannot be reached or refuses is an error (retried); a rule or
// target that no longer exists is final (the message is dropped).
type router struct {
	st      Store
	guard   addrGuard
	timeout time.Duration
	logger  *slog.Logger

	mu    sync.Mutex
	conns map[string]*brokerConn // connKey → open connection
}

var _ http.RoundTripper = (*router)(nil)

func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	ctx := req.Context()
	ruleID, i, ok := parseTargetURL(req.URL)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a rule target", push.ErrRejected, req.URL)
	}
	rule, err := r.st.Rule(ctx, ruleID)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %w (rule %s)", push.ErrRejected, ErrTargetGone, ruleID)
	}
	if err != nil {
		return nil, fmt.Errorf("forward: reading rule %s: %w", ruleID, err)
	}
	if i >= len(rule.Targets) || rule.Targets[i].Type == Webhook {
		return nil, fmt.Errorf("%w: %w (rule %s has no broker target %d)", push.ErrRejected, ErrTargetGone, ruleID, i)
	}
	var body []byte
	if req.Body != nil {
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	if err := r.publish(ctx, rule.Targets[i], req.Header.Get(push.HeaderID), body); err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// publish sends body to t over a cached connection, opening one when
// needed; a connection that failed is closed, so the next try opens anew.
func (r *router) publish(ctx context.Context, t Target, id string, body []byte) error {
	u, err := t.brokerURL("url")
	if err != nil {
		return fmt.Errorf("%w: %w", push.ErrRejected, err)
	}
	key := string(t.Type) + "\x00" + u.String()
	r.mu.Lock()
	c := r.conns[key]
	r.mu.Unlock()
	if c == nil {
		if c, err = r.open(ctx, t.Type, u); err != nil {
			return err
		}
		r.mu.Lock()
		if old := r.conns[key]; old != nil {
			// Another try opened one meanwhile: use it, close ours.
			go c.close()
			c = old
		} else {
			if r.conns == nil {
				r.conns = map[string]*brokerConn{}
			}
			r.conns[key] = c
		}
		r.mu.Unlock()
	}
	c.touch()
	if err := c.publish(ctx, t, id, body); err != nil {
		r.mu.Lock()
		if r.conns[key] == c {
			delete(r.conns, key)
		}
		r.mu.Unlock()
		c.close()
		return fmt.Errorf("%s %s: %w", t.Type, redacted(u), err)
	}
	return nil
}

func redacted(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	return u.Redacted()
}

// open connects to a broker.
func (r *router) open(ctx context.Context, typ TargetType, u *url.URL) (*brokerConn, error) {
	var denied atomic.Pointer[error] // set when the guard refused the address (paho dials on its own goroutine)
	d := r.guard.dialer(r.timeout)
	control := d.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		err := control(network, address, c)
		if err != nil {
			denied.Store(&err)
		}
		return err
	}
	c := &brokerConn{typ: typ}
	var err error
	switch typ {
	case NATS:
		c.nc, err = nats.Connect(u.String(), nats.Name("doze-forward"), nats.NoReconnect(), nats.Timeout(r.timeout),
			nats.SetCustomDialer(d), nats.DontRandomize())
	case MQTT:
		c.mc, err = openMQTT(ctx, u, d, r.timeout)
	case AMQP:
		c.ac, c.ch, c.closed, err = openAMQP(u, d, r.timeout)
	default:
		err = fmt.Errorf("unknown target type %q", typ)
	}
	if d := denied.Load(); d != nil {
		// The guard's refusal is final: the message is dropped, not retried.
		if err == nil {
			c.close()
		}
		return nil, fmt.Errorf("%s %s: %w", typ, redacted(u), *d)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s %s: %s", typ, redacted(u), redactErr(err, u.String()))
	}
	c.touch()
	return c, nil
}

func openMQTT(ctx context.Context, u *url.URL, d *net.Dialer, timeout time.Duration) (mqtt.Client, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	o := mqtt.NewClientOptions().AddBroker("tcp://" + u.Host).SetClientID("doze-forward-" + hex.EncodeToString(rnd[:])).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(timeout).SetWriteTimeout(timeout).
		SetCleanSession(true).SetOrderMatters(false).SetDialer(d)
	if u.User != nil {
		o.SetUsername(u.User.Username())
		if pw, ok := u.User.Password(); ok {
			o.SetPassword(pw)
		}
	}
	c := mqtt.NewClient(o)
	if err := wait(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return nil, err
	}
	return c, nil
}

func openAMQP(u *url.URL, d *net.Dialer, timeout time.Duration) (*amqp.Connection, *amqp.Channel, chan *amqp.Error, error) {
	conn, err := amqp.DialConfig(u.String(), amqp.Config{
		Properties: amqp.Table{"connection_name": "doze-forward"},
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := d.Dial(network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake must finish in time; amqp091 clears the
			// deadline after it.
			_ = c.SetDeadline(time.Now().Add(timeout))
			return c, nil
		},
	})
	if err != nil {
		return nil, nil, nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	return conn, ch, closed, nil
}

// wait waits for an MQTT token or the context.
func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return fmt.Errorf("no answer from the MQTT broker: %w", ctx.Err())
	}
}

// closeIdle closes connections unused since before.
func (r *router) closeIdle(before time.Time) {
	var idle []*brokerConn
	r.mu.Lock()
	for k, c := range r.conns {
		if c.lastUse().Before(before) {
			idle = append(idle, c)
			delete(r.conns, k)
		}
	}
	r.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// closeAll closes every connection.
func (r *router) closeAll() { r.closeIdle(time.Now().Add(time.Hour)) }

// brokerConn is one open connection to a broker.
type brokerConn struct {
	typ TargetType
	nc  *nats.Conn
	mc  mqtt.Client
	ac  *amqp.Connection
	ch  *amqp.Channel
	// closed hears the AMQP channel's close, with the broker's reason
	// (such as 404 NOT_FOUND for a missing exchange).
	closed chan *amqp.Error

	mu   sync.Mutex
	used time.Time
	once sync.Once
}

func (c *brokerConn) touch() {
	c.mu.Lock()
	c.used = time.Now()
	c.mu.Unlock()
}

func (c *brokerConn) lastUse() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// publish sends one message and waits for the broker to take it: a NATS
// flush (the server has processed the publish), an MQTT PUBACK/PUBCOMP at
// QoS 1/2, an AMQP publisher confirm.
func (c *brokerConn) publish(ctx context.Context, t Target, id string, body []byte) error {
	switch c.typ {
	case NATS:
		m := &nats.Msg{Subject: t.Subject, Data: body, Header: nats.Header{}}
		m.Header.Set("Content-Type", "application/json")
		if id != "" {
			m.Header.Set("Nats-Msg-Id", id) // JetStream drops a repeat by this id
		}
		err := c.nc.PublishMsg(m)
		if errors.Is(err, nats.ErrHeadersNotSupported) {
			err = c.nc.Publish(t.Subject, body)
		}
		if err != nil {
			return err
		}
		return c.nc.FlushWithContext(ctx)
	case MQTT:
		return wait(ctx, c.mc.Publish(t.Topic, t.qos(), false, body))
	case AMQP:
		dc, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, t.Exchange, t.RoutingKey, false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Timestamp: time.Now(), Body: body})
		if err != nil {
			return err
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			select {
			case e := <-c.closed:
				if e != nil {
					return fmt.Errorf("the broker closed the channel: %v", e)
				}
			case <-time.After(100 * time.Millisecond):
			}
			return errors.New("the broker did not confirm the message (nack)")
		}
		return nil
	}
	return fmt.Errorf("unknown target type %q", c.typ)
}

func (c *brokerConn) close() {
	c.once.Do(func() {
		switch {
		case c.nc != nil:
			c.nc.Close()
		case c.mc != nil:
			c.mc.Disconnect(100)
		case c.ac != nil:
			c.ac.Close()
		}
	})
}
