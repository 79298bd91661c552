package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// ClientConfig configures a device-side Client.
type ClientConfig struct {
	Server   string // server address host:port (required)
	Endpoint string // endpoint name, e.g. "urn:imei:868333030000001" (required)
	Identity string // PSK identity; "" means Endpoint
	Key      []byte // PSK; nil means plain CoAP without DTLS
	// LocalAddr is the local UDP address to send from; "" means
	// 127.0.0.1 with a free port for a loopback server, else any address.
	LocalAddr string

	// CipherSuites the client offers; nil means both suites of LWM-1.
	CipherSuites []CipherSuite
	// NoConnectionID stops the client from using a DTLS Connection ID
	// (it uses one by default, LWM-10).
	NoConnectionID bool
	// HandshakeTimeout bounds the DTLS handshake; 0 means 30s.
	HandshakeTimeout time.Duration

	Version  string        // LwM2M version announced; "" means "1.1"
	Lifetime time.Duration // registration lifetime; 0 means 86400s
	Binding  string        // b parameter; "" means "U"
	Queue    bool          // queue mode: Q (1.1) or b=UQ (1.0)
	TUP      bool          // register with POST /t/r (LWM-4) instead of /rd
	// Objects is the registration body; "" means the instances of the
	// resources given to Handle, e.g. "</3/0>,</19/0>,</19/1>".
	Objects string

	// ConfirmableNotifications sends notifications as CON (default NON).
	ConfirmableNotifications bool
	// Transmission is the retransmission profile of the client's CON
	// messages; the zero value is the NB-IoT profile.
	Transmission Transmission
	// MaxMessageSize is the largest datagram read; 0 means 4096.
	MaxMessageSize int
	// Model is the object model the client checks writes against: a
	// Multiple resource takes its instances, never a single value (see
	// Resource.Write); nil means the built-in objects (lwm2m.NewBuiltinObjects).
	Model *lwm2m.Objects
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// Resource is one resource (or resource instance) a Client serves. Nil
// functions make the operation answer 4.05 Method Not Allowed.
type Resource struct {
	Read func() (Content, error)
	// Write takes a written value. On an object instance ("/3/0", a
	// partial or full update) or a Single-Instance resource it gets the
	// payload as sent. On a Multiple resource ("/19/1/0", by
	// ClientConfig.Model) it is called once per resource instance
	// written, with that instance's value alone: opaque (42) for an Opaque
	// resource, else plain text (0). Such a resource takes a write of one
	// instance ("/19/1/0/0", unless that path has a Resource of its own) or
	// of the resource in TLV, SenML or LwM2M JSON; a single value written
	// to the resource itself is refused with 4.00, as the LwM2M data
	// formats require.
	Write   func(c Content) error
	Execute func(args []byte) error
	// Create, on an object path ("/3303"), creates an instance from c and
	// returns its id; the server gets 2.01 with the instance's location.
	Create func(c Content) (instance uint16, err error)
}

// Client is a device-side LwM2M/TUP client: it registers, serves its
// resources to the server (read, write, execute, observe, discover,
// write-attributes) and sends notifications and Send data. NewClient starts
// nothing; Connect dials and starts the reading goroutine, which Close stops
// and waits for.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu        sync.Mutex
	resources map[string]Resource
	observers map[string]map[string]uint32 // path → token → last Observe value
	attrs     map[string]Attributes        // path → Write-Attributes (clientattrs.go)
	location  string
	ex        *exchange
	pc        *rebindConn
	conn      net.Conn // DTLS
	srvAddr   *net.UDPAddr
	bs        *bootstrapState // during Bootstrap (clientbootstrap.go)

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewClient checks cfg and returns a Client; it starts nothing.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Server == "" {
		return nil, &ConfigError{Field: "Server", Problem: "required: the server's host:port"}
	}
	if cfg.Endpoint == "" {
		return nil, &ConfigError{Field: "Endpoint", Problem: "required: the endpoint name (IMEI)"}
	}
	if cfg.Identity == "" {
		cfg.Identity = cfg.Endpoint
	}
	if len(cfg.CipherSuites) == 0 {
		cfg.CipherSuites = []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256}
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.Version == "" {
		cfg.Version = "1.1"
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 86400 * time.Second
	}
	if cfg.Binding == "" {
		cfg.Binding = "U"
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Model == nil {
		cfg.Model = builtinObjects()
	}
	return &Client{
		cfg:       cfg,
		log:       cfg.Logger,
		resources: make(map[string]Resource),
		observers: make(map[string]map[string]uint32),
	}, nil
}

// Handle serves r at path ("/19/0/0", "/t/d"). It may be called at any time.
func (c *Client) Handle(path string, r Resource) {
	c.mu.Lock()
	c.resources[path] = r
	c.mu.Unlock()
}

// Connect dials the server (with a DTLS handshake when a Key is set) and
// starts reading. It does not register.
func (c *Client) Connect(ctx context.Context) error {
	ra, err := net.ResolveUDPAddr("udp", c.cfg.Server)
	if err != nil {
		return fmt.Errorf("lwm2m: client server address %q: %w", c.cfg.Server, err)
	}
	pc, err := newRebindConn(c.cfg.LocalAddr, ra)
	if err != nil {
		return fmt.Errorf("lwm2m: client socket: %w", err)
	}
	c.mu.Lock()
	c.pc, c.srvAddr = pc, ra
	c.mu.Unlock()
	var tx func([]byte) error
	if c.cfg.Key != nil {
		key := append([]byte(nil), c.cfg.Key...)
		opts := []dtls.ClientOption{
			dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
			dtls.WithPSKIdentityHint([]byte(c.cfg.Identity)),
			dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		}
		for _, o := range suiteOptions(c.cfg.CipherSuites) {
			opts = append(opts, o)
		}
		if !c.cfg.NoConnectionID {
			opts = append(opts, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
		}
		conn, err := dtls.ClientWithOptions(pc, ra, opts...)
		if err != nil {
			_ = pc.Close()
			return fmt.Errorf("lwm2m: client DTLS: %w", err)
		}
		hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
		err = conn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			_ = pc.Close()
			return fmt.Errorf("lwm2m: client DTLS handshake with %s: %w", c.cfg.Server, err)
		}
		c.conn = conn
		tx = func(b []byte) error { _, err := conn.Write(b); return err }
	} else {
		tx = func(b []byte) error { _, err := pc.WriteTo(b, ra); return err }
	}
	c.attach(tx)
	c.wg.Add(1)
	go c.read()
	return nil
}

// attach connects the client to tx without a socket (in-memory tests);
// datagrams from the server are given to c.ex.receive by the caller.
func (c *Client) attach(tx func([]byte) error) {
	ex := newExchange(tx, c.cfg.MaxMessageSize)
	ex.setTransmission(c.cfg.Transmission)
	ex.handle = c.handle
	c.mu.Lock()
	c.ex = ex
	c.mu.Unlock()
}

func (c *Client) read() {
	defer c.wg.Done()
	buf := make([]byte, c.cfg.MaxMessageSize+1024)
	for {
		var n int
		var err error
		if c.conn != nil {
			n, err = c.conn.Read(buf)
		} else {
			var a net.Addr
			n, a, err = c.pc.ReadFrom(buf)
			if err == nil && a.String() != c.srvAddr.String() {
				continue
			}
		}
		if err != nil {
			if c.pc.isClosed() {
				return
			}
			if c.conn != nil && (errors.Is(err, net.ErrClosed) || isEOF(err)) {
				return
			}
			continue
		}
		c.ex.receive(append([]byte(nil), buf[:n]...))
	}
}

// Close ends the session (without de-registering) and waits for the
// reading goroutine. It may be called more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		ex, conn, pc := c.ex, c.conn, c.pc
		c.mu.Unlock()
		if ex != nil {
			ex.close()
		}
		if pc != nil {
			pc.markClosed()
		}
		if conn != nil {
			_ = conn.Close()
		}
		if pc != nil {
			_ = pc.Close()
		}
	})
	c.wg.Wait()
	return nil
}

