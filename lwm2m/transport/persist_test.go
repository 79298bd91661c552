package transport

import (
	"bytes"
	"context"
	"encoding/gob"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/pion/dtls/v3"
	"github.com/stretchr/testify/require"
)

// crashStore is a RegistrationStore that outlives a Server, as a file
// does; freeze makes it ignore every later write, so nothing a dying
// server does after its "crash" can help the next one.
type crashStore struct {
	*MemoryRegistrationStore
	frozen atomic.Bool
	puts   atomic.Int64
}

func (c *crashStore) PutRegistration(r RegistrationRecord) error {
	if c.frozen.Load() {
		return nil
	}
	return c.MemoryRegistrationStore.PutRegistration(r)
}

func (c *crashStore) DeleteRegistration(ep string) error {
	if c.frozen.Load() {
		return nil
	}
	return c.MemoryRegistrationStore.DeleteRegistration(ep)
}

func (c *crashStore) PutParked(p ParkedSession) error {
	if c.frozen.Load() {
		return nil
	}
	c.puts.Add(1)
	return c.MemoryRegistrationStore.PutParked(p)
}

func (c *crashStore) DeleteParked(ep string) error {
	if c.frozen.Load() {
		return nil
	}
	return c.MemoryRegistrationStore.DeleteParked(ep)
}

// crash stops s as a SIGKILL would, as far as the network and the store
// can tell: the stores are frozen and the sockets closed before anything
// else (so no close_notify leaves), then the goroutines are reaped.
func crash(t *testing.T, s *Server, stores ...*crashStore) {
	t.Helper()
	for _, st := range stores {
		st.frozen.Store(true)
	}
	s.mu.Lock()
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.mux != nil {
		_ = s.mux.conn.Close()
	}
	s.mu.Unlock()
	require.NoError(t, s.Close())
}

// LWM-14: a sleeping device's DTLS session is written when it is parked;
// after a crash a new server on the same store and address understands
// the device's next record on its old session (same session, same
// Connection ID): no handshake, the registration and its observation are
// still there. The device is then heard from — its session resumed and
// live — when the server crashes a second time: the third server resumes
// it too, from the state stored at the resume with its sequence numbers
// reserved, and the device (pion, with replay protection) takes its
// answers.
func TestSessionSurvivesCrash(t *testing.T) {
	const ep = "868333030000060"
	regs := &crashStore{MemoryRegistrationStore: NewMemoryRegistrationStore()}
	obs := NewMemoryObservationStore()
	cfg := Config{ParkSessions: true, AwakeWindow: 300 * time.Millisecond, DisableUDP: true, Registrations: regs, Observations: obs}
	s1, rec1 := runServer(t, cfg, keys(ep))
	c := newClient(t, ClientConfig{Server: s1.DTLSAddr().String(), Endpoint: ep, Key: testKey, Queue: true, Objects: "</19/0>,</19/1>"})
	c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: lwm2m.FormatOpaque, Payload: []byte{1}}, nil }})
	c.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("awake")}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	reg1 := rec1.wait(t, EventRegistered, ep, 1).Registration
	waitFor(t, "the data channel to be observed", func() bool { return c.Observed("/19/0/0") })
	waitFor(t, "the session to be parked", func() bool { return s1.ParkedSessions() == 1 })
	parked, err := regs.ParkedSessions()
	require.NoError(t, err)
	require.Len(t, parked, 1, "the parked session is stored at once, not at shutdown")
	require.Equal(t, ep, parked[0].Endpoint)
	require.Len(t, parked[0].CID, 8, "with the Connection ID the device sends")
	dtlsAddr := s1.DTLSAddr().String()
	crash(t, s1, regs)

	regs.frozen.Store(false)
	cfg.DTLSAddr = dtlsAddr
	s2, rec2 := runServer(t, cfg, keys(ep))
	reg2, ok := s2.Registration(ep)
	require.True(t, ok, "the registration is restored at Listen")
	require.Equal(t, reg1.ID, reg2.ID)
	require.Equal(t, 1, s2.ParkedSessions(), "the parked session is restored at Listen")
	_, err = s2.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.ErrorIs(t, err, ErrSleeping, "a restored queue-mode device is asleep")

	require.NoError(t, c.Update(ctxT(t)), "the device's Update on its old session is understood")
	rec2.wait(t, EventUpdated, ep, 1)
	st := s2.DTLSStats()
	require.Zero(t, st.HandshakesStarted, "no handshake: the session resumed (%+v)", st)
	require.Equal(t, 0, rec2.count(EventRegistered, ep), "no new registration")
	got, err := s2.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.NoError(t, err, "the server reaches the device on the restored session")
	require.Equal(t, "awake", string(got.Payload))
	o, err := obs.Observations(ep)
	require.NoError(t, err)
	require.Len(t, o, 1, "its observation is still there")
	before := rec2.count(EventUplink, ep)
	require.NoError(t, c.Notify(ctxT(t), "/19/0/0", Content{Format: lwm2m.FormatOpaque, Payload: []byte{2}}))
	waitFor(t, "the notification on the restored observation", func() bool { return rec2.count(EventUplink, ep) > before })

	// Crash while the device is awake (its session live, never parked again).
	require.True(t, s2.liveConn(ep))
	crash(t, s2, regs)
	regs.frozen.Store(false)
	s3, rec3 := runServer(t, cfg, keys(ep))
	require.NoError(t, c.Update(ctxT(t)), "resumed from the state stored at the last resume")
	rec3.wait(t, EventUpdated, ep, 1)
	got, err = s3.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.NoError(t, err, "the device takes records numbered past the reserve")
	require.Equal(t, "awake", string(got.Payload))
	require.Zero(t, s3.DTLSStats().HandshakesStarted)

	// A de-registration deletes what was stored.
	require.NoError(t, c.Deregister(ctxT(t)))
	rec3.wait(t, EventDeregistered, ep, 1)
	rs, _ := regs.Registrations()
	ps, _ := regs.ParkedSessions()
	require.Empty(t, rs)
	require.Empty(t, ps)
}

