package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Sessions that move between servers (CLU-3). With
// Config.SharedRegistrations several servers write one RegistrationStore
// (a cluster on one PostgreSQL database) and a UDP load balancer in front
// may send a device's datagrams to any of them: its server died, or the
// balancer changed its mind. Every server writes a session's state to the
// store when it parks it and, with its write sequence numbers reserved,
// when it resumes it (park.go), so the store always holds a state from
// which the session can go on without reusing a sequence number.
//
// A record the router knows neither as live nor as parked — by its
// Connection ID (RFC 9146) or, without one, by its source address — is
// looked up in the store (ParkedByCID, ParkedByAddr) instead of dropped.
// When a parked session is found and its registration is there and
// current, the server takes both over as Listen would restore them (no
// events: nothing changed for the device), and the record, with those
// that came while the lookup was in flight, resumes the session: no
// handshake. An older registration of the same endpoint on this server is
// dropped (its session closed) without touching the store.
//
// A session parked here may have been used by another server since (the
// device moved there and back). Resuming it from the state kept here
// would reuse sequence numbers the other server sent (with AES-CCM, a
// nonce reused under one key) and miss what changed in its registration;
// so before resuming, a server reads the endpoint's stored session
// (Parked) and, when its state is not the one kept here, takes the
// session over from the store as above (SessionsTakenBack).
//
// Lookups cost a database query, and anyone can send a datagram with any
// Connection ID, so they are bounded, and the router's reading goroutine
// never waits for one:
//
//   - only records that can belong to an established session are looked
//     up: a DTLS 1.2 record of type tls12_cid (by Connection ID) or, for
//     records without one, application data of an epoch above 0 (by
//     address);
//   - at most one lookup per Connection ID (or address) is in flight; up
//     to lookupPending records that arrive meanwhile wait for it, more
//     are dropped (the device retransmits);
//   - at most maxLookups lookups are in flight or queued, answered by
//     lookupWorkers goroutines, each bounded by lookupTimeout;
//   - a source IP address starts at most Config.StoreLookupsPerSource
//     lookups a second (16 by default) and all sources together
//     Config.StoreLookupsPerSecond (2048): an attacker spraying random
//     Connection IDs gets that many queries and no more, whatever it
//     sends. A record over the limit is dropped and the device
//     retransmits. Behind a balancer that hides the devices' addresses
//     they all share the balancer's, so raise the per-source limit there;
//     otherwise the devices of a dead node move at 16 a second;
//   - a key that was not found is not looked up again for negativeTTL (at
//     most maxNegative keys are remembered; when full, the expired ones go
//     and, if none has, new misses are not remembered: the rate limits
//     still hold).
//
// Skipped lookups are counted (DTLSStats.StoreLookupsLimited), not logged
// one by one.
const (
	lookupPending     = 4
	maxLookups        = 256
	lookupWorkers     = 4
	lookupTimeout     = 5 * time.Second
	lookupsPerIP      = 16   // Config.StoreLookupsPerSource's default
	lookupsPerSecond  = 2048 // Config.StoreLookupsPerSecond's default
	negativeTTL       = 10 * time.Second
	maxNegative       = 1 << 16
	lookupRateWindow  = time.Second
	dtls12VersionByte = 0xfd
)

// storeLookup is the router's side of the lookups; guarded by dtlsMux.mu.
type storeLookup struct {
	reqs     chan *lookupReq       // to the server's workers
	inflight map[string]*lookupReq // key → the lookup in flight
	neg      map[string]time.Time  // key → not looked up again before
	window   time.Time             // start of the rate window
	perIP    map[string]int        // lookups started in the window by source IP
	total    int                   // lookups started in the window
	maxIP    int                   // lookups a source IP may start in a window
	maxTotal int                   // lookups all may start in a window
}

// lookupReq is one lookup: by Connection ID when cid is set, by address
// otherwise, with the records that wait for it.
type lookupReq struct {
	key     string
	cid     []byte
	addr    string
	pending []datagram
}

func newStoreLookup(perIP, total int) *storeLookup {
	return &storeLookup{
		maxIP:    perIP,
		maxTotal: total,
		reqs:     make(chan *lookupReq, maxLookups),
		inflight: make(map[string]*lookupReq),
		neg:      make(map[string]time.Time),
		perIP:    make(map[string]int),
	}
}

