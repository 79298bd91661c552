package lwm2mtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Object 5 (Firmware Update) states (/5/0/3) and the Update Results
// (/5/0/5) the Device uses, as OMA LwM2M 1.0/1.1 Appendix E.6 names them.
const (
	StateIdle        = 0
	StateDownloading = 1
	StateDownloaded  = 2
	StateUpdating    = 3

	ResultInitial        = 0
	ResultSuccess        = 1
	ResultConnectionLost = 4
	ResultInvalidURI     = 7
	ResultUpdateFailed   = 8
)

// Flash is a Device's non-volatile memory: the firmware it runs (/3/0/3),
// object 5's State and Update Result, the Package URI and the part of the
// package downloaded so far. It survives the Device's reboots and deaths:
// a new Device on the same Flash is the same module powered on again.
type Flash struct {
	mu      sync.Mutex
	version string
	state   int
	result  int
	uri     string
	pkg     []byte
	etag    []byte
}

// NewFlash returns the Flash of a device running firmware version, with
// object 5 Idle.
func NewFlash(version string) *Flash { return &Flash{version: version} }

// Firmware returns the running version (/3/0/3), State (/5/0/3) and Update
// Result (/5/0/5).
func (f *Flash) Firmware() (version string, state, result int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version, f.state, f.result
}

// Stored returns how many bytes of the package are downloaded.
func (f *Flash) Stored() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pkg)
}

func (f *Flash) set(state, result int) {
	f.mu.Lock()
	f.state, f.result = state, result
	f.mu.Unlock()
}

// firmware answers requests to objects 3 and 5: reads (and observes) of
// /3/0/3, /5/0/3 and /5/0/5 as text, the Package URI write (/5/0/1, text)
// and Execute of /5/0/2. then runs after the answer left: the download,
// or the update and reboot.
func (d *Device) firmware(m *message.Message, path string, cf int) (*message.Message, func()) {
	f := d.cfg.Flash
	if f == nil {
		return errAnswer(codes.NotFound, "%s not served", path), nil
	}
	version, state, result := f.Firmware()
	switch {
	case m.Code == codes.GET:
		var v string
		switch path {
		case "/3/0/3":
			v = version
		case "/5/0/3":
			v = strconv.Itoa(state)
		case "/5/0/5":
			v = strconv.Itoa(result)
		default:
			return errAnswer(codes.NotFound, "%s not served", path), nil
		}
		if a, err := m.Options.GetUint32(message.Accept); err == nil && a != uint32(message.TextPlain) {
			return errAnswer(codes.NotAcceptable, "%s is served as text/plain (0), not %d", path, a), nil
		}
		resp := &message.Message{Code: codes.Content, Payload: []byte(v)}
		d.observe(m, path, resp)
		b := make([]byte, 4)
		resp.Options, _, _ = resp.Options.SetContentFormat(b, message.TextPlain)
		return resp, nil
	case m.Code == codes.PUT && path == "/5/0/1":
		return d.writePackageURI(m, cf, state)
	case m.Code == codes.POST && path == "/5/0/2":
		switch {
		case d.server == nil:
			return errAnswer(codes.BadRequest, "this device cannot reboot"), nil
		case state != StateDownloaded:
			return errAnswer(codes.MethodNotAllowed, "update in State %d; only Downloaded (2) updates", state), nil
		}
		f.set(StateUpdating, ResultInitial)
		return &message.Message{Code: codes.Changed}, d.update
	}
	return errAnswer(codes.MethodNotAllowed, "%v of %s not allowed", m.Code, path), nil
}

