package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
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

// leanDevice is the load generator's device: a minimal DTLS 1.2 client
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
// server sends to it. Lost datagrams are sent again after a second, five
// times at most: loopback under load can drop them.
type leanDevice struct {
	conn     *net.UDPConn
	identity string
	key      []byte

	seq0, seq1 uint64 // next record sequence number in epoch 0 and 1
	hsSeq      uint16 // next handshake message_seq
	ccm        *ciphersuite.CCM
	mid        uint16
	token      uint32
	buf        []byte
}

var errLean = errors.New("lean DTLS device")

func dialLean(addr, identity string, key []byte) (*leanDevice, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, err
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	return &leanDevice{conn: c, identity: identity, key: key, buf: make([]byte, 4096),
		mid: binary.BigEndian.Uint16(r[:2]), token: binary.BigEndian.Uint32(r[:])}, nil
}

func (d *leanDevice) Close() error { return d.conn.Close() }

// handshakeRecord returns the epoch-0 record of handshake message m and the
// handshake message itself (header and body, as the transcript holds it).
func (d *leanDevice) handshakeRecord(m handshake.Message) (rec, msg []byte, err error) {
	h := &handshake.Handshake{Header: handshake.Header{MessageSequence: d.hsSeq}, Message: m}
	d.hsSeq++
	if msg, err = h.Marshal(); err != nil {
		return nil, nil, err
	}
	rec = d.record0(protocol.ContentTypeHandshake, msg)
	return rec, msg, nil
}

func (d *leanDevice) record0(t protocol.ContentType, content []byte) []byte {
	rec := make([]byte, recordlayer.FixedHeaderSize, recordlayer.FixedHeaderSize+len(content))
	rec[0] = byte(t)
	rec[1], rec[2] = protocol.Version1_2.Major, protocol.Version1_2.Minor
	binary.BigEndian.PutUint64(rec[3:11], d.seq0) // epoch 0 in rec[3:5]
	d.seq0++
	binary.BigEndian.PutUint16(rec[11:13], uint16(len(content)))
	return append(rec, content...)
}

// record1 encrypts content into an epoch-1 record.
func (d *leanDevice) record1(t protocol.ContentType, content []byte) ([]byte, error) {
	rl := &recordlayer.RecordLayer{Header: recordlayer.Header{ContentType: t, ContentLen: uint16(len(content)),
		Version: protocol.Version1_2, Epoch: 1, SequenceNumber: d.seq1}}
	d.seq1++
	raw, err := rl.Header.Marshal()
	if err != nil {
		return nil, err
	}
	return d.ccm.Encrypt(rl, append(raw, content...))
}

// exchange sends out and returns the records of the answer, sending out
// again after a second of silence.
func (d *leanDevice) exchange(step string, out []byte, want func(recs [][]byte) bool) ([][]byte, error) {
	for try := 0; try < 5; try++ {
		if _, err := d.conn.Write(out); err != nil {
			return nil, err
		}
		_ = d.conn.SetReadDeadline(time.Now().Add(time.Second))
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
func (d *leanDevice) Handshake() error {
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
	rec, _, err := d.handshakeRecord(hello)
	if err != nil {
		return err
	}
	recs, err := d.exchange("ClientHello", rec, func(r [][]byte) bool { return handshakeType(r[0]) == handshake.TypeHelloVerifyRequest })
	if err != nil {
		return err
	}
	var hvr handshake.MessageHelloVerifyRequest
	if err := hvr.Unmarshal(recs[0][recordlayer.FixedHeaderSize+handshake.HeaderLength:]); err != nil {
		return fmt.Errorf("%w: HelloVerifyRequest: %v", errLean, err)
	}
	hello.Cookie = hvr.Cookie
	rec, ch, err := d.handshakeRecord(hello)
	if err != nil {
		return err
	}
	transcript := append([]byte(nil), ch...)
	var sh, shd []byte
	_, err = d.exchange("ClientHello with cookie", rec, func(r [][]byte) bool {
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

	cke, ckeMsg, err := d.handshakeRecord(&handshake.MessageClientKeyExchange{IdentityHint: []byte(d.identity)})
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
	finRec, err := d.record1(protocol.ContentTypeHandshake, finMsg)
	if err != nil {
		return err
	}
	flight := append(append(cke, d.record0(protocol.ContentTypeChangeCipherSpec, []byte{1})...), finRec...)
	var serverFin []byte
	_, err = d.exchange("Finished", flight, func(r [][]byte) bool {
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

// Do sends a confirmable CoAP request over the session and returns the
// piggy-backed answer's code. Requests from the server (an observe, say)
// are not expected by the benchmark's devices and are skipped.
func (d *leanDevice) Do(code codes.Code, path string, queries []string, cf message.MediaType, payload []byte) (codes.Code, error) {
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
	rec, err := d.record1(protocol.ContentTypeApplicationData, raw)
	if err != nil {
		return 0, err
	}
	var got codes.Code
	_, err = d.exchange("CoAP request", rec, func(r [][]byte) bool {
		for _, x := range r {
			if protocol.ContentType(x[0]) != protocol.ContentTypeApplicationData {
				continue
			}
			pt, err := d.ccm.Decrypt(recordlayer.Header{}, x)
			if err != nil {
				continue
			}
			resp := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(pt[recordlayer.FixedHeaderSize:], &resp); err != nil {
				continue
			}
			if resp.Type == message.Acknowledgement && resp.MessageID == int32(d.mid) && string(resp.Token) == string(tok) {
				got = resp.Code
				return true
			}
		}
		return false
	})
	return got, err
}
