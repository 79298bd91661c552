package transport

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Registration is a snapshot of one device's registration (LWM-3, LWM-4).
type Registration struct {
	Endpoint   string              // normalized endpoint name (LWM-2)
	ID         string              // registration id; the location is "/rd/" + ID (TUP: "t" + random)
	TUP        bool                // registered through /t/r (LWM-4) rather than /rd
	Version    string              // LwM2M version announced ("1.0", "1.1"); "" for TUP
	Lifetime   time.Duration       // lt
	Binding    string              // b ("U", "UQ", …)
	Queue      bool                // queue mode (b=UQ or the Q parameter)
	Links      string              // the CoRE link-format body as sent
	Objects    lwm2m.ClientObjects // the body parsed: objects, instances, versions, formats
	Secure     bool                // over DTLS
	Addr       net.Addr            // where the device was last seen
	Registered time.Time
	Updated    time.Time
	Expires    time.Time
	AwakeUntil time.Time // queue mode: end of the current awake window
}

// Location returns the registration's location path ("/rd/<id>").
func (r Registration) Location() string { return "/rd/" + r.ID }

type registration struct {
	Registration
	sess  *session
	timer *time.Timer
	data  dataState // the server's observation of the data channel; see observeData
}

// Supported LwM2M versions; another version gets 4.12 (LWM-3).
var supportedVersions = []string{"1.0", "1.1"}

func versionSupported(v string) bool {
	for _, s := range supportedVersions {
		if v == s || strings.HasPrefix(v, s+".") {
			return true
		}
	}
	return false
}

func newRegID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// regParams are the query parameters of a registration or update.
type regParams struct {
	ep, lwm2m, b string
	lt           time.Duration
	hasLT, q     bool
	hasB         bool
}

// parseRegQuery parses the Uri-Query options of /rd, /rd/<id> and /t/r.
func parseRegQuery(qs []string) (regParams, error) {
	var p regParams
	for _, q := range qs {
		k, v, _ := strings.Cut(q, "=")
		switch k {
		case "ep":
			p.ep = v
		case "lt":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return p, &queryError{q: q, want: "lt=<seconds>, a positive integer"}
			}
			p.lt, p.hasLT = time.Duration(n)*time.Second, true
		case "lwm2m":
			p.lwm2m = v
		case "b":
			p.b, p.hasB = v, true
		case "Q":
			p.q = true
		}
	}
	return p, nil
}

type queryError struct{ q, want string }

func (e *queryError) Error() string {
	return "bad query parameter " + strconv.Quote(e.q) + ": want " + e.want
}

// identityOK reports whether sess may act for endpoint ep: over DTLS the PSK
// identity must be the endpoint name (LWM-1); over plain CoAP the
// endpoint's policy must allow plain CoAP (SEC-1).
func (sess *session) identityOK(ep string) bool {
	if sess.secure {
		return sess.identity == ep
	}
	return sess.srv.security(ep) == SecurityNone
}

// checkLifetime refuses an lt above MaxLifetime (SEC-2); see
// Config.MaxLifetime for why it is refused rather than shortened.
func (s *Server) checkLifetime(op string, p regParams) *message.Message {
	if p.hasLT && p.lt > s.cfg.MaxLifetime {
		return errResp(codes.BadRequest, "%s: lt=%d is too long; this server accepts at most lt=%d (seconds)",
			op, int64(p.lt/time.Second), int64(s.cfg.MaxLifetime/time.Second))
	}
	return nil
}

// bindCheck decides whether sess may register endpoint ep, before anything
// is kept: the PSK identity, the endpoint policy (SEC-1), the lifetime, a
// plain CoAP Register for a device registered over DTLS (impersonation
// never moves a registration), and room under MaxSessions.
func (s *Server) bindCheck(sess *session, op, ep string, p regParams) *message.Message {
	if !sess.identityOKDTLS(ep) {
		return errResp(codes.Forbidden, "%s: endpoint %q does not match the PSK identity %q", op, ep, sess.identity)
	}
	if r := s.admit(sess, op, ep); r != nil {
		return r
	}
	if r := s.checkLifetime(op, p); r != nil {
		return r
	}
	if !sess.secure {
		if cur, ok := s.Registration(ep); ok && cur.Secure {
			s.floods.note("refused", "lwm2m: registration refused by the endpoint policy (SEC-1)",
				"op", op, "endpoint", ep, "reason", "registered over DTLS", "addr", addrString(sess.remoteAddr()))
			return errResp(codes.Unauthorized, "%s: endpoint %q is registered over DTLS; it cannot register again over plain CoAP", op, ep)
		}
	}
	if !s.roomFor(sess, ep) {
		return sessionLimit()
	}
	return nil
}