// Rebind moves the client to a new local UDP port, as a NAT rebinding does
// to a device waking from PSM (LWM-10). With a DTLS Connection ID the
// session continues without a new handshake.
func (c *Client) Rebind() error {
	c.mu.Lock()
	pc := c.pc
	c.mu.Unlock()
	if pc == nil {
		return ErrClosed
	}
	return pc.rebind()
}

// LocalAddr returns the client's current local address.
func (c *Client) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pc == nil {
		return nil
	}
	return c.pc.LocalAddr()
}

// Location returns the registration location ("/rd/<id>"), "" before
// registering.
func (c *Client) Location() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.location
}

func (c *Client) exchange() (*exchange, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ex == nil {
		return nil, fmt.Errorf("lwm2m: client not connected: %w", ErrClosed)
	}
	return c.ex, nil
}

func (c *Client) objects() string {
	if c.cfg.Objects != "" {
		return c.cfg.Objects
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	var inst []string
	for p := range c.resources {
		parts := strings.Split(strings.Trim(p, "/"), "/")
		if len(parts) >= 2 && parts[0] != "t" {
			k := "</" + parts[0] + "/" + parts[1] + ">"
			if !seen[k] {
				seen[k] = true
				inst = append(inst, k)
			}
		}
	}
	sort.Strings(inst)
	return strings.Join(inst, ",")
}

func (c *Client) do(ctx context.Context, op string, m *message.Message) (*message.Message, error) {
	ex, err := c.exchange()
	if err != nil {
		return nil, err
	}
	resp, err := ex.doBlocks(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("lwm2m: client %s: %w", op, err)
	}
	if resp.Code >= 128 {
		return nil, &ResponseError{Op: op, Endpoint: c.cfg.Endpoint, Path: msgPath(m), Code: Code(resp.Code), Message: string(resp.Payload)}
	}
	return resp, nil
}

// Register registers with the server: POST /rd (LWM-3), or POST /t/r for a
// TUP client (LWM-4).
func (c *Client) Register(ctx context.Context) error {
	if c.cfg.TUP {
		m := newRequest(codes.POST, "/t/r")
		addQuery(m, "ep="+c.cfg.Endpoint)
		_, err := c.do(ctx, "register", m)
		if err == nil {
			c.mu.Lock()
			c.location = "/t/r"
			c.mu.Unlock()
		}
		return err
	}
	m := newRequest(codes.POST, "/rd")
	addQuery(m, "ep="+c.cfg.Endpoint)
	addQuery(m, "lt="+strconv.Itoa(int(c.cfg.Lifetime/time.Second)))
	addQuery(m, "lwm2m="+c.cfg.Version)
	b := c.cfg.Binding
	if c.cfg.Queue && strings.HasPrefix(c.cfg.Version, "1.0") && !strings.Contains(b, "Q") {
		b += "Q"
	}
	addQuery(m, "b="+b)
	if c.cfg.Queue && !strings.HasPrefix(c.cfg.Version, "1.0") {
		addQuery(m, "Q")
	}
	setContentFormat(m, cfLink)
	m.Payload = []byte(c.objects())
	resp, err := c.do(ctx, "register", m)
	if err != nil {
		return err
	}
	var loc strings.Builder
	for _, o := range resp.Options {
		if o.ID == message.LocationPath {
			loc.WriteByte('/')
			loc.Write(o.Value)
		}
	}
	c.mu.Lock()
	c.location = loc.String()
	c.mu.Unlock()
	return nil
}

// Update sends a registration update (POST /rd/<id>); with a TUP client it
// registers again.
func (c *Client) Update(ctx context.Context) error {
	if c.cfg.TUP {
		return c.Register(ctx)
	}
	loc := c.Location()
	if loc == "" {
		return fmt.Errorf("lwm2m: client update: %w", ErrNotRegistered)
	}
	_, err := c.do(ctx, "update", newRequest(codes.POST, loc))
	return err
}

// Deregister ends the registration (DELETE /rd/<id>).
func (c *Client) Deregister(ctx context.Context) error {
	loc := c.Location()
	if loc == "" || c.cfg.TUP {
		return fmt.Errorf("lwm2m: client deregister: %w", ErrNotRegistered)
	}
	_, err := c.do(ctx, "deregister", newRequest(codes.DELETE, loc))
	if err == nil {
		c.mu.Lock()
		c.location = ""
		c.mu.Unlock()
	}
	return err
}

// Send posts data with the LwM2M 1.1 Send operation (POST /dp); v is
// usually SenML (110, 112).
func (c *Client) Send(ctx context.Context, v Content) error {
	m := newRequest(codes.POST, "/dp")
	setContentFormat(m, v.Format)
	m.Payload = v.Payload
	_, err := c.do(ctx, "send", m)
	return err
}

// Notify sends v as a notification to every observer of path ("/19/0/0",
// "/t/d"). It returns ErrNotFound when nobody observes path.
func (c *Client) Notify(ctx context.Context, path string, v Content) error {
	ex, err := c.exchange()
	if err != nil {
		return err
	}
	c.mu.Lock()
	type target struct {
		tok string
		seq uint32
	}
	var ts []target
	for tok, seq := range c.observers[path] {
		seq = (seq + 1) & 0xffffff
		c.observers[path][tok] = seq
		ts = append(ts, target{tok, seq})
	}
	c.mu.Unlock()
	if len(ts) == 0 {
		return fmt.Errorf("lwm2m: client notify %s: no observer: %w", path, ErrNotFound)
	}
	for _, t := range ts {
		m := &message.Message{Code: codes.Content, Token: []byte(t.tok), Payload: v.Payload}
		addUint(m, message.Observe, t.seq)
		setContentFormat(m, v.Format)
		if err := ex.notify(ctx, m, c.cfg.ConfirmableNotifications); err != nil {
			if errors.Is(err, ErrReset) {
				c.mu.Lock()
				delete(c.observers[path], t.tok)
				c.mu.Unlock()
			}
			return fmt.Errorf("lwm2m: client notify %s: %w", path, err)
		}
	}
	return nil
}

// Observed reports whether the server observes path.
func (c *Client) Observed(path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.observers[path]) > 0
}