// writePackageURI takes the Package URI (OMA object 5 resource 1, a
// String): an empty one resets object 5 to Idle; a coap or coaps URI in
// State Idle starts the download from a socket of its own; another URI
// gets Update Result 7 (Invalid URI).
func (d *Device) writePackageURI(m *message.Message, cf, state int) (*message.Message, func()) {
	f := d.cfg.Flash
	if cf != int(message.TextPlain) {
		return errAnswer(codes.UnsupportedMediaType, "/5/0/1 is a String: text/plain (0), not %d", cf), nil
	}
	uri := string(m.Payload)
	if uri == "" {
		f.mu.Lock()
		f.state, f.result, f.uri, f.pkg, f.etag = StateIdle, ResultInitial, "", nil, nil
		f.mu.Unlock()
		return &message.Message{Code: codes.Changed}, d.notifyFirmware
	}
	switch {
	case d.cfg.Dial == nil:
		return errAnswer(codes.BadRequest, "this device cannot download"), nil
	case state != StateIdle:
		return errAnswer(codes.BadRequest, "Package URI written in State %d; a download starts in Idle (0)", state), nil
	}
	if u, err := url.Parse(uri); err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Host == "" || u.Path == "" {
		f.set(StateIdle, ResultInvalidURI)
		return &message.Message{Code: codes.Changed}, d.notifyFirmware
	}
	f.mu.Lock()
	f.state, f.result, f.uri, f.pkg, f.etag = StateDownloading, ResultInitial, uri, nil, nil
	f.mu.Unlock()
	return &message.Message{Code: codes.Changed}, func() { d.notifyFirmware(); d.download() }
}

// notifyFirmware notifies State and Update Result to their observers.
func (d *Device) notifyFirmware() {
	_, state, result := d.cfg.Flash.Firmware()
	d.notify("/5/0/3", message.TextPlain, []byte(strconv.Itoa(state)))
	d.notify("/5/0/5", message.TextPlain, []byte(strconv.Itoa(result)))
}

// resumeDownload continues, after a registration, a download the Flash
// shows in progress (the device rebooted or lost power during it).
func (d *Device) resumeDownload() {
	if d.cfg.Flash == nil || d.cfg.Dial == nil {
		return
	}
	if _, state, _ := d.cfg.Flash.Firmware(); state == StateDownloading {
		d.wg.Go(d.download)
	}
}

// update installs the downloaded package and reboots: the version the
// package names runs (Update Result 1), or the update fails (8); either
// way object 5 is Idle again and the device registers anew.
func (d *Device) update() {
	f := d.cfg.Flash
	f.mu.Lock()
	v := firstLine(f.pkg)
	if d.cfg.PackageVersion != nil {
		v = d.cfg.PackageVersion(f.pkg)
	}
	f.state, f.result = StateIdle, ResultUpdateFailed
	if v != "" {
		f.version, f.result = v, ResultSuccess
	}
	f.uri, f.pkg, f.etag = "", nil, nil
	f.mu.Unlock()
	ctx, cancel := d.context(30 * time.Second)
	defer cancel()
	_ = d.Reboot(ctx) // a failed reboot leaves the device silent, as a module would be
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return strings.TrimSpace(string(line))
}

