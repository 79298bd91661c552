package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// exchangeLifetime is how long a received message id is remembered for
// deduplication (RFC 7252 EXCHANGE_LIFETIME with the NB-IoT profile is
// longer; 247 s covers the default profile and we also cap by count).
const exchangeLifetime = 247 * time.Second

// dedupEntries caps the remembered message ids per peer.
const dedupEntries = 32

// exchange is the CoAP message layer for one peer: message ids, tokens,
// retransmission of confirmable messages with our own timers, matching of
// responses, and the deduplication cache. It owns no goroutine: datagrams are
// pushed in with receive by the goroutine that reads the transport, and
// retransmissions run on time.AfterFunc timers.
type exchange struct {
	tx          func([]byte) error
	maxSize     int
	handle      func(req *message.Message) (*message.Message, func()) // answers a request (never nil) and may return work to start after the answer left
	onNotify    func(m *message.Message) notifyResult                 // an unsolicited response (notification)
	onMalformed func(err error)                                       // a datagram that is not well-formed CoAP; may be nil
	onDuplicate func(now time.Time)                                   // a request or notification received again; may be nil
	small       func() bool                                           // the peer has no session: an answer is no larger than its request (reflect.go); may be nil
	sem         chan struct{}                                         // NSTART = 1

	mu      sync.Mutex
	trans   Transmission
	nextMID uint16
	pending map[uint16]*outgoing // our CONs awaiting ACK
	calls   map[string]*call     // token → request awaiting its response
	seen    map[uint16]seenEntry // received message ids
	seenQ   []uint16
	closed  bool

	// Block1 reassembly of one request body at a time (RFC 7959 §2.5).
	b1key  string
	b1body []byte
	b1max  int // the largest body; see maxBlock1Body
}

// maxBlock1Body caps a request body received block by block from a peer
// that has proved who it is (a DTLS session, a registered plain-CoAP
// peer). A peer that has not is held to the maximum message size (SEC-2).
const maxBlock1Body = 1 << 20

// setBlock1Max sets the largest request body received block by block.
func (e *exchange) setBlock1Max(n int) {
	e.mu.Lock()
	e.b1max = n
	e.mu.Unlock()
}

// assembling reports whether a Block1 body is being received.
func (e *exchange) assembling() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.b1key != ""
}

// assemble handles the Block1 option of a request. It returns whole=true
// with m's Payload set to the whole body when m is the last block (or has
// no Block1), and otherwise the answer to send: 2.31 Continue, or 4.08/4.13
// for a block out of order or a body too large.
func (e *exchange) assemble(m *message.Message) (resp *message.Message, whole bool) {
	v, ok := optUint(m, message.Block1)
	if !ok {
		return nil, true
	}
	b, err := parseBlock(v)
	if err != nil {
		return errResp(codes.BadOption, "Block1: %v", err), false
	}
	key := block1Key(m)
	e.mu.Lock()
	defer e.mu.Unlock()
	tooLarge := func() *message.Message {
		e.b1key, e.b1body = "", nil
		r := errResp(codes.RequestEntityTooLarge, "Block1: a body of at most %d bytes is accepted", e.b1max)
		addUint(r, message.Size1, uint32(e.b1max))
		return r
	}
	if size, ok := optUint(m, message.Size1); ok && int64(size) > int64(e.b1max) {
		return tooLarge(), false // the device announced the size (RFC 7959 §4)
	}
	if b.num == 0 {
		e.b1key, e.b1body = key, e.b1body[:0]
	}
	if e.b1key != key || uint32(len(e.b1body)) != b.num*uint32(b.size()) {
		e.b1key, e.b1body = "", nil
		return errResp(codes.RequestEntityIncomplete, "Block1: block %d of %s out of order", b.num, key), false
	}
	if len(e.b1body)+len(m.Payload) > e.b1max {
		return tooLarge(), false
	}
	e.b1body = append(e.b1body, m.Payload...)
	if b.more {
		r := &message.Message{Code: codes.Continue}
		addUint(r, message.Block1, b.value())
		return r, false
	}
	m.Payload = append([]byte(nil), e.b1body...)
	e.b1key, e.b1body = "", nil
	return nil, true
}

