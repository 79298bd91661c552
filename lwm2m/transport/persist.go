package transport

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/pion/dtls/v3"
)

// RegistrationStore keeps what a device has set up with the server so that
// it survives a restart, a crash included (LWM-14): registrations and
// parked DTLS sessions. Observations have their own store
// (ObservationStore). With Config.Registrations set, the server writes a
// registration when it is made or updated and deletes it when it ends, and
// writes a parked session when it is parked — not only at a clean shutdown
// — so that after a SIGKILL the device's next record on its old session is
// understood. Listen reads both back (see Server.Listen).
//
// Records are keyed by endpoint; a parked session also carries its
// Connection ID, by which the router finds it. Implementations must be safe
// for concurrent use; Put replaces the endpoint's record; Delete of a
// missing record is not an error. lwm2mtest.RunRegistrationStore is the
// conformance suite.
type RegistrationStore interface {
	PutRegistration(r RegistrationRecord) error
	DeleteRegistration(endpoint string) error
	Registrations() ([]RegistrationRecord, error)

	PutParked(p ParkedSession) error
	DeleteParked(endpoint string) error
	ParkedSessions() ([]ParkedSession, error)

	// The lookups of a server that shares the store with others (CLU-3):
	// a record the router does not know is looked up by its Connection
	// ID, or without one by its source address, and the session and its
	// registration are taken over. Each returns an error wrapping
	// ErrNotFound when there is no such record. ParkedByAddr returns the
	// session parked last at addr when several were.
	Registration(ctx context.Context, endpoint string) (RegistrationRecord, error)
	Parked(ctx context.Context, endpoint string) (ParkedSession, error)
	ParkedByCID(ctx context.Context, cid []byte) (ParkedSession, error)
	ParkedByAddr(ctx context.Context, addr string) (ParkedSession, error)
}

// RegistrationRecord is a registration as a RegistrationStore keeps it.
// Data is the package's own encoding of the registration; a store keeps it
// as it is. Expires lets a store prune registrations nobody renewed.
type RegistrationRecord struct {
	Endpoint string
	Expires  time.Time
	Data     []byte
}

// ParkedSession is a parked DTLS session as a RegistrationStore keeps it.
// State holds the session's keys: store it as carefully as the PSKs.
type ParkedSession struct {
	Endpoint string
	CID      []byte // the Connection ID the device sends; nil without one
	Addr     string // the device's last authenticated address (host:port)
	State    []byte // pion/dtls State.MarshalBinary
	Parked   time.Time
}

// MemoryRegistrationStore is a RegistrationStore in memory (it keeps
// nothing across a restart of the process; for tests and for servers that
// restart only the Server). Safe for concurrent use.
type MemoryRegistrationStore struct {
	mu     sync.Mutex
	regs   map[string]RegistrationRecord
	parked map[string]ParkedSession
}

// NewMemoryRegistrationStore returns an empty MemoryRegistrationStore.
func NewMemoryRegistrationStore() *MemoryRegistrationStore {
	return &MemoryRegistrationStore{regs: map[string]RegistrationRecord{}, parked: map[string]ParkedSession{}}
}

// PutRegistration implements RegistrationStore.
func (m *MemoryRegistrationStore) PutRegistration(r RegistrationRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.Data = slices.Clone(r.Data)
	m.regs[r.Endpoint] = r
	return nil
}

// DeleteRegistration implements RegistrationStore.
func (m *MemoryRegistrationStore) DeleteRegistration(endpoint string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.regs, endpoint)
	return nil
}

// Registrations implements RegistrationStore.
func (m *MemoryRegistrationStore) Registrations() ([]RegistrationRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]RegistrationRecord, 0, len(m.regs))
	for _, r := range m.regs {
		r.Data = slices.Clone(r.Data)
		out = append(out, r)
	}
	return out, nil
}

// PutParked implements RegistrationStore.
func (m *MemoryRegistrationStore) PutParked(p ParkedSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.CID, p.State = slices.Clone(p.CID), slices.Clone(p.State)
	m.parked[p.Endpoint] = p
	return nil
}

// DeleteParked implements RegistrationStore.
func (m *MemoryRegistrationStore) DeleteParked(endpoint string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.parked, endpoint)
	return nil
}

// ParkedSessions implements RegistrationStore.
func (m *MemoryRegistrationStore) ParkedSessions() ([]ParkedSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ParkedSession, 0, len(m.parked))
	for _, p := range m.parked {
		p.CID, p.State = slices.Clone(p.CID), slices.Clone(p.State)
		out = append(out, p)
	}
	return out, nil
}