// identityOKDTLS reports whether a DTLS session's PSK identity is ep; a
// plain CoAP session has none to compare.
func (sess *session) identityOKDTLS(ep string) bool { return !sess.secure || sess.identity == ep }

func (s *Server) register(sess *session, m *message.Message, now time.Time) (*message.Message, func()) {
	p, err := parseRegQuery(msgQueries(m))
	if err != nil {
		return errResp(codes.BadRequest, "register: %v", err), nil
	}
	if p.ep == "" {
		return errResp(codes.BadRequest, "register: missing ep=<endpoint name> query parameter"), nil
	}
	ep := NormalizeEndpoint(p.ep)
	if p.lwm2m == "" {
		p.lwm2m = "1.0"
	}
	if r := s.bindCheck(sess, "register", ep, p); r != nil {
		return r, nil
	}
	if !versionSupported(p.lwm2m) {
		return errResp(codes.PreconditionFailed, "register: LwM2M version %q not served; this server serves %s", p.lwm2m, strings.Join(supportedVersions, ", ")), nil
	}
	if cf := contentFormat(m); cf != cfNone && cf != cfLink {
		return errResp(codes.UnsupportedMediaType, "register: body must be CoRE link format (40), got %d", cf), nil
	}
	if !p.hasLT {
		p.lt = s.cfg.DefaultLifetime
	}
	if !p.hasB {
		p.b = "U"
	}
	links := string(m.Payload)
	objs, err := lwm2m.ParseClientObjects(m.Payload)
	if err != nil {
		return errResp(codes.BadRequest, "register: body: %v", err), nil
	}
	r := &registration{Registration: Registration{
		Endpoint: ep, ID: newRegID(), Version: p.lwm2m, Lifetime: p.lt, Binding: p.b,
		Queue: p.q || strings.Contains(p.b, "Q"), Links: links, Objects: objs, Secure: sess.secure,
		Addr: sess.remoteAddr(), Registered: now, Updated: now, Expires: now.Add(p.lt),
	}}
	s.install(sess, r, now)
	resp := &message.Message{Code: codes.Created}
	addPath(resp, message.LocationPath, "/rd/"+r.ID)
	return resp, func() { s.afterRegister(r) }
}

// install makes r the endpoint's registration, ending an older one.
func (s *Server) install(sess *session, r *registration, now time.Time) {
	if r.Queue {
		r.AwakeUntil = now.Add(s.cfg.AwakeWindow)
	}
	s.mu.Lock()
	old := s.regs[r.Endpoint]
	var stale *session
	if old != nil {
		stale = s.dropLocked(old, sess)
	}
	r.sess = sess
	s.adoptLocked(sess)
	s.regs[r.Endpoint] = r
	s.byID[r.ID] = r
	if t, ok := s.trans[r.Endpoint]; ok {
		sess.ex.setTransmission(t)
	}
	r.timer = time.AfterFunc(r.Lifetime, func() { s.expire(r) })
	snap := r.Registration
	s.mu.Unlock()
	sess.mu.Lock()
	sess.endpoint = r.Endpoint
	sess.mu.Unlock()
	if stale != nil {
		stale.close()
		s.forgetStored(r.Endpoint, false) // the old session's state
	}
	s.saveRegistration(snap)
	if old != nil {
		s.emit(Event{Kind: EventDeregistered, Endpoint: r.Endpoint, Time: now, Registration: old.Registration, Reason: ReasonReplaced})
	}
	s.emit(Event{Kind: EventRegistered, Endpoint: r.Endpoint, Time: now, Registration: snap})
	s.wake(snap, now)
}

// dropLocked removes r from the tables and returns its session for the
// caller to close (outside s.mu), unless that session is keep: a device's
// session lives as long as its registration. s.mu is held.
func (s *Server) dropLocked(r *registration, keep *session) *session {
	if r.timer != nil {
		r.timer.Stop()
	}
	if s.regs[r.Endpoint] == r {
		delete(s.regs, r.Endpoint)
	}
	delete(s.byID, r.ID)
	sess := r.sess
	if sess == nil || sess == keep {
		return nil
	}
	if !sess.secure && s.udpPeers[sess.addr.String()] == sess {
		delete(s.udpPeers, sess.addr.String())
	}
	s.forgetParkedLocked(sess)
	return sess
}