// handle answers a request from the server.
func (c *Client) handle(m *message.Message) (*message.Message, func()) {
	path := msgPath(m)
	c.mu.Lock()
	r, ok := c.resources[path]
	bs := c.bs
	c.mu.Unlock()
	if bs != nil {
		return c.handleBootstrap(bs, m)
	}
	if m.Code == codes.GET {
		if a, has := optUint(m, message.Accept); has && lwm2m.Format(a) == cfLink {
			return c.discover(path), nil
		}
	}
	if m.Code == codes.PUT && !isWriteAttributes(m) {
		return c.write(m, path), nil
	}
	if !ok {
		return errResp(codes.NotFound, "no resource %s", path), nil
	}
	switch m.Code {
	case codes.GET:
		if r.Read == nil {
			return errResp(codes.MethodNotAllowed, "%s is not readable", path), nil
		}
		v, err := r.Read()
		if err != nil {
			return errResp(codes.InternalServerError, "%v", err), nil
		}
		resp := &message.Message{Code: codes.Content, Payload: v.Payload}
		setContentFormat(resp, v.Format)
		if r, ok := c.block2(m, resp); !ok {
			return r, nil
		}
		obs, has := observeOpt(m)
		switch {
		case has && obs == 0:
			// The observer counts from when the answer has left, so that
			// no notification overtakes it.
			addUint(resp, message.Observe, 1)
			tok := string(m.Token)
			return resp, func() {
				c.mu.Lock()
				if c.observers[path] == nil {
					c.observers[path] = make(map[string]uint32)
				}
				c.observers[path][tok] = 1
				c.mu.Unlock()
			}
		case has && obs == 1:
			c.mu.Lock()
			delete(c.observers[path], string(m.Token))
			c.mu.Unlock()
		}
		return resp, nil
	case codes.PUT: // write-attributes; writes are c.write's
		return c.writeAttributes(m, path), nil
	case codes.POST:
		switch depth := strings.Count(strings.Trim(path, "/"), "/") + 1; {
		case depth == 1: // create on an object
			if r.Create == nil {
				return errResp(codes.MethodNotAllowed, "%s does not create instances", path), nil
			}
			id, err := r.Create(Content{Format: contentFormat(m), Payload: m.Payload})
			if err != nil {
				return errResp(codes.BadRequest, "%v", err), nil
			}
			resp := &message.Message{Code: codes.Created}
			addPath(resp, message.LocationPath, path+"/"+strconv.Itoa(int(id)))
			return resp, nil
		case depth >= 3 || path == "/t/d": // execute on a resource; TUP downlink
			if path == "/t/d" && r.Write != nil {
				break
			}
			if r.Execute == nil {
				return errResp(codes.MethodNotAllowed, "%s is not executable", path), nil
			}
			if err := r.Execute(m.Payload); err != nil {
				return errResp(codes.InternalServerError, "%v", err), nil
			}
			return &message.Message{Code: codes.Changed}, nil
		}
		// partial update of an object instance
		if r.Write == nil {
			return errResp(codes.MethodNotAllowed, "%s is not writable", path), nil
		}
		if err := r.Write(Content{Format: contentFormat(m), Payload: m.Payload}); err != nil {
			return errResp(codes.BadRequest, "%v", err), nil
		}
		return &message.Message{Code: codes.Changed}, nil
	case codes.DELETE:
		c.mu.Lock()
		delete(c.resources, path)
		c.mu.Unlock()
		return &message.Message{Code: codes.Deleted}, nil
	}
	return errResp(codes.MethodNotAllowed, "method %v not allowed on %s", m.Code, path), nil
}

