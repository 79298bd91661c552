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
	"strings"
	"sync"
	"sync/atomic"
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
	// `</19/0>,</19/1>` otherwise.
	Links string
	// Lifetime is the lt= parameter in seconds; 0 means 86400.
	Lifetime int
}

// Request is one request the Device answered.
type Request struct {
	Code   codes.Code // GET, PUT, POST, DELETE
	Path   string     // "/19/1/0/0"
	Format int        // Content-Format, -1 when absent
	Answer codes.Code // the code the device answered
}

// String returns "PUT /19/1/0/0 cf=42 → 2.04".
func (r Request) String() string {
	return fmt.Sprintf("%v %s cf=%d → %s", r.Code, r.Path, r.Format, codeText(r.Answer))
}

// Device is a small LwM2M device for conformance tests, written on
// go-coap's message codec alone (not on lwm2m.Client), so that it checks
// the server against the standard rather than against this module's own
// client. It registers over a connected socket (UDP, or a DTLS net.Conn)
// and answers the server's requests: writes to /19/1/0 by its Stack, GET
// of /19/0/0 (observe) with an empty Multiple resource in TLV, anything
// else with 4.04. Confirmable requests are answered with piggybacked
// ACKs; a retransmitted request gets the same answer again.
type Device struct {
	cfg  DeviceConfig
	conn net.Conn

	mu      sync.Mutex
	reqs    []Request
	data    [][]byte
	replies map[uint16][]byte // message id → the answer sent
	acks    chan *message.Message
	obsTok  []byte
	obsSeq  uint32
	mid     uint16

	closing atomic.Bool
	done    chan struct{}
}

// StartDevice starts a Device on conn, which it owns, and registers it.
// Close stops it.
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
		if !strings.HasPrefix(cfg.Version, "1.0") {
			cfg.Links = `</>;rt="oma.lwm2m";ct="60 110",</19/0>,</19/1>`
		}
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 86400
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	d := &Device{cfg: cfg, conn: conn, replies: map[uint16][]byte{}, acks: make(chan *message.Message, 4),
		mid: binary.BigEndian.Uint16(b[:]), done: make(chan struct{})}
	go d.read()
	if err := d.register(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the device's socket and waits for its reader.
func (d *Device) Close() {
	d.closing.Store(true)
	_ = d.conn.Close()
	<-d.done
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

func (d *Device) nextMID() uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mid++
	return d.mid
}

func (d *Device) send(m *message.Message) error {
	n, err := coder.DefaultCoder.Size(*m)
	if err != nil {
		return err
	}
	buf := make([]byte, n)
	n, err = coder.DefaultCoder.Encode(*m, buf)
	if err != nil {
		return err
	}
	_, err = d.conn.Write(buf[:n])
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
			case <-wait.C:
			case a := <-d.acks:
				if string(a.Token) != string(tok) || a.Code == codes.Empty {
					continue // an empty ACK: the answer follows as CON
				}
				wait.Stop()
				if a.Code != codes.Created {
					return fmt.Errorf("lwm2mtest: register: server answered %s", codeText(a.Code))
				}
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
	d.mu.Lock()
	tok := d.obsTok
	d.obsSeq++
	seq := d.obsSeq
	d.mu.Unlock()
	if tok == nil {
		return errors.New("lwm2mtest: notify: the server does not observe /19/0/0")
	}
	m := &message.Message{Code: codes.Content, Token: tok, Type: message.NonConfirmable, MessageID: int32(d.nextMID()),
		Payload: multipleTLV(0, data)}
	b := make([]byte, 8)
	m.Options, _, _ = m.Options.SetObserve(b, seq)
	m.Options, _, _ = m.Options.SetContentFormat(b[4:], message.AppLwm2mTLV)
	return d.send(m)
}

func (d *Device) read() {
	defer close(d.done)
	buf := make([]byte, 2048)
	strikes := 0
	for {
		n, err := d.conn.Read(buf)
		if err != nil {
			// An ICMP error surfaces once on a connected UDP socket;
			// anything else (closed, end of a DTLS session) is for good.
			var op *net.OpError
			if d.closing.Load() || !errors.As(err, &op) || errors.Is(err, net.ErrClosed) || strikes > 100 {
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
		d.receive(m)
	}
}

func (d *Device) receive(m *message.Message) {
	switch {
	case m.Type == message.Acknowledgement || m.Type == message.Reset:
		select {
		case d.acks <- m:
		default:
		}
		return
	case m.Code >= 64: // a separate response (CON or NON)
		if m.Type == message.Confirmable {
			_ = d.send(&message.Message{Type: message.Acknowledgement, MessageID: m.MessageID})
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
		_, _ = d.conn.Write(again) // RFC 7252 §4.5: the same answer again
		return
	}
	resp := d.answer(m)
	resp.MessageID = m.MessageID
	resp.Token = m.Token
	resp.Type = message.Acknowledgement
	if m.Type == message.NonConfirmable {
		resp.Type = message.NonConfirmable
		resp.MessageID = int32(d.nextMID())
	}
	n, err := coder.DefaultCoder.Size(*resp)
	if err != nil {
		return
	}
	b := make([]byte, n)
	if n, err = coder.DefaultCoder.Encode(*resp, b); err != nil {
		return
	}
	d.mu.Lock()
	d.replies[mid] = b[:n]
	d.mu.Unlock()
	_, _ = d.conn.Write(b[:n])
}

// answer handles one request and records it.
func (d *Device) answer(m *message.Message) *message.Message {
	path, _ := m.Options.Path()
	path = "/" + strings.TrimPrefix(path, "/")
	cf := -1
	if f, err := m.Options.ContentFormat(); err == nil {
		cf = int(f)
	}
	resp, data := d.handle(m, path, cf)
	d.mu.Lock()
	d.reqs = append(d.reqs, Request{Code: m.Code, Path: path, Format: cf, Answer: resp.Code})
	d.data = append(d.data, data...)
	d.mu.Unlock()
	return resp
}

func errAnswer(c codes.Code, format string, args ...any) *message.Message {
	return &message.Message{Code: c, Payload: []byte(fmt.Sprintf(format, args...))}
}

func (d *Device) handle(m *message.Message, path string, cf int) (*message.Message, [][]byte) {
	switch {
	case m.Code == codes.GET && path == "/19/0/0":
		resp := &message.Message{Code: codes.Content, Payload: []byte{0x80, 0x00}} // no instance yet
		b := make([]byte, 8)
		if obs, err := m.Options.Observe(); err == nil && obs == 0 {
			d.mu.Lock()
			d.obsTok = append([]byte(nil), m.Token...)
			d.mu.Unlock()
			resp.Options, _, _ = resp.Options.SetObserve(b, 0)
		}
		resp.Options, _, _ = resp.Options.SetContentFormat(b[4:], message.AppLwm2mTLV)
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
