package lwm2mtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Stack is the LwM2M stack a test Device plays: how it takes writes to
// object 19's Data resource, /19/1/0, a Multiple resource of Opaque values.
// Each is as strict as the OMA text and the stacks seen in the field.
type Stack int

const (
	// Stack11 is an LwM2M 1.1 client: it takes the resource instance
	// /19/1/0/0 as opaque (42), or the resource /19/1/0 as SenML JSON (110)
	// naming its instances. A single value written to /19/1/0 gets 4.00
	// (the resource is Multiple); TLV and SenML CBOR get 4.15.
	Stack11 Stack = iota
	// Stack10 is an LwM2M 1.0 client: it knows no resource-instance paths
	// (/19/1/0/0 gets 4.04) and takes /19/1/0 as TLV only: one Multiple
	// Resource entry with id 0 holding Resource Instance entries. Opaque
	// or text gets 4.00, other formats 4.15.
	Stack10
	// StackLegacy is an NB-IoT module built for the original platform: it
	// takes exactly an opaque (42) write of /19/1/0; /19/1/0/0 gets 4.04,
	// other formats 4.15.
	StackLegacy
	// StackRefuse refuses every write with 4.00.
	StackRefuse
)

// DeviceConfig configures a Device.
type DeviceConfig struct {
	Endpoint string // endpoint name (required)
	Stack    Stack
	// Version is the lwm2m= parameter of the registration; "" means "1.1"
	// for Stack11 and "1.0" for the others.
	Version string
	// Links is the registration body; "" means
	// `</>;rt="oma.lwm2m";ct="60 110",</19/0>,</19/1>` for a 1.1 device and
	// `</19/0>,</19/1>` otherwise, with </3/0>,</5/0> before </19/0> when
	// the device has a Flash.
	Links string
	// Lifetime is the lt= parameter in seconds; 0 means 86400.
	Lifetime int

	// Server is the server's URI ("coaps://127.0.0.1:5684"), dialled for
	// the first registration when StartDevice gets no conn and after
	// every reboot.
	Server string
	// Dial opens a new socket (Dialer.Dial): after a reboot, and for each
	// firmware download. nil means the device can neither reboot nor
	// download: Execute of /5/0/2 and Package URI writes get 4.00.
	Dial func(ctx context.Context, scheme, hostport string) (net.Conn, error)
	// Flash is the device's non-volatile memory: the running firmware
	// version (/3/0/3) and object 5. nil means the device has neither
	// object 3 nor object 5. It outlives the Device: a Device started on
	// the Flash of one that was killed mid-download resumes the download.
	Flash *Flash
	// BlockSize is the Block2 size of firmware downloads, a power of two
	// from 16 to 1024; 0 means 256.
	BlockSize int
	// OnBlock, when set, is called after each firmware block is stored,
	// with its number (from 0, in the whole package). ErrPowerCut kills
	// the device where it stands (Kill); another error aborts the
	// download as a lost connection (State 0, Update Result 4).
	OnBlock func(num int) error
	// PackageVersion tells the version a package installs; nil means its
	// first line. An empty version fails the update (Update Result 8).
	PackageVersion func(pkg []byte) string
	// Sensor, when set, is the temperature sensor /3303/0 the device
	// serves, with the composite operations (sensor.go); list </3303/0>
	// in Links.
	Sensor *Sensor
	// BareNotifications leaves the Content-Format out of the sensor's
	// notifications, as some clients do (lwm2m-node-lib): the server must
	// take them to be in the format its observe asked for with Accept.
	BareNotifications bool
}

// ErrPowerCut, returned by DeviceConfig.OnBlock, kills the device.
var ErrPowerCut = errors.New("lwm2mtest: power cut")

// Request is one request the Device answered.
type Request struct {
	Code   codes.Code // GET, PUT, POST, DELETE
	Path   string     // "/19/1/0/0"
	Format int        // Content-Format, -1 when absent
	Accept int        // Accept, -1 when absent
	Answer codes.Code // the code the device answered
}

// String returns "PUT /19/1/0/0 cf=42 → 2.04".
func (r Request) String() string {
	return fmt.Sprintf("%v %s cf=%d → %s", r.Code, r.Path, r.Format, codeText(r.Answer))
}