// forgetParkedLocked removes a parked session from the session table (it
// has no goroutine that would). s.mu is held.
func (s *Server) forgetParkedLocked(sess *session) {
	sess.mu.Lock()
	parked := sess.parked
	sess.mu.Unlock()
	if parked {
		delete(s.dtlsSess, sess)
	}
}

// afterRegister observes the new registration's data channel (LWM-4,
// LWM-5) once the answer to the Register has left; the value of the
// device's answer is uplink data.
func (s *Server) afterRegister(r *registration) {
	s.mu.Lock()
	start := s.regs[r.Endpoint] == r && dataChannel(r) != "" && r.data == dataNone
	if start {
		r.data = dataObserving
	}
	s.mu.Unlock()
	if start {
		s.observeData(r, Observation{})
	}
}

func (s *Server) wake(r Registration, now time.Time) {
	e := Event{Kind: EventWoke, Endpoint: r.Endpoint, Time: now, Registration: r}
	if r.Queue {
		e.AwakeUntil = r.AwakeUntil
	}
	s.emit(e)
}

// stillAwake extends the awake window of the queue-mode device behind sess
// when a message of it came again (a retransmission): in queue mode a
// device stays awake for a while after each message it sends (CoAP's
// MAX_TRANSMIT_WAIT by default, Config.AwakeWindow here), a sent-again one
// included, so one whose request was answered late stays reachable for a
// window from its last copy. Nothing else happens: the first copy did the
// rest.
func (s *Server) stillAwake(sess *session, now time.Time) {
	sess.mu.Lock()
	ep := sess.endpoint
	sess.mu.Unlock()
	if ep == "" {
		return
	}
	s.mu.Lock()
	if r := s.regs[ep]; r != nil && r.sess == sess && r.Queue && now.Add(s.cfg.AwakeWindow).After(r.AwakeUntil) {
		r.AwakeUntil = now.Add(s.cfg.AwakeWindow)
	}
	s.mu.Unlock()
}

// touch records that the device behind sess sent something at now and
// raises the wake event (LWM-8).
func (s *Server) touch(sess *session, ep string, now time.Time) {
	s.mu.Lock()
	r := s.regs[ep]
	if r == nil || (r.sess != sess && !sess.identityOK(ep)) {
		s.mu.Unlock()
		return
	}
	if r.Queue {
		r.AwakeUntil = now.Add(s.cfg.AwakeWindow)
	}
	r.Addr = sess.remoteAddr()
	// An observe of the data channel that got no answer is sent again
	// now that the device is heard from (issue 15 item 5).
	retry := r.data == dataLost && r.sess == sess
	if retry {
		r.data = dataObserving
	}
	snap := r.Registration
	s.mu.Unlock()
	s.wake(snap, now)
	if retry {
		s.observeData(r, Observation{})
	}
}