// Registration implements RegistrationStore.
func (m *MemoryRegistrationStore) Registration(_ context.Context, endpoint string) (RegistrationRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.regs[endpoint]
	if !ok {
		return RegistrationRecord{}, fmt.Errorf("lwm2m: stored registration of %q: %w", endpoint, ErrNotFound)
	}
	r.Data = slices.Clone(r.Data)
	return r, nil
}

// Parked implements RegistrationStore.
func (m *MemoryRegistrationStore) Parked(_ context.Context, endpoint string) (ParkedSession, error) {
	return m.findParked(func(p ParkedSession) bool { return p.Endpoint == endpoint }, "of "+strconv.Quote(endpoint))
}

// ParkedByCID implements RegistrationStore.
func (m *MemoryRegistrationStore) ParkedByCID(_ context.Context, cid []byte) (ParkedSession, error) {
	return m.findParked(func(p ParkedSession) bool { return len(cid) > 0 && bytes.Equal(p.CID, cid) }, fmt.Sprintf("with Connection ID %x", cid))
}

// ParkedByAddr implements RegistrationStore.
func (m *MemoryRegistrationStore) ParkedByAddr(_ context.Context, addr string) (ParkedSession, error) {
	return m.findParked(func(p ParkedSession) bool { return p.Addr == addr }, "at "+addr)
}

// findParked returns the session parked last of those that match (a scan:
// the memory store is for tests and single servers).
func (m *MemoryRegistrationStore) findParked(match func(ParkedSession) bool, what string) (ParkedSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best ParkedSession
	found := false
	for _, p := range m.parked {
		if match(p) && (!found || p.Parked.After(best.Parked)) {
			best, found = p, true
		}
	}
	if !found {
		return ParkedSession{}, fmt.Errorf("lwm2m: parked DTLS session %s: %w", what, ErrNotFound)
	}
	best.CID, best.State = slices.Clone(best.CID), slices.Clone(best.State)
	return best, nil
}

// regRecord is the stored form of a Registration (RegistrationRecord.Data,
// JSON): the address as a string, the object list re-parsed from Links.
type regRecord struct {
	Endpoint   string        `json:"ep"`
	ID         string        `json:"id"`
	TUP        bool          `json:"tup,omitempty"`
	Version    string        `json:"lwm2m,omitempty"`
	Lifetime   time.Duration `json:"lt"`
	Binding    string        `json:"b"`
	Queue      bool          `json:"q,omitempty"`
	Links      string        `json:"links,omitempty"`
	Secure     bool          `json:"secure,omitempty"`
	Addr       string        `json:"addr"`
	Registered time.Time     `json:"registered"`
	Updated    time.Time     `json:"updated"`
	Expires    time.Time     `json:"expires"`
}

func encodeRegistration(r Registration) (RegistrationRecord, error) {
	b, err := json.Marshal(regRecord{
		Endpoint: r.Endpoint, ID: r.ID, TUP: r.TUP, Version: r.Version, Lifetime: r.Lifetime,
		Binding: r.Binding, Queue: r.Queue, Links: r.Links, Secure: r.Secure, Addr: addrString(r.Addr),
		Registered: r.Registered, Updated: r.Updated, Expires: r.Expires,
	})
	return RegistrationRecord{Endpoint: r.Endpoint, Expires: r.Expires, Data: b}, err
}

func decodeRegistration(rec RegistrationRecord) (Registration, error) {
	var d regRecord
	if err := json.Unmarshal(rec.Data, &d); err != nil {
		return Registration{}, fmt.Errorf("lwm2m: stored registration of %q: %w", rec.Endpoint, err)
	}
	if d.Endpoint == "" || d.Endpoint != rec.Endpoint || d.ID == "" {
		return Registration{}, fmt.Errorf("lwm2m: stored registration of %q: endpoint %q, id %q", rec.Endpoint, d.Endpoint, d.ID)
	}
	r := Registration{
		Endpoint: d.Endpoint, ID: d.ID, TUP: d.TUP, Version: d.Version, Lifetime: d.Lifetime,
		Binding: d.Binding, Queue: d.Queue, Links: d.Links, Secure: d.Secure,
		Registered: d.Registered, Updated: d.Updated, Expires: d.Expires,
	}
	if d.Links != "" {
		objs, err := lwm2m.ParseClientObjects([]byte(d.Links))
		if err != nil {
			return Registration{}, fmt.Errorf("lwm2m: stored registration of %q: links: %w", rec.Endpoint, err)
		}
		r.Objects = objs
	}
	if d.Addr != "" {
		a, err := net.ResolveUDPAddr("udp", d.Addr)
		if err != nil {
			return Registration{}, fmt.Errorf("lwm2m: stored registration of %q: address %q: %w", rec.Endpoint, d.Addr, err)
		}
		r.Addr = a
	}
	return r, nil
}

