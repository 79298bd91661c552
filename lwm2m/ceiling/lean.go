package ceiling

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/ciphersuite"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// LeanDevice is a load generator's DTLS device: a minimal DTLS 1.2 client
// (PSK, TLS_PSK_WITH_AES_128_CCM_8, extended master secret, no Connection
// ID) written as one straight-line function per step, with no goroutine or
// timer of its own. A pion/dtls client spends about as much CPU on a
// handshake as the server does, so on one 2-core machine the pion devices
// leave the server about one core; these leave it nearly two. The server
// side is untouched: the same pion/dtls handshake, records and CoAP.
//
// It builds and parses messages with pion/dtls's protocol packages and
// encrypts with its CCM cipher suite; what it leaves out (fragmented
// handshake messages, renegotiation, alerts other than as errors) neither
// server sends to it. Lost datagrams are sent again, each time in new
// records (a DTLS record repeated with its sequence number is a replay the
// server must drop, RFC 6347 §4.1.2.6): handshake flights after 1 s, then
// 2, 4, 8 s (RFC 6347 §4.2.4.1); CoAP requests after 2–3 s, doubling, four
// times (RFC 7252 §4.2, ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5,
// MAX_RETRANSMIT 4). Loopback under load can drop them. Requests from the
// server that arrive while it waits (the Observe of /19/0/0 after a
// registration that lists </19/0>) are answered: an Observe with 2.05 and
// an empty opaque value, a write to the downlink channel /19/1 with 2.04,
// anything else with 4.04. A LeanDevice is used by one goroutine at a time.
type LeanDevice struct {
	conn     *net.UDPConn
	identity string
	key      []byte

	seq0, seq1 uint64 // next record sequence number in epoch 0 and 1
	hsSeq      uint16 // next handshake message_seq
	ccm        *ciphersuite.CCM
	mid        uint16
	token      uint32
	buf        []byte
	observed   int // Observe requests answered
	answered   int // requests answered
}

var errLean = errors.New("lean DTLS device")