// block1Key names the request a Block1 body is assembled for.
func block1Key(m *message.Message) string { return codeString(m.Code) + " " + msgPath(m) }

// doBlocks sends a request whose payload is larger than 1024 bytes in
// Block1 blocks of 512 bytes (RFC 7959) and returns the final answer; a
// smaller one goes out whole.
func (e *exchange) doBlocks(ctx context.Context, req *message.Message) (*message.Message, error) {
	if len(req.Payload) <= 1024 {
		return e.do(ctx, req, true)
	}
	body := req.Payload
	const szx = 5
	size := 1 << (szx + 4)
	for num := 0; ; num++ {
		off := num * size
		end := min(off+size, len(body))
		part := &message.Message{Code: req.Code, Payload: body[off:end]}
		for _, o := range req.Options {
			part.Options = part.Options.Add(o)
		}
		addUint(part, message.Block1, blockOpt{num: uint32(num), more: end < len(body), szx: szx}.value())
		resp, err := e.do(ctx, part, true)
		if err != nil {
			return nil, err
		}
		if end == len(body) || resp.Code != codes.Continue {
			return resp, nil
		}
	}
}

type outgoing struct {
	mid   uint16
	token string
	b     []byte
	waits []time.Duration
	try   int
	timer *time.Timer
}

type call struct {
	ch chan result
}

type result struct {
	m   *message.Message
	err error
}

type seenEntry struct {
	at   time.Time
	resp []byte // cached answer (nil for messages that got none)
}

func newExchange(tx func([]byte) error, maxSize int) *exchange {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return &exchange{
		tx:      tx,
		maxSize: maxSize,
		sem:     make(chan struct{}, 1),
		nextMID: uint16(b[0])<<8 | uint16(b[1]),
		pending: make(map[uint16]*outgoing),
		calls:   make(map[string]*call),
		seen:    make(map[uint16]seenEntry),
		b1max:   maxBlock1Body,
	}
}

func (e *exchange) setTransmission(t Transmission) {
	e.mu.Lock()
	e.trans = t
	e.mu.Unlock()
}

func newToken() []byte {
	t := make([]byte, 8)
	_, _ = rand.Read(t)
	return t
}

func (e *exchange) mid() uint16 {
	e.nextMID++
	return e.nextMID
}

func (e *exchange) send(b []byte) error {
	return e.tx(b)
}

// do sends req (a request, confirmable or not) and waits for its response.
// req.Token is set when empty. Only one request per peer is outstanding at a
// time (NSTART = 1); later ones wait for the earlier ones.
func (e *exchange) do(ctx context.Context, req *message.Message, confirmable bool) (*message.Message, error) {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.sem }()

	if len(req.Token) == 0 {
		req.Token = newToken()
	}
	tok := string(req.Token)
	c := &call{ch: make(chan result, 1)}

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	req.MessageID = int32(e.mid())
	req.Type = message.NonConfirmable
	if confirmable {
		req.Type = message.Confirmable
	}
	b, err := encodeMsg(*req)
	if err != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("lwm2m: encoding request: %w", err)
	}
	e.calls[tok] = c
	var out *outgoing
	if confirmable {
		out = &outgoing{mid: uint16(req.MessageID), token: tok, b: b, waits: e.trans.Schedule(randFloat())}
		e.pending[out.mid] = out
		e.arm(out)
	}
	e.mu.Unlock()

	cleanup := func() {
		e.mu.Lock()
		delete(e.calls, tok)
		if out != nil {
			if out.timer != nil {
				out.timer.Stop()
			}
			delete(e.pending, out.mid)
		}
		e.mu.Unlock()
	}
	if err := e.send(b); err != nil {
		cleanup()
		return nil, fmt.Errorf("lwm2m: sending request: %w", err)
	}
	if f, ok := ctx.Value(leftKey{}).(func()); ok {
		f()
	}
	select {
	case r := <-c.ch:
		cleanup()
		return r.m, r.err
	case <-ctx.Done():
		cleanup()
		return nil, ctx.Err()
	}
}