// lookupLocked starts a lookup for data, a record nobody here knows, or
// adds it to the lookup in flight for its key; m.mu is held.
func (m *dtlsMux) lookupLocked(data []byte, cid, addrKey string, addr *net.UDPAddr, now time.Time) {
	l := m.look
	if len(data) < recordHeaderLen || data[1] != 0xfe || data[2] != dtls12VersionByte {
		return
	}
	var key string
	switch {
	case cid != "":
		key = "c" + cid
	case data[0] == ctAppData && (data[3] != 0 || data[4] != 0):
		key = "a" + addrKey
	default:
		return // a handshake or an alert of no session: nothing to find
	}
	d := datagram{data, addr}
	if r := l.inflight[key]; r != nil {
		if len(r.pending) < lookupPending {
			r.pending = append(r.pending, d)
		}
		return
	}
	if until, ok := l.neg[key]; ok {
		if now.Before(until) {
			m.stats.lookupsLimited.Add(1)
			return
		}
		delete(l.neg, key)
	}
	if now.Sub(l.window) >= lookupRateWindow || now.Before(l.window) {
		l.window, l.total = now, 0
		clear(l.perIP)
	}
	ip := addr.IP.String()
	if l.perIP[ip] >= l.maxIP || l.total >= l.maxTotal || len(l.inflight) >= maxLookups {
		m.stats.lookupsLimited.Add(1)
		return
	}
	r := &lookupReq{key: key, addr: addrKey, pending: []datagram{d}}
	if cid != "" {
		r.cid = []byte(cid)
	}
	select {
	case l.reqs <- r:
	default:
		m.stats.lookupsLimited.Add(1)
		return
	}
	l.perIP[ip]++
	l.total++
	l.inflight[key] = r
	m.stats.lookups.Add(1)
}

// lookupDone ends lookup r. A key that was not found is remembered for
// negativeTTL; when the session was found (and restored as parked, see
// adoptStored), the records that waited are routed again and resume it.
func (m *dtlsMux) lookupDone(r *lookupReq, found, missing bool, now time.Time) {
	m.mu.Lock()
	l := m.look
	delete(l.inflight, r.key)
	if missing {
		if len(l.neg) >= maxNegative {
			for k, until := range l.neg {
				if !now.Before(until) {
					delete(l.neg, k)
				}
			}
		}
		if len(l.neg) < maxNegative {
			l.neg[r.key] = now.Add(negativeTTL)
		}
	}
	m.mu.Unlock()
	if found {
		for _, d := range r.pending {
			m.route(d.b, d.from)
		}
	}
}

// detach ends v and returns the records that reached it unread.
func (m *dtlsMux) detach(v *vconn) []datagram {
	m.mu.Lock()
	defer m.mu.Unlock()
	v.closeLocked()
	var out []datagram
	for len(v.in) > 0 {
		out = append(out, <-v.in)
	}
	return out
}

// lookupLoop answers the router's lookups until the server closes.
func (s *Server) lookupLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case r := <-s.mux.look.reqs:
			s.lookup(r)
		}
	}
}

// lookup looks r up in the shared store and takes the session over when
// it is there.
func (s *Server) lookup(r *lookupReq) {
	ctx, cancel := s.background()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, lookupTimeout)
	defer cancelT()
	st := s.cfg.Registrations
	var ps ParkedSession
	var err error
	if r.cid != nil {
		ps, err = st.ParkedByCID(ctx, r.cid)
	} else {
		ps, err = st.ParkedByAddr(ctx, r.addr)
	}
	if err == nil {
		err = s.adoptStored(ctx, ps)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("lwm2m: looking up a DTLS session in the shared store", "addr", r.pending[0].from.String(), "err", err)
	}
	s.mux.lookupDone(r, err == nil, errors.Is(err, ErrNotFound), time.Now())
}

