package transport

import (
	"bytes"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// SEC-2: an answer to a sender without a session is never larger than the
// datagram that caused it; it keeps its code, and the diagnostic is cut.
func TestStrangerAnswerNoLargerThanRequest(t *testing.T) {
	s, _ := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	for _, tc := range []struct {
		name string
		req  message.Message
		want codes.Code
	}{
		// 4 bytes: a NON GET of no path, no token
		{"tiny NON GET", message.Message{Type: message.NonConfirmable, Code: codes.GET, MessageID: 7}, codes.NotFound},
		{"CON GET of nothing", p.request(codes.GET, "/x", nil, cfNone, nil), codes.NotFound},
		{"CON PUT /rd", p.request(codes.PUT, "/rd", nil, cfNone, nil), codes.MethodNotAllowed},
		{"POST /rd without ep", p.request(codes.POST, "/rd", nil, cfNone, nil), codes.BadRequest},
		{"FETCH", p.request(codes.Code(5), "/rd", nil, cfNone, nil), codes.MethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := p.send(tc.req)
			out := p.recvBytes()
			r, err := decodeMsg(out)
			require.NoError(t, err)
			require.Equal(t, tc.want, r.Code, "the code is kept: %s", r.Payload)
			require.Equal(t, tc.req.Token, r.Token)
			require.LessOrEqual(t, len(out), len(in), "answer %x to request %x", out, in)
		})
	}

	// a registered device keeps the full diagnostic
	p.register("fits", "</3/0>")
	req := p.request(codes.GET, "/x", nil, cfNone, nil)
	in := p.send(req)
	var r message.Message
	var out []byte
	for {
		out = p.recvBytes()
		var err error
		r, err = decodeMsg(out)
		require.NoError(t, err)
		if r.Type == message.Acknowledgement && r.MessageID == req.MessageID {
			break
		}
	}
	require.Equal(t, codes.NotFound, r.Code)
	require.Contains(t, string(r.Payload), "no such resource /x")
	require.Greater(t, len(out), len(in), "a registered device gets the whole diagnostic")
}

// SEC-2: the bootstrap server's answers to senders without a session are
// no larger than their requests either.
func TestBootstrapStrangerAnswerNoLargerThanRequest(t *testing.T) {
	st := newBSStore()
	bs := startBootstrap(t, BootstrapConfig{DisableDTLS: true}, st)
	p := newUDPPeer(t, bs.UDPAddr())
	for _, tc := range []struct {
		req  message.Message
		want codes.Code
	}{
		{message.Message{Type: message.NonConfirmable, Code: codes.GET, MessageID: 9}, codes.NotFound},
		{bsRequest(codes.POST, "/bs", "ep=x"), codes.Forbidden},
		{bsRequest(codes.POST, "/bs"), codes.BadRequest},
		{bsRequest(codes.GET, "/bs"), codes.MethodNotAllowed},
	} {
		in, err := encodeMsg(tc.req)
		require.NoError(t, err)
		_, err = p.c.WriteTo(in, p.to)
		require.NoError(t, err)
		buf := make([]byte, 2048)
		require.NoError(t, p.c.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, _, err := p.c.ReadFrom(buf)
		require.NoError(t, err)
		r, err := decodeMsg(buf[:n])
		require.NoError(t, err)
		require.Equal(t, tc.want, r.Code, "%s", r.Payload)
		require.LessOrEqual(t, n, len(in), "answer %x to request %x", buf[:n], in)
	}
}

// SEC-2: all answers to strangers pass one bucket; beyond its rate they
// are dropped and counted.
func TestStrangerAnswerRate(t *testing.T) {
	s, _ := plainServer(t, Config{StrangerAnswerRate: 5})
	p := newRawPeer(t, s.UDPAddr())
	const sent = 30
	for i := range sent {
		p.send(message.Message{Type: message.NonConfirmable, Code: codes.GET, MessageID: int32(1000 + i), Token: []byte{byte(i)}})
	}
	got := 0
	buf := make([]byte, 2048)
	for {
		require.NoError(t, p.conn.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
		if _, err := p.conn.Read(buf); err != nil {
			break
		}
		got++
	}
	// 5 at once, and about 5 a second after that
	require.GreaterOrEqual(t, got, 5)
	require.Less(t, got, 15, "answers beyond the rate are dropped")
	require.Eventually(t, func() bool { return s.StrangerAnswersDropped() >= uint64(sent-got) }, 5*time.Second, 10*time.Millisecond)
}

func TestAnswerGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newAnswerGate(10)
		for range 10 {
			require.True(t, g.allow())
		}
		require.False(t, g.allow(), "the burst is spent")
		require.EqualValues(t, 1, g.dropped.Load())
		time.Sleep(100 * time.Millisecond)
		require.True(t, g.allow(), "one token a tenth of a second")
		require.False(t, g.allow())
		require.EqualValues(t, 2, g.dropped.Load())
	})
}

func TestFitAnswer(t *testing.T) {
	r := errResp(codes.NotFound, "no such résumé")
	addUint(r, message.MaxAge, 60)
	r.Token = []byte{1, 2}
	whole, err := encodeMsg(*r)
	require.NoError(t, err)
	for n := len(whole); n >= 6; n-- {
		m := *r
		fitAnswer(&m, n)
		b, err := encodeMsg(m)
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), n)
		require.Equal(t, codes.NotFound, m.Code)
		require.Equal(t, r.Token, m.Token)
		require.True(t, utf8.Valid(m.Payload), "valid UTF-8")
	}
}