// serializedState mirrors pion/dtls's serialized State, type name and
// fields in order (gob writes both), so that the write sequence number can
// be moved ahead; see reserveState.
type serializedState struct {
	RemoteSequenceNumber  uint64
	HandshakeComplete     bool
	LocalEpoch            uint16
	RemoteEpoch           uint16
	LocalRandom           [32]byte
	RemoteRandom          [32]byte
	CipherSuiteID         uint16
	MasterSecret          []byte
	SequenceNumber        uint64
	SRTPProtectionProfile uint16
	PeerCertificates      [][]byte
	IdentityHint          []byte
	SessionID             []byte
	LocalConnectionID     []byte
	RemoteConnectionID    []byte
	IsClient              bool
	NegotiatedProtocol    string
}

// seqReserve is how many records a resumed session may send before the
// state kept for a crash would reuse a sequence number.
const seqReserve = 1 << 32

// errStateLayout means pion's serialized State has fields serializedState
// does not know (a pion upgrade changed it): the state is not rewritten.
var errStateLayout = errors.New("lwm2m: pion/dtls serialized State has unknown fields; cannot reserve sequence numbers")

// reserveState returns the serialized state st with its write sequence
// number moved n ahead. A resumed session is kept in this form while it
// is live: after a crash the server resumes it from there, and never sends
// a record under a (key, epoch, sequence number) it used before — with AES
// CCM that would reuse a nonce (RFC 6655 §3). The device accepts the gap
// (RFC 6347 §4.1.2.6: only older or repeated numbers are replays).
//
// The state is rewritten through serializedState only when that loses
// nothing: st and its copy through serializedState, both encoded again by
// pion, must be the same bytes (gob's type numbers differ between
// encoders, so st itself cannot be compared).
func reserveState(st []byte, n uint64) ([]byte, error) {
	var p serializedState
	if err := gob.NewDecoder(bytes.NewReader(st)).Decode(&p); err != nil {
		return nil, fmt.Errorf("lwm2m: decoding a DTLS state: %w", err)
	}
	mine, err := encodeState(p)
	if err != nil {
		return nil, err
	}
	a, err := pionRoundTrip(st)
	if err != nil {
		return nil, err
	}
	b, err := pionRoundTrip(mine)
	if err != nil || !bytes.Equal(a, b) {
		return nil, errStateLayout
	}
	if p.SequenceNumber+n >= 1<<48 {
		return nil, errors.New("lwm2m: DTLS sequence numbers exhausted")
	}
	p.SequenceNumber += n
	return encodeState(p)
}

func encodeState(p serializedState) ([]byte, error) {
	var out bytes.Buffer
	err := gob.NewEncoder(&out).Encode(p)
	return out.Bytes(), err
}

// pionRoundTrip decodes and encodes b with pion.
func pionRoundTrip(b []byte) ([]byte, error) {
	var st dtls.State
	if err := st.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("lwm2m: decoding a DTLS state: %w", err)
	}
	return st.MarshalBinary()
}

// saveRegistration writes r to Config.Registrations.
func (s *Server) saveRegistration(r Registration) {
	st := s.cfg.Registrations
	if st == nil {
		return
	}
	rec, err := encodeRegistration(r)
	if err == nil {
		err = st.PutRegistration(rec)
	}
	if err != nil {
		s.log.Warn("lwm2m: storing a registration; it will not survive a restart", "endpoint", r.Endpoint, "err", err)
	}
}

// forgetStored deletes ep's stored parked session and, with reg, its
// stored registration.
func (s *Server) forgetStored(ep string, reg bool) {
	st := s.cfg.Registrations
	if st == nil {
		return
	}
	if err := st.DeleteParked(ep); err != nil {
		s.log.Warn("lwm2m: deleting a stored DTLS session", "endpoint", ep, "err", err)
	}
	if !reg {
		return
	}
	if err := st.DeleteRegistration(ep); err != nil {
		s.log.Warn("lwm2m: deleting a stored registration", "endpoint", ep, "err", err)
	}
}