// adoptStored takes over the parked session ps and its stored
// registration: the router knows it as parked afterwards. An error wraps
// ErrNotFound when there is nothing usable to take over.
func (s *Server) adoptStored(ctx context.Context, ps ParkedSession) error {
	_, addrErr := net.ResolveUDPAddr("udp", ps.Addr)
	if addrErr != nil || len(ps.State) == 0 || (len(ps.CID) > 0 && len(ps.CID) != s.mux.cidLen) {
		return fmt.Errorf("lwm2m: stored DTLS session of %q is unusable (addr %q, %d state bytes, Connection ID of %d bytes): %w",
			ps.Endpoint, ps.Addr, len(ps.State), len(ps.CID), ErrNotFound)
	}
	rec, err := s.cfg.Registrations.Registration(ctx, ps.Endpoint)
	if err != nil {
		return err
	}
	reg, err := decodeRegistration(rec)
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrNotFound)
	}
	now := time.Now()
	if !reg.Secure || !reg.Expires.After(now) {
		return fmt.Errorf("lwm2m: stored registration of %q is not a current DTLS one: %w", reg.Endpoint, ErrNotFound)
	}
	data := s.storedDataState(reg.Endpoint)
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return ErrClosed
	default:
	}
	var stale *session
	if old := s.regs[reg.Endpoint]; old != nil {
		stale = s.dropLocked(old, nil)
	}
	r := &registration{Registration: reg, data: data}
	if r.Queue {
		r.AwakeUntil = time.Time{} // asleep until its record is read
	}
	r.sess = s.restoreParked(reg.Endpoint, ps)
	s.regs[reg.Endpoint] = r
	s.byID[reg.ID] = r
	r.timer = time.AfterFunc(reg.Expires.Sub(now), func() { s.expire(r) })
	s.mu.Unlock()
	if stale != nil {
		stale.close()
	}
	if r.sess == nil {
		return fmt.Errorf("lwm2m: stored DTLS session of %q: %w", reg.Endpoint, ErrNotFound)
	}
	s.mux.stats.adopted.Add(1)
	s.log.Debug("lwm2m: took over a DTLS session from the shared store", "endpoint", reg.Endpoint, "addr", ps.Addr)
	return nil
}

// storedDataState is what the observation store says of ep's data
// channel.
func (s *Server) storedDataState(ep string) dataState {
	obs, err := s.cfg.Observations.Observations(ep)
	if err != nil {
		return dataNone
	}
	for _, o := range obs {
		if o.Path == dataPath.String() || o.Path == "/t/d" {
			return dataObserved
		}
	}
	return dataNone
}

// takeBack checks, before it resumes, that the session parked here is the
// one the shared store holds for its endpoint. When another server has
// stored a newer state, the session is taken over from the store instead
// and the records that reached it are routed again; takeBack then reports
// true and the caller stops.
func (s *Server) takeBack(it resumeItem, ep string) bool {
	if !s.cfg.SharedRegistrations || ep == "" {
		return false
	}
	ctx, cancel := s.background()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, lookupTimeout)
	defer cancelT()
	cur, err := s.cfg.Registrations.Parked(ctx, ep)
	if err != nil || bytes.Equal(cur.State, it.p.state) {
		return false // the same state, or nothing newer to take
	}
	pending := s.mux.detach(it.v)
	if err := s.adoptStored(ctx, cur); err != nil {
		s.log.Warn("lwm2m: a parked session was used by another server; taking it over failed", "endpoint", ep, "err", err)
		s.mu.Lock()
		r := s.regs[ep]
		var gone *session
		if r != nil && r.sess == it.p.sess {
			gone = s.dropLocked(r, nil) // its state here is stale: never resume it
		}
		s.mu.Unlock()
		if gone != nil {
			gone.close()
		}
		return true
	}
	s.mux.stats.takenBack.Add(1)
	for _, d := range pending {
		s.mux.route(d.b, d.from)
	}
	return true
}

// renewedElsewhere reports whether r, whose lifetime passed here, was
// renewed on another server sharing the store (the device moved there):
// then r is dropped here only — its session closed, no event — and what
// the store holds for the device (registration, parked session,
// observations) is left to the server that has it.
func (s *Server) renewedElsewhere(r *registration, now time.Time) bool {
	if !s.cfg.SharedRegistrations {
		return false
	}
	ctx, cancel := s.background()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, lookupTimeout)
	defer cancelT()
	rec, err := s.cfg.Registrations.Registration(ctx, r.Endpoint)
	if err != nil || !rec.Expires.After(now) {
		return false
	}
	s.mu.Lock()
	if s.regs[r.Endpoint] != r {
		s.mu.Unlock()
		return true
	}
	gone := s.dropLocked(r, nil)
	s.mu.Unlock()
	if gone != nil {
		gone.close()
	}
	s.log.Debug("lwm2m: a registration renewed on another server dropped here", "endpoint", r.Endpoint)
	return true
}