// SEC-2: forged Bootstrap-Requests for one NoSec endpoint from many
// addresses hold one session, not one per address.
func TestBootstrapOneSessionPerEndpoint(t *testing.T) {
	st := newBSStore()
	st.done = make(chan string, 64) // each replaced session reports its end
	st.set("nosec", BootstrapInfo{Security: SecurityNone, Account: ServerAccount{URI: "coap://127.0.0.1:5683", Security: SecurityNone}})
	bs := startBootstrap(t, BootstrapConfig{DisableDTLS: true}, st)
	var last *udpPeer
	for range 20 {
		p := newUDPPeer(t, bs.UDPAddr())
		p.send(bsRequest(codes.POST, "/bs", "ep=nosec"))
		r := p.recv()
		require.Equal(t, codes.Changed, r.Code, "%s", r.Payload)
		last = p
	}
	require.Equal(t, 1, bs.Sessions(), "the newest request's session only")
	// the session left is the newest one: it bootstraps that address
	del := last.recv()
	require.Equal(t, codes.DELETE, del.Code)
}

// SEC-2: plain CoAP sessions have their own cap, a quarter of
// MaxSessions by default: filling it leaves room for DTLS devices.
func TestBootstrapPlainCapLeavesDTLS(t *testing.T) {
	const dtlsEP = "868333030000077"
	st := newBSStore()
	st.set(dtlsEP, BootstrapInfo{Security: SecurityPSK, Key: bsKey, Account: ServerAccount{URI: "coaps://127.0.0.1:5684", Security: SecurityPSK, Identity: dtlsEP, Key: testKey}})
	const n = 8
	for i := range n {
		st.set(fmt.Sprintf("plain%d", i), BootstrapInfo{Security: SecurityNone, Account: ServerAccount{URI: "coap://127.0.0.1:5683", Security: SecurityNone}})
	}
	bs := startBootstrap(t, BootstrapConfig{MaxSessions: n}, st)
	accepted, refused := 0, 0
	for i := range n {
		p := newUDPPeer(t, bs.UDPAddr())
		p.send(bsRequest(codes.POST, "/bs", fmt.Sprintf("ep=plain%d", i)))
		switch r := p.recv(); r.Code {
		case codes.Changed:
			accepted++
		case codes.ServiceUnavailable:
			refused++
			age, ok := optUint(&r, message.MaxAge)
			require.True(t, ok && age > 0, "Max-Age tells when to try again")
		default:
			t.Fatalf("answer %s: %s", codeString(r.Code), r.Payload)
		}
	}

	c := newClient(t, ClientConfig{Server: bs.DTLSAddr().String(), Endpoint: dtlsEP, Key: bsKey})
	require.NoError(t, c.Connect(ctxT(t)))
	_, err := c.Bootstrap(ctxT(t))
	require.NoError(t, err, "a DTLS device bootstraps while the plain share is full")
	require.NoError(t, st.wait(t, dtlsEP))
	require.Equal(t, n/4, accepted, "a quarter of MaxSessions over plain CoAP")
	require.Equal(t, n-n/4, refused)
}

// SEC-2: the bytes of file blocks sent to senders without a session are
// budgeted per source IP and in all; a block beyond gets 4.29 with
// Max-Age (no larger than the request), and a registered device is not
// held to the budgets.
func TestStrangerDownloadBudget(t *testing.T) {
	const name = "0b9e7c5a3f1d4e2b8a6c4e2f0d1b3a59"
	data := bytes.Repeat([]byte("firmware"), 1024) // 8 KiB: 8 blocks of 1,024
	s, _ := plainServer(t, Config{Files: files{name: {Data: bytes.NewReader(data), Size: int64(len(data))}},
		StrangerDownloadRatePerIP: 2048, StrangerDownloadRate: 4096})
	get := func(p *rawPeer, num uint32) (message.Message, int, int) {
		t.Helper()
		m := p.request(codes.GET, "/fw/"+name, nil, cfNone, nil)
		addUint(&m, message.Block2, blockOpt{num: num, szx: 6}.value())
		in := p.send(m)
		out := p.recvBytes()
		r, err := decodeMsg(out)
		require.NoError(t, err)
		return r, len(in), len(out)
	}
	a := newRawPeerFrom(t, "127.0.0.2:0", s.UDPAddr())
	for num := range uint32(2) {
		r, _, _ := get(a, num)
		require.Equal(t, codes.Content, r.Code, "block %d within the source's budget: %s", num, r.Payload)
	}
	r, in, out := get(a, 2)
	require.Equal(t, codes.TooManyRequests, r.Code, "the source's budget (2,048 bytes) is spent")
	age, ok := optUint(&r, message.MaxAge)
	require.True(t, ok && age >= 1, "Max-Age says when to ask again")
	require.LessOrEqual(t, out, in)

	b := newRawPeerFrom(t, "127.0.0.3:0", s.UDPAddr())
	for num := range uint32(2) {
		r, _, _ := get(b, num)
		require.Equal(t, codes.Content, r.Code, "another IP has its own budget: block %d: %s", num, r.Payload)
	}
	c := newRawPeerFrom(t, "127.0.0.4:0", s.UDPAddr())
	r, _, _ = get(c, 0)
	require.Equal(t, codes.TooManyRequests, r.Code, "the global budget (4,096 bytes) is spent")

	dev := newRawPeerFrom(t, "127.0.0.2:0", s.UDPAddr())
	dev.register("fwdev", "</5/0>")
	for num := range uint32(8) {
		m := dev.request(codes.GET, "/fw/"+name, nil, cfNone, nil)
		addUint(&m, message.Block2, blockOpt{num: num, szx: 6}.value())
		r := dev.roundTrip(m)
		require.Equal(t, codes.Content, r.Code, "a registered device is not budgeted: block %d: %s", num, r.Payload)
	}
}