// Device is a small LwM2M device for conformance tests, written on
// go-coap's message codec alone (not on transport.Client), so that it checks
// the server against the standard rather than against this module's own
// client. It registers over a connected socket (UDP, or a DTLS net.Conn)
// and answers the server's requests: writes to /19/1/0 by its Stack, GET
// of /19/0/0 (observe) with an empty Multiple resource in TLV (4.06 Not
// Acceptable when the Accept option names another format), and with a
// Flash, the Firmware Version /3/0/3 and object 5 as OMA LwM2M describes
// it (firmware.go); anything else gets 4.04. Confirmable requests are
// answered with piggybacked ACKs; a retransmitted request gets the same
// answer again. Notifications are NON.
type Device struct {
	cfg    DeviceConfig
	server *url.URL // nil when the device cannot dial

	mu        sync.Mutex
	conn      net.Conn
	reqs      []Request
	data      [][]byte
	replies   map[uint16][]byte // message id → the answer sent, this session
	obs       map[string]*observer
	regs      []string      // local address of each registration
	composite *compositeObs // the server's Observe-Composite, if any
	mid       uint16
	acks      chan *message.Message

	dead     chan struct{} // closed by Kill
	killOnce sync.Once
	wg       sync.WaitGroup
}

// observer is the server's observation of one path: its token and the
// sequence number of the last notification.
type observer struct {
	token  []byte
	seq    uint32
	accept int // the Accept of the observe, -1 when absent
}

// StartDevice starts a Device on conn, which it owns, and registers it;
// a nil conn is dialled to cfg.Server. A Device whose Flash shows a
// download in progress resumes it. Close stops it.
func StartDevice(ctx context.Context, conn net.Conn, cfg DeviceConfig) (*Device, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("lwm2mtest: DeviceConfig.Endpoint is required")
	}
	if cfg.Version == "" {
		cfg.Version = "1.0"
		if cfg.Stack == Stack11 {
			cfg.Version = "1.1"
		}
	}
	if cfg.Links == "" {
		cfg.Links = "</19/0>,</19/1>"
		if cfg.Flash != nil {
			cfg.Links = "</3/0>,</5/0>," + cfg.Links
		}
		if !strings.HasPrefix(cfg.Version, "1.0") {
			cfg.Links = `</>;rt="oma.lwm2m";ct="60 110",` + cfg.Links
		}
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 86400
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 256
	}
	if _, ok := blockSZX(cfg.BlockSize); !ok {
		return nil, fmt.Errorf("lwm2mtest: DeviceConfig.BlockSize %d: want a power of two from 16 to 1024", cfg.BlockSize)
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	d := &Device{cfg: cfg, replies: map[uint16][]byte{}, obs: map[string]*observer{}, acks: make(chan *message.Message, 4),
		mid: binary.BigEndian.Uint16(b[:]), dead: make(chan struct{})}
	if cfg.Dial != nil && cfg.Server != "" {
		u, err := url.Parse(cfg.Server)
		if err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Host == "" {
			return nil, fmt.Errorf("lwm2mtest: DeviceConfig.Server %q: want coap://host:port or coaps://host:port", cfg.Server)
		}
		d.server = u
	}
	if conn == nil {
		if d.server == nil {
			return nil, errors.New("lwm2mtest: StartDevice without a conn needs DeviceConfig.Server and Dial")
		}
		var err error
		if conn, err = cfg.Dial(ctx, d.server.Scheme, d.server.Host); err != nil {
			return nil, err
		}
	}
	d.conn = conn
	d.wg.Go(func() { d.read(conn) })
	if err := d.register(ctx); err != nil {
		d.Close()
		return nil, err
	}
	d.resumeDownload()
	return d, nil
}

// Kill cuts the device's power: its socket closes (no close_notify, no
// De-register), a download in progress stops, nothing more is sent and
// its Flash is no longer written. It does not wait; Close does.
func (d *Device) Kill() {
	d.killOnce.Do(func() {
		close(d.dead)
		d.mu.Lock()
		c := d.conn
		d.mu.Unlock()
		_ = c.Close()
	})
}

// Close kills the device and waits for its goroutines.
func (d *Device) Close() {
	d.Kill()
	d.wg.Wait()
}

func (d *Device) killed() bool {
	select {
	case <-d.dead:
		return true
	default:
		return false
	}
}