func (s *Server) update(sess *session, m *message.Message, id string, now time.Time) (*message.Message, func()) {
	p, err := parseRegQuery(msgQueries(m))
	if err != nil {
		return errResp(codes.BadRequest, "update: %v", err), nil
	}
	if cf := contentFormat(m); len(m.Payload) > 0 && cf != cfNone && cf != cfLink {
		return errResp(codes.UnsupportedMediaType, "update: body must be CoRE link format (40), got %d", cf), nil
	}
	var objs lwm2m.ClientObjects
	if len(m.Payload) > 0 {
		if objs, err = lwm2m.ParseClientObjects(m.Payload); err != nil {
			return errResp(codes.BadRequest, "update: body: %v", err), nil
		}
	}
	if r := s.checkLifetime("update", p); r != nil {
		return r, nil
	}
	s.mu.Lock()
	r := s.byID[id]
	if r == nil {
		s.mu.Unlock()
		return errResp(codes.NotFound, "update: no registration /rd/%s", id), nil
	}
	ep, secure := r.Endpoint, r.Secure
	s.mu.Unlock()
	if resp := s.admit(sess, "update", ep); resp != nil {
		return resp, nil
	}
	s.mu.Lock()
	if s.byID[id] != r {
		s.mu.Unlock()
		return errResp(codes.NotFound, "update: no registration /rd/%s", id), nil
	}
	if !sess.identityOKDTLS(ep) || (!sess.secure && secure) {
		s.mu.Unlock()
		return errResp(codes.Forbidden, "update: registration /rd/%s belongs to another identity", id), nil
	}
	if p.hasLT {
		r.Lifetime = p.lt
	}
	if p.hasB {
		r.Binding = p.b
		r.Queue = strings.Contains(p.b, "Q")
	}
	if p.q {
		r.Queue = true
	}
	if len(m.Payload) > 0 {
		r.Links, r.Objects = string(m.Payload), objs
	}
	forget, observe := s.updateData(r, len(m.Payload) > 0)
	// LWM-10: an update from another address or DTLS session moves the
	// registration there.
	moved := r.sess != sess
	if moved {
		old := r.sess
		if old != nil && !old.secure && s.udpPeers[old.addr.String()] == old {
			delete(s.udpPeers, old.addr.String())
		}
		if old != nil {
			s.forgetParkedLocked(old)
			defer old.close()
		}
		r.sess = sess
		s.adoptLocked(sess)
		if t, ok := s.trans[r.Endpoint]; ok {
			sess.ex.setTransmission(t)
		}
	}
	r.Addr = sess.remoteAddr()
	r.Updated = now
	r.Expires = now.Add(r.Lifetime)
	if r.Queue {
		r.AwakeUntil = now.Add(s.cfg.AwakeWindow)
	}
	r.timer.Stop()
	r.timer = time.AfterFunc(r.Lifetime, func() { s.expire(r) })
	snap := r.Registration
	s.mu.Unlock()
	sess.mu.Lock()
	sess.endpoint = r.Endpoint
	sess.mu.Unlock()
	if moved {
		s.forgetStored(r.Endpoint, false) // the old session's state
	}
	s.saveRegistration(snap)
	if forget {
		s.forgetData(r.Endpoint)
	}
	// The observation is stored before the Updated event: a Handler
	// that looks finds the data channel observed and does not observe
	// it a second time.
	var o Observation
	if observe {
		var err error
		if o, err = s.newObservation(r.Endpoint, dataPath.String()); err != nil {
			s.log.Warn("lwm2m: observing the data channel after an update", "endpoint", r.Endpoint, "err", err)
		}
	}
	s.emit(Event{Kind: EventUpdated, Endpoint: r.Endpoint, Time: now, Registration: snap})
	s.wake(snap, now)
	var after func()
	if observe {
		after = func() { s.observeData(r, o) }
	}
	return &message.Message{Code: codes.Changed}, after
}

// updateData decides what an Update does to the data channel: an object
// list without </19/0> ends it (the device forgets its observers of a
// removed object; forget deletes the stored observations), and one that
// lists it has /19/0/0 observed again when it is not observed or being
// observed (it came back, or the observe got no answer: observe). A new
// object list also lets a device that refused the observe be asked again.
// s.mu is held.
func (s *Server) updateData(r *registration, newList bool) (forget, observe bool) {
	if r.TUP {
		return false, false
	}
	if dataChannel(r) == "" {
		forget = r.data != dataNone
		r.data = dataNone
		return forget, false
	}
	if newList && r.data == dataRefused {
		r.data = dataNone
	}
	if r.data == dataNone || r.data == dataLost {
		r.data = dataObserving
		return false, true
	}
	return false, false
}

func (s *Server) deregister(sess *session, id string, now time.Time) (*message.Message, func()) {
	s.mu.Lock()
	r := s.byID[id]
	if r == nil {
		s.mu.Unlock()
		return errResp(codes.NotFound, "deregister: no registration /rd/%s", id), nil
	}
	ep := r.Endpoint
	s.mu.Unlock()
	if resp := s.admit(sess, "deregister", ep); resp != nil {
		return resp, nil
	}
	s.mu.Lock()
	if s.byID[id] != r {
		s.mu.Unlock()
		return errResp(codes.NotFound, "deregister: no registration /rd/%s", id), nil
	}
	if !sess.identityOKDTLS(r.Endpoint) || (!sess.secure && r.Secure) {
		s.mu.Unlock()
		return errResp(codes.Forbidden, "deregister: registration /rd/%s belongs to another identity", id), nil
	}
	gone := s.dropLocked(r, nil)
	snap := r.Registration
	s.mu.Unlock()
	s.forgetObservations(r.Endpoint)
	s.forgetStored(r.Endpoint, true)
	s.emit(Event{Kind: EventDeregistered, Endpoint: r.Endpoint, Time: now, Registration: snap, Reason: ReasonDeregistered})
	return &message.Message{Code: codes.Deleted}, func() {
		switch {
		case gone == nil:
		case !gone.secure:
			gone.close() // after the 2.02 has left
		default:
			// Not at once: a pion/dtls peer can lose a record that arrives
			// just before the close_notify (its Conn.Read picks between
			// "closed" and the buffered record at random), and the device
			// would never see its 2.02.
			time.AfterFunc(closeGrace, func() { s.closeUnlessRegistered(gone, r.Endpoint) })
		}
	}
}

