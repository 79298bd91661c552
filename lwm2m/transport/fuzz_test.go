package transport

import (
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// fuzzSeeds are datagrams of the table tests: registrations, updates,
// TUP, Send, notifications, pings and garbage.
func fuzzSeeds(f *testing.F) {
	mk := func(typ message.Type, code codes.Code, path string, qs []string, cf lwm2m.Format, payload string, obs int) []byte {
		m := message.Message{Type: typ, Code: code, MessageID: 7, Token: []byte{1, 2, 3}, Payload: []byte(payload)}
		addPath(&m, message.URIPath, path)
		for _, q := range qs {
			addQuery(&m, q)
		}
		if obs >= 0 {
			addUint(&m, message.Observe, uint32(obs))
		}
		setContentFormat(&m, cf)
		b, err := encodeMsg(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(mk(message.Confirmable, codes.POST, "/rd", []string{"ep=urn:imei:868333030000001", "lt=300", "lwm2m=1.1", "b=U", "Q"}, cfLink, "</1/0>,</3/0>,</19/0>", -1))
	f.Add(mk(message.Confirmable, codes.POST, "/rd", []string{"ep=x", "lwm2m=1.2"}, cfLink, "</3/0>", -1))
	f.Add(mk(message.Confirmable, codes.POST, "/rd", []string{"ep=x", "lt=-1"}, cfLink, "<", -1))
	f.Add(mk(message.Confirmable, codes.POST, "/rd/abc", []string{"lt=60"}, cfNone, "", -1))
	f.Add(mk(message.Confirmable, codes.DELETE, "/rd/abc", nil, cfNone, "", -1))
	f.Add(mk(message.NonConfirmable, codes.POST, "/t/r", []string{"ep=868333030000001"}, cfNone, "", -1))
	f.Add(mk(message.Confirmable, codes.POST, "/dp", nil, lwm2m.FormatTLV, "\xc3\x00abc", -1))
	f.Add(mk(message.NonConfirmable, codes.Content, "", nil, lwm2m.FormatTLV, "\x43\x00\xaa\xbb\xcc", 5))
	f.Add(mk(message.Confirmable, codes.Content, "", nil, cfOpaque, "data", 6))
	blk := message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: 8, Token: []byte{4}, Payload: []byte("0123456789abcdef")}
	addPath(&blk, message.URIPath, "/dp")
	addUint(&blk, message.Block1, blockOpt{num: 0, more: true, szx: 0}.value())
	b1, _ := encodeMsg(blk)
	f.Add(b1)
	get := message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: 9, Token: []byte{5}}
	addPath(&get, message.URIPath, "/19/0/0")
	addUint(&get, message.Block2, blockOpt{num: 3, szx: 2}.value())
	b2, _ := encodeMsg(get)
	f.Add(b2)
	f.Add([]byte{0x40, 0x00, 0x12, 0x34})
	f.Add([]byte{0x60, 0x00, 0x12, 0x34})
	f.Add([]byte{0x70, 0x00, 0x12, 0x34})
	f.Add([]byte{0xff})
	f.Add([]byte{})
}

var fuzzObjects = lwm2m.NewBuiltinObjects()

// FuzzServerDatagram feeds arbitrary datagrams to a server session: the
// server must never panic, must answer every confirmable request, and
// must reject a confirmable message of a reserved code class.
func FuzzServerDatagram(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := New(Config{DisableDTLS: true, Model: fuzzObjects, Policy: plainOnly}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		sess := s.newSession(false)
		sess.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
		var mu sync.Mutex
		answers := 0
		sess.memTx = func(out []byte) error { mu.Lock(); answers++; mu.Unlock(); return nil }
		s.udpPeers[sess.addr.String()] = sess
		sess.ex.receive(b)
		sess.ex.receive(b) // and its duplicate
		mu.Lock()
		n := answers
		mu.Unlock()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		m, err := decodeMsg(b)
		if err == nil && m.Type == message.Confirmable && isRequest(m.Code) && n == 0 {
			t.Fatalf("confirmable request %v got no answer", m.Code)
		}
		if err == nil && m.Type == message.Confirmable && reservedClass(m.Code) && n == 0 {
			t.Fatalf("confirmable message with the reserved code %v got no Reset (RFC 7252 §4.2)", m.Code)
		}
		if h, ok, ferr := checkFormat(b); ok && h.version == 1 && h.typ == message.Confirmable && ferr != nil && n == 0 {
			t.Fatalf("malformed confirmable message (%v) got no Reset", ferr)
		}
	})
}