// arm starts the timer for the current try of out. e.mu is held.
func (e *exchange) arm(out *outgoing) {
	out.timer = time.AfterFunc(out.waits[out.try], func() { e.expire(out) })
}

func (e *exchange) expire(out *outgoing) {
	e.mu.Lock()
	if e.pending[out.mid] != out {
		e.mu.Unlock()
		return
	}
	out.try++
	if out.try >= len(out.waits) {
		e.mu.Unlock()
		e.fail(out, ErrTimeout)
		return
	}
	e.arm(out)
	b := out.b
	e.mu.Unlock()
	if err := e.send(b); errors.Is(err, ErrSleeping) {
		// The session parked: the device's window closed before it
		// answered, and nothing more can reach it. The caller learns it
		// now rather than after every retransmission's wait, and no
		// goroutine waits on a device that is asleep.
		e.fail(out, err)
	}
}

// failPending ends every request and confirmable notification still
// waiting for the peer's acknowledgement or answer with err (the session parked: the device is
// asleep and will answer none of them).
func (e *exchange) failPending(err error) {
	e.mu.Lock()
	outs := make([]*outgoing, 0, len(e.pending))
	for _, out := range e.pending {
		outs = append(outs, out)
	}
	e.mu.Unlock()
	for _, out := range outs {
		e.fail(out, err)
	}
	// Requests the device acknowledged but has not answered yet (a
	// separate response) wait in calls only.
	e.mu.Lock()
	waiting := make([]*call, 0, len(e.calls))
	for tok, c := range e.calls {
		waiting = append(waiting, c)
		delete(e.calls, tok)
	}
	e.mu.Unlock()
	for _, c := range waiting {
		select {
		case c.ch <- result{err: err}:
		default: // answered meanwhile
		}
	}
}

// fail ends the exchange of out with err, unless it has ended already.
func (e *exchange) fail(out *outgoing, err error) {
	e.mu.Lock()
	if e.pending[out.mid] != out {
		e.mu.Unlock()
		return
	}
	if out.timer != nil {
		out.timer.Stop()
	}
	delete(e.pending, out.mid)
	c := e.calls[out.token]
	delete(e.calls, out.token)
	e.mu.Unlock()
	if c != nil {
		c.ch <- result{err: err}
	}
}

// notify sends an unsolicited response (an observe notification) with the
// given type; a confirmable one is retransmitted like a request and its
// result is the peer's ACK (or Reset → errReset).
func (e *exchange) notify(ctx context.Context, m *message.Message, confirmable bool) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	m.MessageID = int32(e.mid())
	m.Type = message.NonConfirmable
	if confirmable {
		m.Type = message.Confirmable
	}
	b, err := encodeMsg(*m)
	if err != nil {
		e.mu.Unlock()
		return fmt.Errorf("lwm2m: encoding notification: %w", err)
	}
	if !confirmable {
		e.mu.Unlock()
		return e.send(b)
	}
	key := fmt.Sprintf("\x00mid%d", m.MessageID) // acks are matched by mid only
	c := &call{ch: make(chan result, 1)}
	out := &outgoing{mid: uint16(m.MessageID), token: key, b: b, waits: e.trans.Schedule(randFloat())}
	e.calls[key] = c
	e.pending[out.mid] = out
	e.arm(out)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.calls, key)
		out.timer.Stop()
		delete(e.pending, out.mid)
		e.mu.Unlock()
	}()
	if err := e.send(b); err != nil {
		return err
	}
	select {
	case r := <-c.ch:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close fails every waiting request with ErrClosed and stops all timers.
func (e *exchange) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	for _, o := range e.pending {
		o.timer.Stop()
	}
	clear(e.pending)
	for k, c := range e.calls {
		select {
		case c.ch <- result{err: ErrClosed}:
		default:
		}
		delete(e.calls, k)
	}
}

// remember records mid as received with its answer. e.mu is held.
func (e *exchange) remember(mid uint16, resp []byte, now time.Time) {
	if _, ok := e.seen[mid]; !ok {
		e.seenQ = append(e.seenQ, mid)
	}
	e.seen[mid] = seenEntry{at: now, resp: resp}
	for len(e.seenQ) > dedupEntries {
		delete(e.seen, e.seenQ[0])
		e.seenQ = e.seenQ[1:]
	}
}

