package transport

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/stretchr/testify/require"
)

// balancer is a UDP load balancer in front of servers, as a cluster has:
// each device address gets its own upstream socket (the address the
// servers see), and every datagram goes to the current backend, which the
// test switches. It counts the ClientHellos devices send: a handshake, as
// the device side sees it.
type balancer struct {
	front   *net.UDPConn
	mu      sync.Mutex
	backend *net.UDPAddr
	peers   map[string]*net.UDPConn
	hellos  atomic.Int64
	wg      sync.WaitGroup
}

func newBalancer(t *testing.T, backend net.Addr) *balancer {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	b := &balancer{front: front, peers: map[string]*net.UDPConn{}}
	b.to(backend)
	b.wg.Add(1)
	go b.run()
	t.Cleanup(func() {
		_ = front.Close()
		b.mu.Lock()
		for _, up := range b.peers {
			_ = up.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

// to sends every later datagram to backend.
func (b *balancer) to(backend net.Addr) {
	b.mu.Lock()
	b.backend = backend.(*net.UDPAddr)
	b.mu.Unlock()
}

func (b *balancer) run() {
	defer b.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := b.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		d := buf[:n]
		if len(d) > recordHeaderLen && d[0] == ctHandshake && d[3] == 0 && d[4] == 0 && d[recordHeaderLen] == hsClientHello {
			b.hellos.Add(1)
		}
		b.mu.Lock()
		up := b.peers[from.String()]
		if up == nil {
			up, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.mu.Unlock()
				continue
			}
			b.peers[from.String()] = up
			b.wg.Add(1)
			go b.back(up, from)
		}
		to := b.backend
		b.mu.Unlock()
		_, _ = up.WriteToUDP(d, to)
	}
}

// back returns what any server sends to the device's upstream socket.
func (b *balancer) back(up *net.UDPConn, device *net.UDPAddr) {
	defer b.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, _, err := up.ReadFromUDP(buf)
		if err != nil {
			return
		}
		_, _ = b.front.WriteToUDP(buf[:n], device)
	}
}

// countingStore counts the lookups of a shared store.
type countingStore struct {
	*MemoryRegistrationStore
	byCID, byAddr atomic.Int64
}

func (c *countingStore) ParkedByCID(ctx context.Context, cid []byte) (ParkedSession, error) {
	c.byCID.Add(1)
	return c.MemoryRegistrationStore.ParkedByCID(ctx, cid)
}

func (c *countingStore) ParkedByAddr(ctx context.Context, addr string) (ParkedSession, error) {
	c.byAddr.Add(1)
	return c.MemoryRegistrationStore.ParkedByAddr(ctx, addr)
}

// clusterConfig is the configuration of servers that share their stores.
func clusterConfig(regs RegistrationStore, obs ObservationStore) Config {
	return Config{ParkSessions: true, AwakeWindow: 300 * time.Millisecond, DisableUDP: true,
		Registrations: regs, Observations: obs, SharedRegistrations: true}
}

// CLU-3: a device parks on server 1, server 1 stops, and the device's
// next record — on the same DTLS session, through the balancer — goes to
// server 2, which finds the session in the shared store by its Connection
// ID (or, without one, by its address) and answers: no handshake on
// either side, the registration and its observation are there.
func TestSessionMovesToAnotherServer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		noCID bool
	}{{"by Connection ID", false}, {"by address", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const ep = "868333030000070"
			regs := &countingStore{MemoryRegistrationStore: NewMemoryRegistrationStore()}
			obs := NewMemoryObservationStore()
			cfg := clusterConfig(regs, obs)
			s1, rec1 := runServer(t, cfg, keys(ep))
			s2, rec2 := runServer(t, cfg, keys(ep))
			lb := newBalancer(t, s1.DTLSAddr())
			c := newClient(t, ClientConfig{Server: lb.front.LocalAddr().String(), Endpoint: ep, Key: testKey, Queue: true,
				Objects: "</19/0>,</19/1>", NoConnectionID: tc.noCID})
			c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: lwm2m.FormatOpaque, Payload: []byte{1}}, nil }})
			c.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("awake")}, nil }})
			require.NoError(t, c.Connect(ctxT(t)))
			require.NoError(t, c.Register(ctxT(t)))
			reg1 := rec1.wait(t, EventRegistered, ep, 1).Registration
			waitFor(t, "the data channel to be observed", func() bool { return c.Observed("/19/0/0") })
			waitFor(t, "the session to be parked on server 1", func() bool { return s1.ParkedSessions() == 1 })
			hellos := lb.hellos.Load() // the handshake with server 1: a ClientHello and its retry with the cookie
			require.Positive(t, hellos)
			require.NoError(t, s1.Close())

			lb.to(s2.DTLSAddr())
			_, ok := s2.Registration(ep)
			require.False(t, ok, "server 2 knows nothing of the device before its record")
			require.NoError(t, c.Update(ctxT(t)), "the device's Update on its session is answered by server 2")
			rec2.wait(t, EventUpdated, ep, 1)
			reg2, ok := s2.Registration(ep)
			require.True(t, ok)
			require.Equal(t, reg1.ID, reg2.ID, "the same registration")
			st := s2.DTLSStats()
			require.Zero(t, st.HandshakesStarted, "no handshake on server 2 (%+v)", st)
			require.Equal(t, uint64(1), st.SessionsAdopted, "%+v", st)
			require.Equal(t, hellos, lb.hellos.Load(), "the device sent no ClientHello")
			require.Equal(t, 0, rec2.count(EventRegistered, ep), "no new registration")
			if tc.noCID {
				require.Positive(t, regs.byAddr.Load())
				require.Zero(t, regs.byCID.Load())
			} else {
				require.Equal(t, int64(1), regs.byCID.Load(), "one lookup")
			}

			got, err := s2.Read(ctxT(t), ep, "/3/0/0", cfNone)
			require.NoError(t, err, "server 2 reaches the device on the session")
			require.Equal(t, "awake", string(got.Payload))
			before := rec2.count(EventUplink, ep)
			require.NoError(t, c.Notify(ctxT(t), "/19/0/0", Content{Format: lwm2m.FormatOpaque, Payload: []byte{2}}))
			waitFor(t, "the notification on the observation server 1 made", func() bool { return rec2.count(EventUplink, ep) > before })
			waitFor(t, "the session to be parked on server 2", func() bool { return s2.ParkedSessions() == 1 })
			require.NoError(t, c.Update(ctxT(t)), "and it parks and resumes on server 2 as on any")
			require.Equal(t, hellos, lb.hellos.Load())
		})
	}
}