// saveParked writes the parked session of ep (state as given) to
// Config.Registrations.
func (s *Server) saveParked(ep, cid string, addr net.Addr, state []byte) error {
	st := s.cfg.Registrations
	if st == nil || ep == "" {
		return nil
	}
	p := ParkedSession{Endpoint: ep, Addr: addrString(addr), State: state, Parked: time.Now()}
	if cid != "" {
		p.CID = []byte(cid)
	}
	return st.PutParked(p)
}

// restoreLocked reads Config.Registrations back at Listen: registrations
// whose lifetime has not passed are installed as they were (no events:
// nothing changed for the device), each DTLS one with its parked session
// when one was stored, so that the device's next record on its old
// session resumes it without a handshake. A queue-mode device is taken to
// be asleep. A DTLS registration without a stored session is kept without
// one (requests fail with ErrUnreachable) until the device handshakes
// again and updates or registers. Expired registrations and sessions
// without a registration are deleted. s.mu is held; the sockets are bound.
func (s *Server) restoreLocked(now time.Time) error {
	st := s.cfg.Registrations
	if st == nil {
		return nil
	}
	recs, err := st.Registrations()
	if err != nil {
		return fmt.Errorf("lwm2m: reading stored registrations: %w", err)
	}
	parked, err := st.ParkedSessions()
	if err != nil {
		return fmt.Errorf("lwm2m: reading stored DTLS sessions: %w", err)
	}
	byEP := make(map[string]ParkedSession, len(parked))
	for _, p := range parked {
		byEP[p.Endpoint] = p
	}
	restored := 0
	for _, rec := range recs {
		reg, err := decodeRegistration(rec)
		if err != nil || !reg.Expires.After(now) {
			if err != nil {
				s.log.Warn("lwm2m: dropping a stored registration", "endpoint", rec.Endpoint, "err", err)
			}
			s.forgetStoredLocked(rec.Endpoint)
			continue
		}
		r := &registration{Registration: reg}
		if r.Queue {
			r.AwakeUntil = time.Time{} // asleep until it is heard from
		}
		r.data = s.storedDataState(reg.Endpoint)
		p, hasParked := byEP[reg.Endpoint]
		delete(byEP, reg.Endpoint)
		switch {
		case !reg.Secure && s.udp != nil && reg.Addr != nil:
			sess := s.newSession(false)
			sess.udp, sess.addr, sess.endpoint = s.udp, reg.Addr, reg.Endpoint
			s.udpPeers[reg.Addr.String()] = sess
			sess.ex.setBlock1Max(maxBlock1Body)
			r.sess = sess
		case reg.Secure && hasParked && s.mux != nil:
			r.sess = s.restoreParked(reg.Endpoint, p)
		}
		s.regs[reg.Endpoint] = r
		s.byID[reg.ID] = r
		r.timer = time.AfterFunc(reg.Expires.Sub(now), func() { s.expire(r) })
		restored++
	}
	for ep := range byEP {
		s.forgetStoredLocked(ep)
	}
	if restored > 0 {
		s.log.Info("lwm2m: registrations restored", "registrations", restored)
	}
	return nil
}

// forgetStoredLocked deletes ep's stored records while s.mu is held (at
// Listen, before anything else uses the store).
func (s *Server) forgetStoredLocked(ep string) {
	_ = s.cfg.Registrations.DeleteParked(ep)
	_ = s.cfg.Registrations.DeleteRegistration(ep)
}

// restoreParked makes p a parked session of the router again, or returns
// nil when it is unusable.
func (s *Server) restoreParked(ep string, p ParkedSession) *session {
	addr, err := net.ResolveUDPAddr("udp", p.Addr)
	if err != nil || len(p.State) == 0 || (len(p.CID) > 0 && len(p.CID) != s.mux.cidLen) {
		s.log.Warn("lwm2m: dropping a stored DTLS session", "endpoint", ep, "addr", p.Addr, "cid_len", len(p.CID))
		_ = s.cfg.Registrations.DeleteParked(ep)
		return nil
	}
	sess := s.newSession(true)
	sess.identity, sess.endpoint = ep, ep
	sess.parked, sess.addr = true, addr
	pc := &parkedConn{sess: sess, state: p.State, cid: string(p.CID), addrKey: addr.String(), addr: addr}
	sess.pc = pc
	s.dtlsSess[sess] = struct{}{}
	s.mux.restore(pc)
	return sess
}