// context returns a context that ends after timeout or when the device
// is killed.
func (d *Device) context(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-d.dead:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Reboot power-cycles the device: its session is cut (no close_notify, no
// De-register), every observation is forgotten, and it registers anew
// from a new socket (so a new source port) dialled to DeviceConfig.Server.
// A download in progress resumes after the registration.
func (d *Device) Reboot(ctx context.Context) error {
	if d.server == nil {
		return errors.New("lwm2mtest: reboot needs DeviceConfig.Server and Dial")
	}
	d.mu.Lock()
	old := d.conn
	d.obs = map[string]*observer{}
	d.replies = map[uint16][]byte{}
	d.mu.Unlock()
	_ = old.Close()
	conn, err := d.cfg.Dial(ctx, d.server.Scheme, d.server.Host)
	if err != nil {
		return fmt.Errorf("lwm2mtest: reboot: %w", err)
	}
	d.mu.Lock()
	if d.killed() {
		d.mu.Unlock()
		_ = conn.Close()
		return errors.New("lwm2mtest: reboot: the device was killed")
	}
	d.conn = conn
	d.mu.Unlock()
	d.wg.Go(func() { d.read(conn) })
	if err := d.register(ctx); err != nil {
		return err
	}
	d.resumeDownload()
	return nil
}

// Requests returns the requests the device answered, in order (a
// retransmission counts once).
func (d *Device) Requests() []Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Request(nil), d.reqs...)
}

// Writes returns the device's answered writes (PUT) of object 19's
// instance 1, in order.
func (d *Device) Writes() []Request {
	var w []Request
	for _, r := range d.Requests() {
		if r.Code == codes.PUT && strings.HasPrefix(r.Path, "/19/1/") {
			w = append(w, r)
		}
	}
	return w
}

// Data returns the application data the device took, one entry per
// resource instance written.
func (d *Device) Data() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.data...)
}

// Registrations returns the local address of each registration the
// device made, in order: one more after each reboot.
func (d *Device) Registrations() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.regs...)
}

// Observed reports whether the server observes path in this session.
func (d *Device) Observed(path string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.obs[path] != nil
}

func (d *Device) nextMID() uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mid++
	return d.mid
}

func encode(m *message.Message) ([]byte, error) {
	n, err := coder.DefaultCoder.Size(*m)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	n, err = coder.DefaultCoder.Encode(*m, buf)
	return buf[:n], err
}

// send writes m on the device's session.
func (d *Device) send(m *message.Message) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	_, err = c.Write(b)
	return err
}