// CLU-3: a device that moved to server 2 and back finds server 1 with its
// session still parked, from before server 2 used it. Server 1 resumes it
// from the state server 2 stored, not its own: with its own it would send
// sequence numbers server 2 sent already (the device drops them as
// replays, and AES-CCM would reuse nonces), and an Update would time out.
func TestSessionTakenBackFromStore(t *testing.T) {
	const ep = "868333030000071"
	regs := NewMemoryRegistrationStore()
	cfg := clusterConfig(regs, NewMemoryObservationStore())
	s1, rec1 := runServer(t, cfg, keys(ep))
	s2, rec2 := runServer(t, cfg, keys(ep))
	lb := newBalancer(t, s1.DTLSAddr())
	c := newClient(t, ClientConfig{Server: lb.front.LocalAddr().String(), Endpoint: ep, Key: testKey, Queue: true,
		Objects: "</3/0>", Transmission: Transmission{AckTimeout: time.Second, MaxRetransmit: 1}})
	c.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("awake")}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	rec1.wait(t, EventRegistered, ep, 1)
	waitFor(t, "the session to be parked on server 1", func() bool { return s1.ParkedSessions() == 1 })
	hellos := lb.hellos.Load()

	lb.to(s2.DTLSAddr())
	require.NoError(t, c.Update(ctxT(t)))
	rec2.wait(t, EventUpdated, ep, 1)
	for range 3 { // server 2 sends records numbered after server 1's
		_, err := s2.Read(ctxT(t), ep, "/3/0/0", cfNone)
		require.NoError(t, err)
	}
	waitFor(t, "the session to be parked on server 2", func() bool { return s2.ParkedSessions() == 1 })

	lb.to(s1.DTLSAddr())
	require.NoError(t, c.Update(ctxT(t)), "server 1 answers on the session server 2 moved on")
	rec1.wait(t, EventUpdated, ep, 1)
	got, err := s1.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.NoError(t, err)
	require.Equal(t, "awake", string(got.Payload))
	st := s1.DTLSStats()
	require.Equal(t, uint64(1), st.SessionsTakenBack, "%+v", st)
	require.Equal(t, uint64(1), st.HandshakesStarted, "only the first handshake")
	require.Equal(t, hellos, lb.hellos.Load(), "the device sent no ClientHello")
}