// FuzzClientDatagram feeds arbitrary datagrams to a device client: it
// must never panic, and must acknowledge or reject (Reset) every
// confirmable message, well-formed or not (RFC 7252 §4.2).
func FuzzClientDatagram(f *testing.F) {
	fuzzSeeds(f)
	// Writes of the Multiple resource /19/1/0 and its instance (issue 20.1).
	for _, w := range []struct {
		path string
		cf   lwm2m.Format
		body []byte
	}{
		{"/19/1/0", lwm2m.FormatTLV, []byte{0x86, 0x00, 0x41, 0x00, 0x01, 0x41, 0x01, 0x05}},
		{"/19/1/0", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/19/1/0/","n":"0","vd":"yv4"}]`)},
		{"/19/1/0", lwm2m.FormatOpaque, []byte{1}},
		{"/19/1/0/0", lwm2m.FormatOpaque, []byte{1}},
		{"/19/1/0/0", lwm2m.FormatTLV, []byte{0x41, 0x00, 0x01}},
	} {
		m := newRequest(codes.PUT, w.path)
		m.Type, m.MessageID, m.Token = message.Confirmable, 7, []byte{1}
		setContentFormat(m, w.cf)
		m.Payload = w.body
		b, err := encodeMsg(*m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := NewClient(ClientConfig{Server: "127.0.0.1:5683", Endpoint: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfOpaque}, nil }})
		c.Handle("/19/1/0", Resource{Write: func(Content) error { return nil }})
		c.Handle("/3/0/4", Resource{Execute: func([]byte) error { return nil }})
		c.Handle("/3303", Resource{Create: func(Content) (uint16, error) { return 1, nil }})
		var mu sync.Mutex
		var answers [][]byte
		c.attach(func(out []byte) error { mu.Lock(); answers = append(answers, out); mu.Unlock(); return nil })
		c.ex.receive(b)
		c.ex.receive(b) // and its duplicate
		c.ex.close()
		h, ok, _ := checkFormat(b)
		if !ok || h.version != 1 || h.typ != message.Confirmable {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if len(answers) == 0 {
			t.Fatalf("confirmable message %v (MID %d) got neither ACK nor Reset", h.code, h.mid)
		}
		for _, a := range answers {
			m, err := decodeMsg(a)
			if err != nil || (m.Type != message.Acknowledgement && m.Type != message.Reset) || uint16(m.MessageID) != h.mid {
				t.Fatalf("confirmable message %v (MID %d) answered with % x (%v): want an ACK or Reset of its MID", h.code, h.mid, a, err)
			}
		}
	})
}

// FuzzDTLSRouter feeds arbitrary datagrams from two addresses to the DTLS
// router: it must never panic, and nothing without a cookie the router
// made opens a connection (SEC-2).
func FuzzDTLSRouter(f *testing.F) {
	hello := make([]byte, 40)
	hello[0], hello[13] = ctHandshake, hsClientHello
	f.Add(hello, []byte{ctCID, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 4, 1, 2, 3, 4})
	f.Add([]byte{ctAppData}, []byte{})
	f.Add([]byte{}, hello)
	f.Add(testHello{}.bytes(), testHello{msgSeq: 1, recSeq: 1, cookie: make([]byte, cookieLen)}.bytes())
	f.Fuzz(func(t *testing.T, a, b []byte) {
		m := &dtlsMux{cidLen: 8, accept: make(chan *vconn, 4), done: make(chan struct{}),
			byAddr: map[string]*vconn{}, byCID: map[string]*vconn{}, resume: make(chan resumeItem, 4),
			parked: map[*parkedConn]struct{}{}, parkedByAddr: map[string]*parkedConn{}, parkedByCID: map[string]*parkedConn{},
			maxPending: 4, agg: newLogAgg(slog.New(slog.DiscardHandler), time.Second), wr: func([]byte, *net.UDPAddr) {}}
		a1 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
		a2 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
		for _, d := range []struct {
			b    []byte
			addr *net.UDPAddr
		}{{a, a1}, {b, a2}, {a, a2}, {b, a1}} {
			if len(d.b) == 0 {
				continue
			}
			before := len(m.accept)
			m.route(append([]byte(nil), d.b...), d.addr)
			if len(m.accept) > before {
				t.Fatalf("a datagram without the router's cookie opened a connection: % x", d.b)
			}
		}
	})
}