// clientBlockSize is the block size of the client's Block2 answers when
// the server does not ask for one: 512 bytes.
const clientBlockSize = 5

// block2 cuts a GET answer larger than one block into Block2 blocks
// (RFC 7959), serving the block the request asks for. It returns the
// answer to send and false when it replaced resp with an error.
func (c *Client) block2(m, resp *message.Message) (*message.Message, bool) {
	want := blockOpt{szx: clientBlockSize}
	v, asked := optUint(m, message.Block2)
	if asked {
		b, err := parseBlock(v)
		if err != nil {
			return errResp(codes.BadOption, "Block2: %v", err), false
		}
		want = b
	}
	if !asked && len(resp.Payload) <= 1024 {
		return resp, true // fits in one datagram
	}
	whole := resp.Payload
	off := int(want.num) * want.size()
	if off >= len(whole) && off > 0 {
		return errResp(codes.BadOption, "block %d starts past the end (%d bytes)", want.num, len(whole)), false
	}
	end := min(off+want.size(), len(whole))
	resp.Payload = whole[off:end]
	want.more = end < len(whole)
	addUint(resp, message.Block2, want.value())
	if want.num == 0 {
		addUint(resp, message.Size2, uint32(len(whole)))
	}
	return resp, true
}

func (c *Client) discover(prefix string) *message.Message {
	c.mu.Lock()
	var ps []string
	for p := range c.resources {
		if p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/") {
			ps = append(ps, p)
		}
	}
	c.mu.Unlock()
	if len(ps) == 0 {
		return errResp(codes.NotFound, "nothing under %s", prefix)
	}
	sort.Strings(ps)
	for i, p := range ps {
		ps[i] = "<" + p + ">"
	}
	resp := &message.Message{Code: codes.Content, Payload: []byte(strings.Join(ps, ","))}
	setContentFormat(resp, cfLink)
	return resp
}