// The router's lookups are bounded (adopt.go): one in flight per key with
// a few records waiting, a source address's lookups a second capped, a
// miss remembered for negativeTTL, the lookups in flight capped.
func TestLookupBounds(t *testing.T) {
	m := &dtlsMux{cidLen: 8, look: newStoreLookup(lookupsPerIP, lookupsPerSecond)}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	attacker := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	record := func(cid []byte) []byte {
		b := []byte{ctCID, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1}
		b = append(b, cid...)
		return append(b, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
	}
	send := func(from *net.UDPAddr, cid []byte, at time.Time) {
		m.lookupLocked(record(cid), string(cid), from.String(), from, at)
	}
	randomCID := func() []byte { b := make([]byte, 8); _, _ = rand.Read(b); return b }

	// one key: one lookup, lookupPending records wait for it
	known := randomCID()
	for range 10 {
		send(attacker, known, now)
	}
	require.Len(t, m.look.reqs, 1)
	require.Len(t, (<-m.look.reqs).pending, lookupPending)

	// a spray of random Connection IDs from one address: lookupsPerIP
	for range 1000 {
		send(attacker, randomCID(), now)
	}
	require.Len(t, m.look.reqs, lookupsPerIP-1, "the first lookup counts too")
	require.Equal(t, uint64(lookupsPerIP), m.stats.lookups.Load())
	require.Equal(t, uint64(1000-(lookupsPerIP-1)), m.stats.lookupsLimited.Load())
	for len(m.look.reqs) > 0 {
		r := <-m.look.reqs
		m.lookupDone(r, false, true, now)
	}
	// a miss is not looked up again for negativeTTL, even in a new window
	later := now.Add(2 * lookupRateWindow)
	m.mu.Lock()
	r := m.look.inflight["c"+string(known)]
	m.mu.Unlock()
	require.NotNil(t, r)
	m.lookupDone(r, false, true, now)
	send(attacker, known, later)
	require.Empty(t, m.look.reqs, "a recent miss")
	send(attacker, known, now.Add(negativeTTL+time.Second))
	require.Len(t, m.look.reqs, 1, "looked up again after negativeTTL")
	<-m.look.reqs

	// another source is not held up by the first; records that cannot
	// belong to a session are never looked up
	other := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 4000}
	send(other, randomCID(), later)
	require.Len(t, m.look.reqs, 1)
	<-m.look.reqs
	alert := []byte{21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 40}
	m.lookupLocked(alert, "", other.String(), other, later)
	epoch0 := []byte{ctAppData, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1}
	m.lookupLocked(epoch0, "", other.String(), other, later)
	notDTLS := record(randomCID())
	notDTLS[2] = 0xff
	m.lookupLocked(notDTLS, string(notDTLS[11:19]), other.String(), other, later)
	require.Empty(t, m.look.reqs)

	// the lookups in flight are capped, whatever the sources
	start := now.Add(time.Hour)
	for i := range maxLookups + 50 {
		from := &net.UDPAddr{IP: net.IPv4(198, 51, byte(i>>8), byte(i)), Port: 1}
		send(from, randomCID(), start)
	}
	m.mu.Lock()
	inflight := len(m.look.inflight)
	m.mu.Unlock()
	require.Equal(t, maxLookups, inflight)

	// the limits are the configuration's: all sources together
	m = &dtlsMux{cidLen: 8, look: newStoreLookup(1000, 20)}
	for i := range 50 {
		send(&net.UDPAddr{IP: net.IPv4(203, 0, 113, byte(i)), Port: 1}, randomCID(), now)
	}
	require.Len(t, m.look.reqs, 20, "StoreLookupsPerSecond")
	// and one source (all devices behind one balancer's address)
	m = &dtlsMux{cidLen: 8, look: newStoreLookup(100, 2048)}
	for range 150 {
		send(attacker, randomCID(), now)
	}
	require.Len(t, m.look.reqs, 100, "StoreLookupsPerSource")
}