// closeGrace is how long a DTLS session outlives its de-registration, so
// that the device reads the 2.02 before the close_notify.
const closeGrace = time.Second

// closeUnlessRegistered closes sess unless ep registered on it again.
func (s *Server) closeUnlessRegistered(sess *session, ep string) {
	s.mu.Lock()
	r := s.regs[ep]
	again := r != nil && r.sess == sess
	if !again {
		s.forgetParkedLocked(sess)
	}
	s.mu.Unlock()
	if !again {
		sess.close()
	}
}

func (s *Server) expire(r *registration) {
	select {
	case <-s.done:
		return
	default:
	}
	s.end(r, ReasonExpired)
}

// Disconnect ends endpoint's registration and its DTLS session, live or
// parked, as a platform does when it deletes the device: observations are
// forgotten and the Handler gets EventDeregistered with ReasonRemoved. The
// device cannot resume the session; a new handshake needs a key the
// KeyStore still gives. It reports whether endpoint was registered.
func (s *Server) Disconnect(endpoint string) bool {
	s.mu.Lock()
	r := s.regs[NormalizeEndpoint(endpoint)]
	s.mu.Unlock()
	return r != nil && s.end(r, ReasonRemoved)
}

// end ends registration r, unless it has ended or been replaced already.
// An expired registration's DTLS session, live or parked, is kept for
// IdleTimeout (issue 20.5): the device believes it still holds a valid
// session and its next Register on it is accepted without a handshake;
// the session ends after IdleTimeout unless the device registered on it
// again. Any other end closes the session.
func (s *Server) end(r *registration, why Reason) bool {
	now := time.Now()
	if why == ReasonExpired && s.renewedElsewhere(r, now) {
		return false // the device lives on another server now (adopt.go)
	}
	s.mu.Lock()
	if s.regs[r.Endpoint] != r {
		s.mu.Unlock()
		return false
	}
	var keep *session
	if why == ReasonExpired && r.sess != nil && r.sess.secure {
		keep = r.sess
	}
	gone := s.dropLocked(r, keep)
	snap := r.Registration
	s.mu.Unlock()
	if gone != nil {
		gone.close()
	}
	if keep != nil {
		keep.mu.Lock()
		if keep.endpoint == r.Endpoint {
			keep.endpoint = "" // a Send now gets "register first"; an idle session ends
		}
		keep.mu.Unlock()
		time.AfterFunc(s.cfg.IdleTimeout, func() { s.closeUnlessRegistered(keep, r.Endpoint) })
	}
	s.forgetObservations(r.Endpoint)
	s.forgetStored(r.Endpoint, true)
	s.emit(Event{Kind: EventDeregistered, Endpoint: r.Endpoint, Time: now, Registration: snap, Reason: why})
	return true
}

func (s *Server) forgetObservations(ep string) {
	obs, err := s.cfg.Observations.Observations(ep)
	if err != nil {
		s.log.Warn("lwm2m: listing observations", "endpoint", ep, "err", err)
		return
	}
	for _, o := range obs {
		_ = s.cfg.Observations.DeleteObservation(o.Token)
	}
}

// registerTUP handles POST /t/r?ep=IMEI (LWM-4): 2.04, then the server
// observes /t/d at once.
func (s *Server) registerTUP(sess *session, m *message.Message, now time.Time) (*message.Message, func()) {
	p, err := parseRegQuery(msgQueries(m))
	if err != nil {
		return errResp(codes.BadRequest, "TUP register: %v", err), nil
	}
	if p.ep == "" {
		return errResp(codes.BadRequest, "TUP register: missing ep=<IMEI> query parameter"), nil
	}
	ep := NormalizeEndpoint(p.ep)
	if r := s.bindCheck(sess, "TUP register", ep, p); r != nil {
		return r, nil
	}
	if !p.hasLT {
		p.lt = s.cfg.DefaultLifetime
	}
	r := &registration{Registration: Registration{
		Endpoint: ep, ID: "t" + newRegID(), TUP: true, Lifetime: p.lt, Binding: "U",
		Queue: p.q, Secure: sess.secure, Addr: sess.remoteAddr(),
		Registered: now, Updated: now, Expires: now.Add(p.lt),
	}}
	s.install(sess, r, now)
	return &message.Message{Code: codes.Changed}, func() { s.afterRegister(r) }
}