// runServer is startServer for servers a test may crash: the cleanup
// tolerates a server already closed.
func runServer(t *testing.T, cfg Config, ks KeyStore) (*Server, *recorder) {
	t.Helper()
	if cfg.DTLSAddr == "" {
		cfg.DTLSAddr = "127.0.0.1:0"
	}
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	if os.Getenv("LWM2M_DEBUG") != "" && cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rec := newRecorder()
	s, err := New(cfg, ks, rec)
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s, rec
}

// Registrations whose lifetime passed while the server was down are not
// restored, and their records are deleted; a stored session without a
// registration is deleted too.
func TestRestoreDropsExpired(t *testing.T) {
	st := NewMemoryRegistrationStore()
	now := time.Now()
	live, err := encodeRegistration(Registration{Endpoint: "live", ID: "a1", Lifetime: time.Hour, Binding: "U", Links: "</3/0>", Expires: now.Add(time.Hour)})
	require.NoError(t, err)
	dead, err := encodeRegistration(Registration{Endpoint: "dead", ID: "b2", Lifetime: time.Hour, Binding: "U", Expires: now.Add(-time.Second)})
	require.NoError(t, err)
	require.NoError(t, st.PutRegistration(live))
	require.NoError(t, st.PutRegistration(dead))
	require.NoError(t, st.PutParked(ParkedSession{Endpoint: "orphan", Addr: "127.0.0.1:9", State: []byte{1}}))
	require.NoError(t, st.PutRegistration(RegistrationRecord{Endpoint: "junk", Expires: now.Add(time.Hour), Data: []byte("{")}))

	s, _ := runServer(t, Config{DisableDTLS: true, Registrations: st}, nil)
	r, ok := s.Registration("live")
	require.True(t, ok)
	require.Equal(t, "a1", r.ID)
	_, has3 := r.Objects.Object(3)
	require.True(t, has3, "the object list is parsed again")
	_, ok = s.Registration("dead")
	require.False(t, ok, "expired while the server was down")
	rs, _ := st.Registrations()
	require.Len(t, rs, 1)
	ps, _ := st.ParkedSessions()
	require.Empty(t, ps)
	require.NoError(t, s.Close())
}