// DialLean opens the socket of the device with PSK identity identity and
// key key, from source address src (nil: the kernel's choice) to the
// server at addr. It sends nothing: Handshake comes next.
func DialLean(addr, identity string, key []byte, src net.IP) (*LeanDevice, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	var la *net.UDPAddr
	if src != nil {
		la = &net.UDPAddr{IP: src}
	}
	c, err := net.DialUDP("udp", la, ua)
	if err != nil {
		return nil, err
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	return &LeanDevice{conn: c, identity: identity, key: key, buf: make([]byte, 4096),
		mid: binary.BigEndian.Uint16(r[:2]), token: binary.BigEndian.Uint32(r[:])}, nil
}

// Close closes the device's socket; it sends nothing.
func (d *LeanDevice) Close() error { return d.conn.Close() }

// handshakeMsg returns handshake message m with its header (as the
// transcript holds it), the next message_seq.
func (d *LeanDevice) handshakeMsg(m handshake.Message) ([]byte, error) {
	h := &handshake.Handshake{Header: handshake.Header{MessageSequence: d.hsSeq}, Message: m}
	d.hsSeq++
	return h.Marshal()
}

// flight0 sends handshake message msg in an epoch-0 record, a new one for
// each sending.
func (d *LeanDevice) flight0(msg []byte) func() ([]byte, error) {
	return func() ([]byte, error) { return d.record0(protocol.ContentTypeHandshake, msg), nil }
}

func (d *LeanDevice) record0(t protocol.ContentType, content []byte) []byte {
	rec := make([]byte, recordlayer.FixedHeaderSize, recordlayer.FixedHeaderSize+len(content))
	rec[0] = byte(t)
	rec[1], rec[2] = protocol.Version1_2.Major, protocol.Version1_2.Minor
	binary.BigEndian.PutUint64(rec[3:11], d.seq0) // epoch 0 in rec[3:5]
	d.seq0++
	binary.BigEndian.PutUint16(rec[11:13], uint16(len(content)))
	return append(rec, content...)
}

// record1 encrypts content into an epoch-1 record.
func (d *LeanDevice) record1(t protocol.ContentType, content []byte) ([]byte, error) {
	rl := &recordlayer.RecordLayer{Header: recordlayer.Header{ContentType: t, ContentLen: uint16(len(content)),
		Version: protocol.Version1_2, Epoch: 1, SequenceNumber: d.seq1}}
	d.seq1++
	raw, err := rl.Header.Marshal()
	if err != nil {
		return nil, err
	}
	return d.ccm.Encrypt(rl, append(raw, content...))
}

// exchange sends the datagram out makes and returns the records of the
// answer, sending a new one after timeout of silence, then after twice
// that, five sendings in all.
func (d *LeanDevice) exchange(step string, timeout time.Duration, out func() ([]byte, error), want func(recs [][]byte) bool) ([][]byte, error) {
	for try := 0; try < 5; try, timeout = try+1, 2*timeout {
		b, err := out()
		if err != nil {
			return nil, err
		}
		if _, err := d.conn.Write(b); err != nil {
			return nil, err
		}
		_ = d.conn.SetReadDeadline(time.Now().Add(timeout))
		for {
			n, err := d.conn.Read(d.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, err
			}
			recs, err := recordlayer.UnpackDatagram(append([]byte(nil), d.buf[:n]...))
			if err != nil {
				return nil, fmt.Errorf("%w: %v", errLean, err)
			}
			if len(recs) > 0 && protocol.ContentType(recs[0][0]) == protocol.ContentTypeAlert {
				return nil, fmt.Errorf("%w: alert %x from the server", errLean, recs[0][recordlayer.FixedHeaderSize:])
			}
			if want(recs) {
				return recs, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %s: no answer after 5 tries", errLean, step)
}

// handshakeType is the type of the handshake message of an epoch-0
// handshake record that holds at least a whole handshake header, or 0.
func handshakeType(rec []byte) handshake.Type {
	if len(rec) >= recordlayer.FixedHeaderSize+handshake.HeaderLength && protocol.ContentType(rec[0]) == protocol.ContentTypeHandshake &&
		rec[3] == 0 && rec[4] == 0 {
		return handshake.Type(rec[recordlayer.FixedHeaderSize])
	}
	return 0
}

// Handshake runs the DTLS handshake: ClientHello, HelloVerifyRequest,
// ClientHello with the cookie, ServerHello + ServerHelloDone,
// ClientKeyExchange + ChangeCipherSpec + Finished, ChangeCipherSpec +
// Finished.
func (d *LeanDevice) Handshake() error {
	var random handshake.Random
	if err := random.Populate(); err != nil {
		return err
	}
	hello := &handshake.MessageClientHello{
		Version:            protocol.Version1_2,
		Random:             random,
		CipherSuiteIDs:     []uint16{0xC0A8},                       // TLS_PSK_WITH_AES_128_CCM_8
		CompressionMethods: []*protocol.CompressionMethod{{ID: 0}}, // null
		Extensions:         []extension.Extension{&extension.UseExtendedMasterSecret{Supported: true}},
	}
	msg, err := d.handshakeMsg(hello)
	if err != nil {
		return err
	}
	recs, err := d.exchange("ClientHello", time.Second, d.flight0(msg), func(r [][]byte) bool { return handshakeType(r[0]) == handshake.TypeHelloVerifyRequest })
	if err != nil {
		return err
	}
	var hvr handshake.MessageHelloVerifyRequest
	if err := hvr.Unmarshal(recs[0][recordlayer.FixedHeaderSize+handshake.HeaderLength:]); err != nil {
		return fmt.Errorf("%w: HelloVerifyRequest: %v", errLean, err)
	}
	hello.Cookie = hvr.Cookie
	ch, err := d.handshakeMsg(hello)
	if err != nil {
		return err
	}
	transcript := append([]byte(nil), ch...)
	var sh, shd []byte
	_, err = d.exchange("ClientHello with cookie", time.Second, d.flight0(ch), func(r [][]byte) bool {
		for _, x := range r {
			switch handshakeType(x) {
			case handshake.TypeServerHello:
				sh = x[recordlayer.FixedHeaderSize:]
			case handshake.TypeServerHelloDone:
				shd = x[recordlayer.FixedHeaderSize:]
			}
		}
		return sh != nil && shd != nil
	})
	if err != nil {
		return err
	}
	transcript = append(append(transcript, sh...), shd...)
	var hello2 handshake.MessageServerHello
	if err := hello2.Unmarshal(sh[handshake.HeaderLength:]); err != nil {
		return fmt.Errorf("%w: ServerHello: %v", errLean, err)
	}
	if hello2.CipherSuiteID == nil || *hello2.CipherSuiteID != 0xC0A8 {
		return fmt.Errorf("%w: the server chose cipher suite %v", errLean, hello2.CipherSuiteID)
	}
	ems := false
	for _, e := range hello2.Extensions {
		if _, ok := e.(*extension.UseExtendedMasterSecret); ok {
			ems = true
		}
	}

	ckeMsg, err := d.handshakeMsg(&handshake.MessageClientKeyExchange{IdentityHint: []byte(d.identity)})
	if err != nil {
		return err
	}
	transcript = append(transcript, ckeMsg...)
	pms := prf.PSKPreMasterSecret(d.key)
	cr, sr := random.MarshalFixed(), hello2.Random.MarshalFixed()
	var master []byte
	if ems {
		sum := sha256.Sum256(transcript)
		master, err = prf.ExtendedMasterSecret(pms, sum[:], sha256.New)
	} else {
		master, err = prf.MasterSecret(pms, cr[:], sr[:], sha256.New)
	}
	if err != nil {
		return err
	}
	keys, err := prf.GenerateEncryptionKeys(master, cr[:], sr[:], 0, 16, 4, sha256.New)
	if err != nil {
		return err
	}
	if d.ccm, err = ciphersuite.NewCCM(ciphersuite.CCMTagLength8, keys.ClientWriteKey, keys.ClientWriteIV,
		keys.ServerWriteKey, keys.ServerWriteIV); err != nil {
		return err
	}
	verify, err := prf.VerifyDataClient(master, transcript, sha256.New)
	if err != nil {
		return err
	}
	fin := &handshake.Handshake{Header: handshake.Header{MessageSequence: d.hsSeq}, Message: &handshake.MessageFinished{VerifyData: verify}}
	d.hsSeq++
	finMsg, err := fin.Marshal()
	if err != nil {
		return err
	}
	transcript = append(transcript, finMsg...)
	flight := func() ([]byte, error) {
		b := d.record0(protocol.ContentTypeHandshake, ckeMsg)
		b = append(b, d.record0(protocol.ContentTypeChangeCipherSpec, []byte{1})...)
		fin, err := d.record1(protocol.ContentTypeHandshake, finMsg)
		return append(b, fin...), err
	}
	var serverFin []byte
	_, err = d.exchange("Finished", time.Second, flight, func(r [][]byte) bool {
		for _, x := range r {
			if protocol.ContentType(x[0]) == protocol.ContentTypeHandshake && x[3] == 0 && x[4] == 1 {
				pt, err := d.ccm.Decrypt(recordlayer.Header{}, x)
				if err == nil && len(pt) > recordlayer.FixedHeaderSize+handshake.HeaderLength {
					serverFin = pt[recordlayer.FixedHeaderSize+handshake.HeaderLength:]
				}
			}
		}
		return serverFin != nil
	})
	if err != nil {
		return err
	}
	want, err := prf.VerifyDataServer(master, transcript, sha256.New)
	if err != nil {
		return err
	}
	if string(want) != string(serverFin) {
		return fmt.Errorf("%w: the server's Finished does not verify", errLean)
	}
	return nil
}

// do sends a confirmable CoAP request over the session and returns the
// piggy-backed answer's code. Requests from the server (an observe, say)
// are not expected by the benchmark's devices and are skipped.
func (d *LeanDevice) do(code codes.Code, path string, queries []string, cf message.MediaType, payload []byte) (codes.Code, error) {
	d.mid++
	d.token++
	tok := binary.BigEndian.AppendUint32(nil, d.token)
	m := message.Message{Code: code, Token: tok, MessageID: int32(d.mid), Type: message.Confirmable, Payload: payload}
	buf := make([]byte, 256)
	var opts message.Options
	for _, p := range strings.Split(strings.Trim(path, "/"), "/") {
		opts = opts.Add(message.Option{ID: message.URIPath, Value: []byte(p)})
	}
	opts, _, _ = opts.SetContentFormat(buf, cf)
	for _, q := range queries {
		opts = opts.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	m.Options = opts
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return 0, err
	}
	raw := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, raw); err != nil {
		return 0, err
	}
	var got codes.Code
	ackTimeout := 2*time.Second + mrand.N(time.Second)
	_, err = d.exchange("CoAP request", ackTimeout, func() ([]byte, error) {
		return d.record1(protocol.ContentTypeApplicationData, raw)
	}, func(r [][]byte) bool {
		for _, x := range r {
			resp, ok := d.open(x)
			if ok && resp.Type == message.Acknowledgement && resp.MessageID == int32(d.mid) && string(resp.Token) == string(tok) {
				got = resp.Code
				return true
			}
		}
		return false
	})
	return got, err
}

// open decrypts and decodes the CoAP message of an epoch-1 application
// data record, answering it when it is a request from the server.
func (d *LeanDevice) open(x []byte) (*message.Message, bool) {
	if protocol.ContentType(x[0]) != protocol.ContentTypeApplicationData {
		return nil, false
	}
	pt, err := d.ccm.Decrypt(recordlayer.Header{}, x)
	if err != nil {
		return nil, false
	}
	m := &message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(pt[recordlayer.FixedHeaderSize:], m); err != nil {
		return nil, false
	}
	if m.Type == message.Confirmable && m.Code >= codes.GET && m.Code <= codes.IPATCH {
		d.answer(m)
	}
	return m, true
}

// answer acknowledges request m: an Observe registration (GET with Observe
// 0) with 2.05 Content, Observe 1 and an empty opaque value (RFC 7641 §3.2:
// the answer that makes the server an observer); a write (PUT or POST) to
// object 19 instance 1, the downlink channel, with 2.04 Changed; anything
// else with 4.04.
func (d *LeanDevice) answer(m *message.Message) {
	buf := make([]byte, 16)
	resp := message.Message{Type: message.Acknowledgement, MessageID: m.MessageID, Token: m.Token, Code: codes.NotFound}
	path, _ := m.Options.Path()
	switch obs, err := m.Options.GetUint32(message.Observe); {
	case err == nil && obs == 0 && m.Code == codes.GET:
		resp.Code = codes.Content
		resp.Options, _, _ = resp.Options.SetContentFormat(buf, message.AppOctets)
		resp.Options, _, _ = resp.Options.SetObserve(buf[4:], 1)
		d.observed++
	case (m.Code == codes.PUT || m.Code == codes.POST) && (path == "/19/1" || strings.HasPrefix(path, "/19/1/")):
		resp.Code = codes.Changed
	}
	d.answered++
	n, err := coder.DefaultCoder.Size(resp)
	if err != nil {
		return
	}
	raw := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(resp, raw); err != nil {
		return
	}
	if rec, err := d.record1(protocol.ContentTypeApplicationData, raw); err == nil {
		_, _ = d.conn.Write(rec)
	}
}

// AwaitObserve reads for at most wait until the server has observed
// something (after a registration that lists </19/0>, the server observes
// /19/0/0), answering its requests.
func (d *LeanDevice) AwaitObserve(wait time.Duration) error {
	err := d.serve(time.Now().Add(wait), func() bool { return d.observed > 0 })
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no Observe from the server within %v of the registration", errLean, wait)
	}
	return err
}

// Linger stays awake until deadline, answering the server's requests (the
// downlinks a server sends a queue-mode device after it spoke), and
// returns how many it answered.
func (d *LeanDevice) Linger(deadline time.Time) int {
	n := d.answered
	_ = d.serve(deadline, func() bool { return false })
	return d.answered - n
}

// serve reads and answers the server's requests until done says so or
// deadline passes (a timeout error).
func (d *LeanDevice) serve(deadline time.Time, done func() bool) error {
	for !done() {
		_ = d.conn.SetReadDeadline(deadline)
		n, err := d.conn.Read(d.buf)
		if err != nil {
			return err
		}
		recs, err := recordlayer.UnpackDatagram(append([]byte(nil), d.buf[:n]...))
		if err != nil {
			continue
		}
		for _, x := range recs {
			d.open(x)
		}
	}
	return nil
}

// Register registers the device as endpoint ep in queue mode (POST /rd?
// ep=…&lt=86400&lwm2m=1.1&b=U&Q with the objects, a CoRE link format such
// as "</3/0>,</19/1>"), and expects 2.01 Created.
func (d *LeanDevice) Register(ep, objects string) error {
	code, err := d.do(codes.POST, "/rd", []string{"ep=" + ep, "lt=86400", "lwm2m=1.1", "b=U", "Q"},
		message.AppLinkFormat, []byte(objects))
	if err == nil && code != codes.Created {
		err = fmt.Errorf("registration answered %v", code)
	}
	return err
}

// Send sends payload as a confirmable POST /dp (an LwM2M Send, opaque)
// and expects 2.04 Changed.
func (d *LeanDevice) Send(payload []byte) error {
	code, err := d.do(codes.POST, "/dp", nil, message.AppOctets, payload)
	if err == nil && code != codes.Changed {
		err = fmt.Errorf("uplink answered %v", code)
	}
	return err
}

// Observed is the number of Observe requests from the server the device
// answered.
func (d *LeanDevice) Observed() int { return d.observed }