// duplicate reports whether mid was received within the exchange lifetime,
// with the cached answer. e.mu is held.
func (e *exchange) duplicate(mid uint16, now time.Time) (seenEntry, bool) {
	s, ok := e.seen[mid]
	if !ok || now.Sub(s.at) > exchangeLifetime {
		return seenEntry{}, false
	}
	return s, true
}

// resolve hands a response (or error) to the request waiting on tok.
func (e *exchange) resolve(tok string, r result) bool {
	e.mu.Lock()
	c := e.calls[tok]
	delete(e.calls, tok)
	e.mu.Unlock()
	if c == nil {
		return false
	}
	c.ch <- r
	return true
}

// ackMID stops retransmission of our CON mid and returns its token.
func (e *exchange) ackMID(mid uint16) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.pending[mid]
	if o == nil {
		return "", false
	}
	o.timer.Stop()
	delete(e.pending, mid)
	return o.token, true
}

func (e *exchange) reply(m message.Message) []byte {
	b, err := encodeMsg(m)
	if err != nil {
		return nil
	}
	_ = e.send(b)
	return b
}

// receive processes one datagram from the peer.
func (e *exchange) receive(b []byte) {
	now := time.Now()
	h, ok, err := checkFormat(b)
	if !ok || h.version != 1 {
		return // too short to answer, or another CoAP version: ignored (§3)
	}
	var m message.Message
	if err == nil {
		m, err = decodeMsg(b)
	}
	if err != nil {
		// A message format error: a confirmable message is rejected with a
		// Reset, any other is silently ignored (RFC 7252 §4.2, §4.3).
		if h.typ == message.Confirmable {
			_ = e.send(resetFor(h.mid))
		}
		if e.onMalformed != nil {
			e.onMalformed(err)
		}
		return
	}
	mid := uint16(m.MessageID)
	switch {
	case m.Type == message.Reset:
		if tok, ok := e.ackMID(mid); ok {
			e.resolve(tok, result{err: errReset})
		}
	case m.Code == codes.Empty && m.Type == message.Acknowledgement:
		if tok, ok := e.ackMID(mid); ok && len(tok) > 4 && tok[:4] == "\x00mid" {
			e.resolve(tok, result{})
		}
	case m.Code == codes.Empty:
		if m.Type == message.Confirmable { // CoAP ping
			e.reply(message.Message{Type: message.Reset, MessageID: m.MessageID, Code: codes.Empty})
		}
	case reservedClass(m.Code):
		// Neither request nor response: a confirmable message is rejected
		// with a Reset, any other is silently ignored (RFC 7252 §4.2).
		if m.Type == message.Confirmable {
			e.reply(message.Message{Type: message.Reset, MessageID: m.MessageID, Code: codes.Empty})
		}
	case isRequest(m.Code):
		e.receiveRequest(&m, len(b), now)
	case isResponse(m.Code):
		e.receiveResponse(&m, now)
	}
}

// notifyResult is what a session made of a notification.
type notifyResult int

const (
	notifyUnknown notifyResult = iota // not an observation of ours: Reset
	notifyTaken                       // acknowledged when confirmable
	notifyRetry                       // the handler refused it: no answer, the device sends it again
)

// noAnswer is the response of a request that the handler refused
// (UplinkHandler): nothing is sent and the message ID is forgotten, so
// that the device's retransmission is processed again.
var noAnswer = &message.Message{}

// duplicated tells onDuplicate that a message came again: the peer sent
// it again, so it is awake now.
func (e *exchange) duplicated(now time.Time) {
	if e.onDuplicate != nil {
		e.onDuplicate(now)
	}
}

// forget drops mid from the duplicate cache. e.mu is held.
func (e *exchange) forget(mid uint16) {
	if _, ok := e.seen[mid]; ok {
		e.seen[mid] = seenEntry{} // at zero: older than the exchange lifetime
	}
}