// A spray of records with random Connection IDs at a real server with a
// shared store costs a bounded number of store queries, and opens nothing.
func TestLookupSprayCostsFewQueries(t *testing.T) {
	regs := &countingStore{MemoryRegistrationStore: NewMemoryRegistrationStore()}
	s, _ := runServer(t, clusterConfig(regs, NewMemoryObservationStore()), keys("x"))
	conn, err := net.DialUDP("udp", nil, s.DTLSAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer conn.Close()
	const sent = 500
	for range sent {
		b := []byte{ctCID, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1}
		cid := make([]byte, 8)
		_, _ = rand.Read(cid)
		b = append(append(b, cid...), 0, 4, 1, 2, 3, 4)
		_, err := conn.Write(b)
		require.NoError(t, err)
	}
	waitFor(t, "every record to be counted", func() bool {
		st := s.DTLSStats()
		// a socket may drop a few; the workers query the store after
		// the router counted the lookup
		return st.StoreLookups+st.StoreLookupsLimited >= sent-50 && int64(st.StoreLookups) == regs.byCID.Load()
	})
	st := s.DTLSStats()
	require.LessOrEqual(t, st.StoreLookups, uint64(sent/5), "%+v", st)
	require.Zero(t, st.SessionsAdopted)
	require.Zero(t, s.ParkedSessions())
}

// CLU-3: when a registration's lifetime passes on the server the device
// left, while the device renewed it on another, the first server drops it
// quietly — no de-registration event, nothing deleted from the shared
// store — and the device goes on with the other.
func TestExpiryLeavesRenewedElsewhere(t *testing.T) {
	const ep = "868333030000072"
	regs := NewMemoryRegistrationStore()
	obs := NewMemoryObservationStore()
	cfg := clusterConfig(regs, obs)
	s1, rec1 := runServer(t, cfg, keys(ep))
	s2, rec2 := runServer(t, cfg, keys(ep))
	lb := newBalancer(t, s1.DTLSAddr())
	c := newClient(t, ClientConfig{Server: lb.front.LocalAddr().String(), Endpoint: ep, Key: testKey, Queue: true,
		Objects: "</19/0>", Lifetime: 3 * time.Second})
	c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: lwm2m.FormatOpaque, Payload: []byte{1}}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	rec1.wait(t, EventRegistered, ep, 1)
	waitFor(t, "the data channel to be observed", func() bool { return c.Observed("/19/0/0") })
	waitFor(t, "the session to be parked on server 1", func() bool { return s1.ParkedSessions() == 1 })
	lb.to(s2.DTLSAddr())
	require.NoError(t, c.Update(ctxT(t)))
	rec2.wait(t, EventUpdated, ep, 1)

	waitFor(t, "server 1 to drop the registration it holds", func() bool { _, ok := s1.Registration(ep); return !ok })
	require.Zero(t, rec1.count(EventDeregistered, ep), "no event: the device is registered, elsewhere")
	_, err := regs.Registration(context.Background(), ep)
	require.NoError(t, err, "the shared registration is left alone")
	o, err := obs.Observations(ep)
	require.NoError(t, err)
	require.Len(t, o, 1, "and so is its observation")
	require.NoError(t, c.Update(ctxT(t)))
	rec2.wait(t, EventUpdated, ep, 2)
	_, ok := s2.Registration(ep)
	require.True(t, ok)
}

// Whatever a datagram holds, the router's lookup never panics and looks
// up only DTLS 1.2 records that can belong to an established session.
func FuzzLookupRecord(f *testing.F) {
	f.Add([]byte{ctCID, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0})
	f.Add([]byte{ctAppData, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0})
	f.Add([]byte{ctHandshake, 0xfe, 0xfd, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := &dtlsMux{cidLen: 8, look: newStoreLookup(lookupsPerIP, lookupsPerSecond)}
		from := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}
		cid := ""
		if len(data) >= 13+8 && data[0] == ctCID {
			cid = string(data[11:19])
		}
		m.lookupLocked(data, cid, from.String(), from, time.Unix(0, 0))
		if len(m.look.reqs) == 0 {
			return
		}
		if data[1] != 0xfe || data[2] != 0xfd || (cid == "" && (data[0] != ctAppData || data[3]|data[4] == 0)) {
			t.Fatalf("looked up % x", data)
		}
	})
}