// send handles the LwM2M 1.1 Send operation (POST /dp): uplink data.
func (s *Server) send(sess *session, m *message.Message, now time.Time) (*message.Message, func()) {
	sess.mu.Lock()
	ep := sess.endpoint
	sess.mu.Unlock()
	if ep == "" {
		return errResp(codes.Forbidden, "send: register before sending data"), nil
	}
	s.touch(sess, ep, now)
	c := Content{Format: contentFormat(m), Payload: m.Payload}
	d, refusal := s.parseSend(ep, c)
	if refusal != nil {
		e := Event{Kind: EventRefused, Endpoint: ep, Time: now, Path: "/dp", ContentFormat: c.Format,
			Code: Code(refusal.Code), Message: string(refusal.Payload)}
		if refusal.Code != codes.RequestEntityTooLarge {
			e.Payload = c.Payload
		}
		s.emit(e)
		return refusal, nil
	}
	for _, u := range d.data {
		if err := s.emitUplink(Event{Kind: EventUplink, Endpoint: ep, Time: now, Path: u.path, Payload: u.data, ContentFormat: c.Format}); err != nil {
			return noAnswer, nil
		}
	}
	if d.other != nil { // firmware State and Update Result, other Config.SendPaths, or what a SendFilter takes
		if err := s.emitUplink(Event{Kind: EventNotification, Endpoint: ep, Time: now, Path: "/dp", Payload: d.other, ContentFormat: c.Format}); err != nil {
			return noAnswer, nil
		}
	}
	if len(d.unused) > 0 {
		s.log.Info("lwm2m: values of a Send the server does not use were left out", "endpoint", ep, "paths", pathList(d.unused, 8))
	}
	return &message.Message{Code: codes.Changed}, nil
}

// notification handles a notification on one of the server's observations.
func (sess *session) notification(m *message.Message) notifyResult {
	s := sess.srv
	o, err := s.cfg.Observations.Observation(tokenKey(m.Token))
	if err != nil {
		return notifyUnknown
	}
	if !sess.identityOK(o.Endpoint) {
		return notifyUnknown
	}
	if m.Code != codes.Content && m.Code != codes.Changed {
		_ = s.cfg.Observations.DeleteObservation(o.Token) // an error ends the observation
		if o.Path == dataPath.String() || o.Path == "/t/d" {
			s.dataEnded(o.Endpoint)
		}
		s.emit(Event{Kind: EventNotification, Endpoint: o.Endpoint, Time: time.Now(), Path: o.Path, Payload: m.Payload, ContentFormat: contentFormat(m)})
		return notifyTaken
	}
	if _, ok := observeOpt(m); !ok {
		// a response without Observe ends the observation (RFC 7641 §3.2)
		_ = s.cfg.Observations.DeleteObservation(o.Token)
		if o.Path == dataPath.String() || o.Path == "/t/d" {
			defer s.dataEnded(o.Endpoint)
		}
	}
	cf := contentFormat(m)
	if cf == cfNone && o.Accept != nil {
		cf = *o.Accept // the format the observe asked for (RFC 7252 §5.10.4)
	}
	now := time.Now()
	sess.mu.Lock()
	if sess.endpoint == "" {
		sess.endpoint = o.Endpoint // after a restart: the token tells who this is
	}
	sess.mu.Unlock()
	s.touch(sess, o.Endpoint, now)
	if o.Path == "/19/0/0" || o.Path == "/t/d" {
		vals := s.uplinkValues(o.Path, Content{Format: cf, Payload: m.Payload})
		for _, u := range vals {
			if err := s.emitUplink(Event{Kind: EventUplink, Endpoint: o.Endpoint, Time: now, Path: u.path, Payload: u.data, ContentFormat: cf}); err != nil {
				return notifyRetry
			}
		}
		if len(vals) > 0 {
			return notifyTaken
		}
	}
	if err := s.emitUplink(Event{Kind: EventNotification, Endpoint: o.Endpoint, Time: now, Path: o.Path, Payload: m.Payload, ContentFormat: cf}); err != nil {
		return notifyRetry
	}
	return notifyTaken
}