func (e *exchange) receiveRequest(m *message.Message, size int, now time.Time) {
	mid := uint16(m.MessageID)
	e.mu.Lock()
	if s, dup := e.duplicate(mid, now); dup {
		e.mu.Unlock()
		e.duplicated(now) // before the answer: whoever gets it sees the device awake
		out := s.resp
		if out != nil && e.small != nil && e.small() {
			out = fitBytes(out, size)
		}
		if out != nil {
			_ = e.send(out)
		}
		return
	}
	e.remember(mid, nil, now) // processing; a duplicate arriving meanwhile is dropped
	e.mu.Unlock()

	var resp *message.Message
	var after func()
	last := len(m.Payload) // this block's bytes, when assemble completes a Block1 body
	if e.maxSize > 0 && size > e.maxSize {
		resp = &message.Message{Code: codes.RequestEntityTooLarge}
		addUint(resp, message.Size1, uint32(e.maxSize))
	} else if m.Code > codes.DELETE {
		// FETCH, PATCH, iPATCH and unassigned method codes: no resource of
		// this server allows them (RFC 7252 §5.8, §5.9.2.6)
		resp = errResp(codes.MethodNotAllowed, "method %s is not served; this server takes GET, POST and DELETE", codeString(m.Code))
	} else if bad := badOption(m); bad != nil {
		if m.Type != message.Confirmable {
			// a NON request with an unrecognised critical option is
			// rejected: silently ignored (RFC 7252 §5.4.1, §4.3)
			return
		}
		resp = bad
	} else if r, whole := e.assemble(m); !whole {
		resp = r // 2.31 Continue or an error for a Block1 request
	} else {
		resp, after = e.handle(m)
		if resp == noAnswer {
			e.mu.Lock()
			e.forget(mid)
			if _, ok := optUint(m, message.Block1); ok {
				// the retransmitted last block completes the body again
				e.b1key, e.b1body = block1Key(m), m.Payload[:len(m.Payload)-last]
			}
			e.mu.Unlock()
			return
		}
		if v, ok := optUint(m, message.Block1); ok {
			resp.Options = resp.Options.Remove(message.Block1)
			addUint(resp, message.Block1, v) // echo the last block (RFC 7959 §2.3)
		}
	}
	resp.Token = m.Token
	if m.Type == message.Confirmable {
		resp.Type = message.Acknowledgement
		resp.MessageID = m.MessageID
	} else {
		e.mu.Lock()
		resp.MessageID = int32(e.mid())
		e.mu.Unlock()
		resp.Type = message.NonConfirmable
	}
	if e.small != nil && e.small() {
		fitAnswer(resp, size)
	}
	out := e.reply(*resp)
	e.mu.Lock()
	e.remember(mid, out, now)
	e.mu.Unlock()
	if after != nil {
		after()
	}
}

func (e *exchange) receiveResponse(m *message.Message, now time.Time) {
	mid := uint16(m.MessageID)
	if m.Type == message.Acknowledgement { // piggybacked response
		e.ackMID(mid)
		e.resolve(string(m.Token), result{m: m})
		return
	}
	e.mu.Lock()
	s, dup := e.duplicate(mid, now)
	if !dup {
		e.remember(mid, nil, now)
	}
	e.mu.Unlock()
	if dup { // answered from cache, processed once
		e.duplicated(now)
		if s.resp != nil {
			_ = e.send(s.resp)
		}
		return
	}
	r := notifyUnknown
	if e.resolve(string(m.Token), result{m: m}) {
		r = notifyTaken
	} else if e.onNotify != nil {
		r = e.onNotify(m)
	}
	var ans []byte
	switch {
	case r == notifyRetry:
		e.mu.Lock()
		e.forget(mid)
		e.mu.Unlock()
		return
	case r == notifyUnknown:
		ans = e.reply(message.Message{Type: message.Reset, MessageID: m.MessageID, Code: codes.Empty})
	case m.Type == message.Confirmable:
		ans = e.reply(message.Message{Type: message.Acknowledgement, MessageID: m.MessageID, Code: codes.Empty})
	}
	e.mu.Lock()
	e.remember(mid, ans, now)
	e.mu.Unlock()
}