// register sends POST /rd (CON) and waits for 2.01, retransmitting as RFC
// 7252 §4.2 does (here every second, four times at most).
func (d *Device) register(ctx context.Context) error {
	tok := make([]byte, 4)
	_, _ = rand.Read(tok)
	m := &message.Message{Code: codes.POST, Token: tok, Type: message.Confirmable, MessageID: int32(d.nextMID()),
		Payload: []byte(d.cfg.Links)}
	buf := make([]byte, 256)
	var opts message.Options
	var err error
	if opts, _, err = opts.SetPath(buf, "/rd"); err != nil {
		return err
	}
	for _, q := range []string{"ep=" + d.cfg.Endpoint, fmt.Sprintf("lt=%d", d.cfg.Lifetime), "lwm2m=" + d.cfg.Version, "b=U"} {
		opts = opts.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	cf := make([]byte, 4)
	opts, _, _ = opts.SetContentFormat(cf, message.AppLinkFormat)
	m.Options = opts
	for try := 0; try < 5; try++ {
		if err := d.send(m); err != nil {
			return fmt.Errorf("lwm2mtest: register: %w", err)
		}
		wait := time.NewTimer(time.Second)
		for {
			select {
			case <-ctx.Done():
				wait.Stop()
				return fmt.Errorf("lwm2mtest: register: %w", ctx.Err())
			case <-d.dead:
				wait.Stop()
				return errors.New("lwm2mtest: register: the device was killed")
			case <-wait.C:
			case a := <-d.acks:
				if string(a.Token) != string(tok) || a.Code == codes.Empty {
					continue // an empty ACK: the answer follows as CON
				}
				wait.Stop()
				if a.Code != codes.Created {
					return fmt.Errorf("lwm2mtest: register: server answered %s", codeText(a.Code))
				}
				d.mu.Lock()
				d.regs = append(d.regs, d.conn.LocalAddr().String())
				d.mu.Unlock()
				return nil
			}
			break
		}
	}
	return errors.New("lwm2mtest: register: no answer after 5 tries")
}

// Notify sends data to the observer of /19/0/0 as a NON notification: the
// Multiple resource in TLV with instance 0. It fails when nobody observes.
func (d *Device) Notify(data []byte) error {
	if !d.notify("/19/0/0", message.AppLwm2mTLV, multipleTLV(0, data)) {
		return errors.New("lwm2mtest: notify: the server does not observe /19/0/0")
	}
	return nil
}

// notify sends a NON notification of path to its observer, if any, and
// reports whether there was one.
func (d *Device) notify(path string, cf message.MediaType, payload []byte) bool {
	d.mu.Lock()
	o := d.obs[path]
	var tok []byte
	var seq uint32
	if o != nil {
		o.seq++
		tok, seq = o.token, o.seq
	}
	d.mu.Unlock()
	if o == nil || d.killed() {
		return false
	}
	m := &message.Message{Code: codes.Content, Token: tok, Type: message.NonConfirmable, MessageID: int32(d.nextMID()),
		Payload: payload}
	b := make([]byte, 8)
	m.Options, _, _ = m.Options.SetObserve(b, seq)
	if cf != noFormat {
		m.Options, _, _ = m.Options.SetContentFormat(b[4:], cf)
	}
	return d.send(m) == nil
}

// noFormat, given to notify, leaves the Content-Format out.
const noFormat message.MediaType = 0xffff

// read reads one session's socket until it closes.
func (d *Device) read(conn net.Conn) {
	buf := make([]byte, 2048)
	strikes := 0
	for {
		n, err := conn.Read(buf)
		if err != nil {
			// An ICMP error surfaces once on a connected UDP socket;
			// anything else (closed, end of a DTLS session) is for good.
			var op *net.OpError
			if d.killed() || !errors.As(err, &op) || errors.Is(err, net.ErrClosed) || strikes > 100 {
				return
			}
			strikes++
			continue
		}
		strikes = 0
		// The message keeps pointing into its datagram: a copy of its own.
		b := append([]byte(nil), buf[:n]...)
		m := &message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(b, m); err != nil {
			continue // not CoAP: dropped, as RFC 7252 §4.2 allows
		}
		d.receive(conn, m)
	}
}

func (d *Device) receive(conn net.Conn, m *message.Message) {
	switch {
	case m.Type == message.Acknowledgement || m.Type == message.Reset:
		select {
		case d.acks <- m:
		default:
		}
		return
	case m.Code >= 64: // a separate response (CON or NON)
		if m.Type == message.Confirmable {
			if b, err := encode(&message.Message{Type: message.Acknowledgement, MessageID: m.MessageID}); err == nil {
				_, _ = conn.Write(b)
			}
		}
		select {
		case d.acks <- m:
		default:
		}
		return
	}
	mid := uint16(m.MessageID)
	d.mu.Lock()
	again, dup := d.replies[mid]
	d.mu.Unlock()
	if dup {
		_, _ = conn.Write(again) // RFC 7252 §4.5: the same answer again
		return
	}
	resp, then := d.answer(m)
	resp.MessageID = m.MessageID
	resp.Token = m.Token
	resp.Type = message.Acknowledgement
	if m.Type == message.NonConfirmable {
		resp.Type = message.NonConfirmable
		resp.MessageID = int32(d.nextMID())
	}
	b, err := encode(resp)
	if err != nil {
		return
	}
	d.mu.Lock()
	d.replies[mid] = b
	d.mu.Unlock()
	_, _ = conn.Write(b)
	if then != nil {
		d.wg.Go(then)
	}
}

// answer handles one request and records it. then, when not nil, runs
// after the answer left (on its own goroutine).
func (d *Device) answer(m *message.Message) (resp *message.Message, then func()) {
	path, _ := m.Options.Path()
	path = "/" + strings.TrimPrefix(path, "/")
	cf := -1
	if f, err := m.Options.ContentFormat(); err == nil {
		cf = int(f)
	}
	var data [][]byte
	switch {
	case d.cfg.Sensor != nil && (strings.HasPrefix(path, "/3303/") || m.Code == codes.FETCH || m.Code == codes.IPATCH):
		resp = d.sensor(m, path, cf)
	case strings.HasPrefix(path, "/3/") || strings.HasPrefix(path, "/5/"):
		resp, then = d.firmware(m, path, cf)
	default:
		resp, data = d.handle(m, path, cf)
	}
	d.mu.Lock()
	accept := -1
	if a, err := m.Options.GetUint32(message.Accept); err == nil {
		accept = int(a)
	}
	d.reqs = append(d.reqs, Request{Code: m.Code, Path: path, Format: cf, Accept: accept, Answer: resp.Code})
	d.data = append(d.data, data...)
	d.mu.Unlock()
	return resp, then
}

// observe takes or cancels an observation of path as the request m asks
// (RFC 7641 §3.1: Observe 0 registers, 1 deregisters) and sets the
// Observe option of the answer resp.
func (d *Device) observe(m *message.Message, path string, resp *message.Message) {
	obs, err := m.Options.Observe()
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch obs {
	case 0:
		accept := -1
		if a, err := m.Options.GetUint32(message.Accept); err == nil {
			accept = int(a)
		}
		d.obs[path] = &observer{token: append([]byte(nil), m.Token...), accept: accept}
		b := make([]byte, 4)
		resp.Options, _, _ = resp.Options.SetObserve(b, 0)
	case 1:
		if o := d.obs[path]; o != nil && string(o.token) == string(m.Token) {
			delete(d.obs, path)
		}
	}
}

func errAnswer(c codes.Code, format string, args ...any) *message.Message {
	return &message.Message{Code: c, Payload: []byte(fmt.Sprintf(format, args...))}
}

func (d *Device) handle(m *message.Message, path string, cf int) (*message.Message, [][]byte) {
	switch {
	case m.Code == codes.GET && path == "/19/0/0":
		// RFC 7252 §5.10.4: an Accept the resource cannot give gets 4.06.
		if a, err := m.Options.GetUint32(message.Accept); err == nil && a != uint32(message.AppLwm2mTLV) {
			return errAnswer(codes.NotAcceptable, "%s is served as TLV (11542), not %d", path, a), nil
		}
		resp := &message.Message{Code: codes.Content, Payload: []byte{0x80, 0x00}} // no instance yet
		d.observe(m, path, resp)
		b := make([]byte, 4)
		resp.Options, _, _ = resp.Options.SetContentFormat(b, message.AppLwm2mTLV)
		return resp, nil
	case m.Code != codes.PUT || (path != "/19/1/0" && path != "/19/1/0/0"):
		return errAnswer(codes.NotFound, "%s not served", path), nil
	}
	instance := path == "/19/1/0/0"
	switch d.cfg.Stack {
	case StackRefuse:
		return errAnswer(codes.BadRequest, "refused"), nil
	case Stack11:
		switch {
		case instance && cf == int(message.AppOctets):
			return changed(), [][]byte{m.Payload}
		case instance:
			return errAnswer(codes.UnsupportedMediaType, "an Opaque resource instance takes 42"), nil
		case cf == int(message.AppSenmlJSON):
			vals, err := parseSenMLJSON(m.Payload)
			if err != nil {
				return errAnswer(codes.BadRequest, "%v", err), nil
			}
			return changed(), vals
		case cf == -1 || cf == int(message.AppOctets) || cf == int(message.TextPlain):
			return errAnswer(codes.BadRequest, "/19/1/0 is a multiple resource, but the payload treats it as single"), nil
		}
		return errAnswer(codes.UnsupportedMediaType, "content-format %d not supported", cf), nil
	case Stack10:
		switch {
		case instance:
			return errAnswer(codes.NotFound, "no such resource"), nil
		case cf == int(message.AppLwm2mTLV):
			vals, err := parseMultipleTLV(m.Payload, 0)
			if err != nil {
				return errAnswer(codes.BadRequest, "%v", err), nil
			}
			return changed(), vals
		case cf == -1 || cf == int(message.AppOctets) || cf == int(message.TextPlain):
			return errAnswer(codes.BadRequest, "/19/1/0 is a multiple resource, but the payload treats it as single"), nil
		}
		return errAnswer(codes.UnsupportedMediaType, "content-format %d not supported", cf), nil
	default: // StackLegacy
		switch {
		case instance:
			return errAnswer(codes.NotFound, "no such resource"), nil
		case cf == int(message.AppOctets):
			return changed(), [][]byte{m.Payload}
		}
		return errAnswer(codes.UnsupportedMediaType, "content-format %d not supported", cf), nil
	}
}

func changed() *message.Message { return &message.Message{Code: codes.Changed} }

// parseSenMLJSON reads a SenML JSON pack (RFC 8428) written to /19/1/0:
// every record must resolve (bn + n) to /19/1/0/<instance> and carry an
// Opaque value as vd (base64url, RFC 8428 §4.3 and LwM2M's SenML mapping).
func parseSenMLJSON(b []byte) ([][]byte, error) {
	var recs []map[string]json.RawMessage
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("SenML JSON: %v", err)
	}
	var bn string
	var out [][]byte
	for i, r := range recs {
		if v, ok := r["bn"]; ok {
			if err := json.Unmarshal(v, &bn); err != nil {
				return nil, fmt.Errorf("record %d: bn: %v", i, err)
			}
		}
		var n string
		if v, ok := r["n"]; ok {
			if err := json.Unmarshal(v, &n); err != nil {
				return nil, fmt.Errorf("record %d: n: %v", i, err)
			}
		}
		name := bn + n
		rest, ok := strings.CutPrefix(name, "/19/1/0/")
		if !ok || rest == "" || strings.Contains(rest, "/") {
			return nil, fmt.Errorf("record %d names %q, not an instance of /19/1/0", i, name)
		}
		for k := range r {
			switch k {
			case "bn", "n", "vd":
			default:
				return nil, fmt.Errorf("record %d: field %q: an Opaque resource takes vd", i, k)
			}
		}
		var vd string
		if err := json.Unmarshal(r["vd"], &vd); err != nil {
			return nil, fmt.Errorf("record %d: vd: %v", i, err)
		}
		v, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(vd, "="))
		if err != nil {
			return nil, fmt.Errorf("record %d: vd is not base64url: %v", i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseMultipleTLV reads an OMA TLV payload written to a Multiple resource:
// exactly one Multiple Resource entry (type 10) with the resource's id,
// holding only Resource Instance entries (type 01).
func parseMultipleTLV(b []byte, id uint16) ([][]byte, error) {
	kind, gotID, val, rest, err := tlvEntry(b)
	if err != nil {
		return nil, err
	}
	if kind != 2 || gotID != id || len(rest) != 0 {
		return nil, fmt.Errorf("TLV: want one Multiple Resource entry with id %d, got type %02b id %d and %d bytes after it", id, kind, gotID, len(rest))
	}
	var out [][]byte
	for len(val) > 0 {
		kind, _, v, r, err := tlvEntry(val)
		if err != nil {
			return nil, err
		}
		if kind != 1 {
			return nil, fmt.Errorf("TLV: a Multiple Resource holds Resource Instances (type 01), got type %02b", kind)
		}
		out = append(out, v)
		val = r
	}
	return out, nil
}

// tlvEntry consumes one TLV entry (OMA LwM2M TLV: type byte, 8 or 16-bit
// identifier, length in the type byte or in 1–3 bytes).
func tlvEntry(b []byte) (kind byte, id uint16, val, rest []byte, err error) {
	if len(b) < 2 {
		return 0, 0, nil, nil, errors.New("TLV: truncated header")
	}
	t := b[0]
	kind = t >> 6
	i := 1
	if t&0x20 != 0 {
		if len(b) < 3 {
			return 0, 0, nil, nil, errors.New("TLV: truncated identifier")
		}
		id, i = binary.BigEndian.Uint16(b[1:3]), 3
	} else {
		id, i = uint16(b[1]), 2
	}
	n := int(t & 7)
	if lt := int(t>>3) & 3; lt > 0 {
		if len(b) < i+lt {
			return 0, 0, nil, nil, errors.New("TLV: truncated length")
		}
		n = 0
		for _, c := range b[i : i+lt] {
			n = n<<8 | int(c)
		}
		i += lt
	}
	if len(b) < i+n {
		return 0, 0, nil, nil, fmt.Errorf("TLV: value of %d bytes, %d left", n, len(b)-i)
	}
	return kind, id, b[i : i+n], b[i+n:], nil
}

// multipleTLV encodes a Multiple Resource entry with id 0 holding one
// Resource Instance entry inst with data (8-bit ids, 16-bit lengths).
func multipleTLV(inst uint8, data []byte) []byte {
	ri := append([]byte{0x50, inst, byte(len(data) >> 8), byte(len(data))}, data...)
	return append([]byte{0x90, 0x00, byte(len(ri) >> 8), byte(len(ri))}, ri...)
}

func codeText(c codes.Code) string { return fmt.Sprintf("%d.%02d", c>>5, c&0x1f) }