// rebindConn is a net.PacketConn whose local socket can be replaced, to
// simulate NAT rebinding.
type rebindConn struct {
	mu     sync.Mutex
	c      *net.UDPConn
	ip     net.IP
	closed bool
}

func newRebindConn(local string, remote *net.UDPAddr) (*rebindConn, error) {
	la := &net.UDPAddr{}
	if remote.IP.IsLoopback() {
		la.IP = remote.IP
	}
	if local != "" {
		a, err := net.ResolveUDPAddr("udp", local)
		if err != nil {
			return nil, err
		}
		la = a
	}
	c, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	return &rebindConn{c: c, ip: la.IP}, nil
}

func (r *rebindConn) cur() *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

func (r *rebindConn) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *rebindConn) markClosed() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

func (r *rebindConn) rebind() error {
	n, err := net.ListenUDP("udp", &net.UDPAddr{IP: r.ip})
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.c
	r.c = n
	r.mu.Unlock()
	return old.Close()
}

func (r *rebindConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c := r.cur()
		n, a, err := c.ReadFrom(p)
		if err != nil && !r.isClosed() && r.cur() != c {
			continue // swapped by rebind
		}
		return n, a, err
	}
}

func (r *rebindConn) WriteTo(p []byte, a net.Addr) (int, error) { return r.cur().WriteTo(p, a) }

func (r *rebindConn) Close() error {
	r.markClosed()
	return r.cur().Close()
}

func (r *rebindConn) LocalAddr() net.Addr                { return r.cur().LocalAddr() }
func (r *rebindConn) SetDeadline(t time.Time) error      { return r.cur().SetDeadline(t) }
func (r *rebindConn) SetReadDeadline(t time.Time) error  { return r.cur().SetReadDeadline(t) }
func (r *rebindConn) SetWriteDeadline(t time.Time) error { return r.cur().SetWriteDeadline(t) }