// reserveState moves only the write sequence number of a pion state, and
// refuses bytes that are not one.
func TestReserveState(t *testing.T) {
	in := serializedState{HandshakeComplete: true, LocalEpoch: 1, RemoteEpoch: 1, CipherSuiteID: 0xC0A8,
		MasterSecret: bytes.Repeat([]byte{7}, 48), SequenceNumber: 5, LocalConnectionID: []byte("abcdefgh")}
	var b bytes.Buffer
	require.NoError(t, gob.NewEncoder(&b).Encode(in))
	var st dtls.State
	require.NoError(t, st.UnmarshalBinary(b.Bytes()), "the mirror encodes what pion decodes")
	out, err := reserveState(b.Bytes(), 1000)
	require.NoError(t, err)
	var got serializedState
	require.NoError(t, gob.NewDecoder(bytes.NewReader(out)).Decode(&got))
	want := in
	want.SequenceNumber = 1005
	require.Equal(t, want, got)

	_, err = reserveState([]byte("not gob"), 1)
	require.Error(t, err)
}

// The stored forms read back at Listen never panic the server, whatever a
// damaged store holds; a DTLS state reserveState takes comes back the same
// but for its write sequence number, seqReserve ahead and still below
// 2^48, and pion reads it.
func FuzzStoredRecords(f *testing.F) {
	rec, _ := encodeRegistration(Registration{Endpoint: "ep", ID: "a1", Links: "</3/0>,</19/0>", Binding: "UQ", Queue: true})
	f.Add(rec.Data)
	var b bytes.Buffer
	_ = gob.NewEncoder(&b).Encode(serializedState{HandshakeComplete: true, CipherSuiteID: 0xC0A8, MasterSecret: make([]byte, 48), SequenceNumber: 3})
	f.Add(b.Bytes())
	for _, seq := range []uint64{1<<48 - seqReserve - 1, 1<<48 - seqReserve} { // the last one reserveState takes, the first it refuses
		b.Reset()
		_ = gob.NewEncoder(&b).Encode(serializedState{HandshakeComplete: true, CipherSuiteID: 0xC0A8, MasterSecret: make([]byte, 48), SequenceNumber: seq})
		f.Add(bytes.Clone(b.Bytes()))
	}
	f.Add([]byte(`{"ep":"ep","id":"x","addr":"[::1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := decodeRegistration(RegistrationRecord{Endpoint: "ep", Data: data}); err == nil && (r.Endpoint != "ep" || r.ID == "") {
			t.Fatalf("decodeRegistration accepted %q as %+v", data, r)
		}
		out, err := reserveState(data, seqReserve)
		if err != nil {
			return
		}
		var in, got serializedState
		if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&in); err != nil {
			t.Fatalf("reserveState took %q, which does not decode: %v", data, err)
		}
		if err := gob.NewDecoder(bytes.NewReader(out)).Decode(&got); err != nil {
			t.Fatalf("reserveState(%q) wrote %q, which does not decode: %v", data, out, err)
		}
		if got.SequenceNumber != in.SequenceNumber+seqReserve || got.SequenceNumber >= 1<<48 {
			t.Fatalf("reserveState: sequence number %d became %d; want %d + %d, below 2^48", in.SequenceNumber, got.SequenceNumber, in.SequenceNumber, uint64(seqReserve))
		}
		got.SequenceNumber = in.SequenceNumber
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("reserveState changed more than the sequence number: %+v became %+v", in, got)
		}
		if _, err := pionRoundTrip(out); err != nil {
			t.Fatalf("pion cannot read what reserveState wrote: %v", err)
		}
	})
}