// download fetches the package named by the Flash's Package URI, from
// where the Flash's copy ends, on a new socket of its own (a new DTLS
// session for coaps), with Block2 GETs (RFC 7959 §2.4), then sets State
// Downloaded. A lost connection sets State Idle and Update Result 4. A
// package whose ETag changed since the download began starts again.
func (d *Device) download() {
	f := d.cfg.Flash
	f.mu.Lock()
	uri, off := f.uri, len(f.pkg)
	f.mu.Unlock()
	fail := func() {
		if !d.killed() { // a dead device writes no flash and says nothing
			f.set(StateIdle, ResultConnectionLost)
			d.notifyFirmware()
		}
	}
	u, err := url.Parse(uri)
	if err != nil {
		fail()
		return
	}
	ctx, cancel := d.context(2 * time.Minute)
	defer cancel()
	conn, err := d.cfg.Dial(ctx, u.Scheme, u.Host)
	if err != nil {
		fail()
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	size := d.cfg.BlockSize
	szx, _ := blockSZX(size)
	for {
		num := off / size
		resp, err := getBlock(conn, u.Path, num, szx)
		if err != nil {
			fail()
			return
		}
		etag, _ := resp.Options.GetBytes(message.ETag)
		v, err := resp.Options.GetUint32(message.Block2)
		if resp.Code != codes.Content || err != nil || int(v>>4) != num || v&7 != uint32(szx) {
			fail() // a refusal, or a block other than the one asked for
			return
		}
		f.mu.Lock()
		if f.etag != nil && !bytes.Equal(f.etag, etag) {
			f.pkg, f.etag = nil, nil // another package at this URI: start again
			f.mu.Unlock()
			off = 0
			continue
		}
		f.pkg = append(f.pkg[:num*size], resp.Payload...)
		f.etag = append([]byte(nil), etag...)
		off = len(f.pkg)
		f.mu.Unlock()
		if d.cfg.OnBlock != nil {
			if err := d.cfg.OnBlock(num); errors.Is(err, ErrPowerCut) {
				d.Kill()
				return
			} else if err != nil {
				fail()
				return
			}
		}
		if v&8 == 0 {
			break
		}
	}
	if d.killed() {
		return
	}
	f.set(StateDownloaded, ResultInitial)
	d.notifyFirmware()
}

// blockSZX returns the Block option's size exponent for size (RFC 7959
// §2.2: 2^(SZX+4) bytes, SZX 0..6).
func blockSZX(size int) (uint32, bool) {
	for szx := uint32(0); szx <= 6; szx++ {
		if 1<<(szx+4) == size {
			return szx, true
		}
	}
	return 0, false
}

// getBlock sends GET path with Block2 (num, szx) as a CON request on conn,
// which only it reads, and returns the response: piggybacked, or separate
// after an empty ACK (acknowledged in turn). It retransmits as RFC 7252
// §4.2 does, with a 1 s first timeout doubling and 4 retransmissions.
func getBlock(conn net.Conn, path string, num int, szx uint32) (*message.Message, error) {
	var id [2]byte
	_, _ = rand.Read(id[:])
	tok := make([]byte, 4)
	_, _ = rand.Read(tok)
	req := &message.Message{Code: codes.GET, Type: message.Confirmable, Token: tok, MessageID: int32(id[0])<<8 | int32(id[1])}
	buf := make([]byte, 256)
	var err error
	if req.Options, _, err = req.Options.SetPath(buf, path); err != nil {
		return nil, fmt.Errorf("lwm2mtest: download path %q: %w", path, err)
	}
	req.Options, _, _ = req.Options.SetUint32(make([]byte, 4), message.Block2, uint32(num)<<4|szx)
	out, err := encode(req)
	if err != nil {
		return nil, err
	}
	in := make([]byte, 2048)
	timeout := time.Second
	acked := false
	for try := 0; try <= 4; try++ {
		if !acked {
			if _, err := conn.Write(out); err != nil {
				return nil, err
			}
		}
		deadline := time.Now().Add(timeout)
		timeout *= 2
		for {
			_ = conn.SetReadDeadline(deadline)
			n, err := conn.Read(in)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, err
			}
			m := &message.Message{Options: make(message.Options, 0, 8)}
			if _, err := coder.DefaultCoder.Decode(append([]byte(nil), in[:n]...), m); err != nil {
				continue
			}
			switch {
			case m.Type == message.Acknowledgement && m.MessageID == req.MessageID && m.Code == codes.Empty:
				acked = true // the answer follows as a separate response
			case m.Type == message.Acknowledgement && m.MessageID == req.MessageID:
				return m, nil
			case m.Type != message.Acknowledgement && string(m.Token) == string(tok) && m.Code >= 64:
				if m.Type == message.Confirmable {
					if b, err := encode(&message.Message{Type: message.Acknowledgement, MessageID: m.MessageID}); err == nil {
						_, _ = conn.Write(b)
					}
				}
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("lwm2mtest: GET %s block %d: no answer", path, num)
}
