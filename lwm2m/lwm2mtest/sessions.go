package lwm2mtest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
)

// RunSessionStore checks that a SessionStore keeps, replaces, returns and
// deletes DTLS sessions as transport.SessionStore documents, keys and values
// being arbitrary bytes, and that it keeps no reference to the caller's
// slices.
func RunSessionStore(t *testing.T, newStore func(t *testing.T) transport.SessionStore) {
	t.Run("missing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GetSession([]byte{1}); !errors.Is(err, transport.ErrNotFound) {
			t.Fatalf("GetSession(missing) error = %v, want transport.ErrNotFound", err)
		}
		if err := s.DeleteSession([]byte{1}); err != nil {
			t.Fatalf("DeleteSession(missing) = %v, want nil", err)
		}
	})
	t.Run("put get replace delete", func(t *testing.T) {
		s := newStore(t)
		id := []byte{0x00, 0xff, 0x10, 0x00} // binary, with NULs
		v := []byte(`{"id":"AP8QAA==","secret":"c2VjcmV0"}`)
		if err := s.PutSession(id, v); err != nil {
			t.Fatalf("PutSession = %v", err)
		}
		v[0] = 'X' // the store must have copied it
		got, err := s.GetSession(id)
		if err != nil || !bytes.HasPrefix(got, []byte(`{"id"`)) {
			t.Fatalf("GetSession = %q, %v; want the value put", got, err)
		}
		if _, err := s.GetSession(id[:3]); !errors.Is(err, transport.ErrNotFound) {
			t.Fatalf("GetSession(prefix of a key) error = %v, want transport.ErrNotFound", err)
		}
		if err := s.PutSession(id, []byte("second")); err != nil {
			t.Fatalf("PutSession(replace) = %v", err)
		}
		if got, err := s.GetSession(id); err != nil || string(got) != "second" {
			t.Fatalf("GetSession after replace = %q, %v; want %q", got, err, "second")
		}
		if err := s.DeleteSession(id); err != nil {
			t.Fatalf("DeleteSession = %v", err)
		}
		if _, err := s.GetSession(id); !errors.Is(err, transport.ErrNotFound) {
			t.Fatalf("GetSession after delete error = %v, want transport.ErrNotFound", err)
		}
	})
	t.Run("many", func(t *testing.T) {
		s := newStore(t)
		for i := range 50 {
			if err := s.PutSession([]byte{byte(i), 1}, []byte{byte(i)}); err != nil {
				t.Fatalf("PutSession(%d) = %v", i, err)
			}
		}
		for i := range 50 {
			got, err := s.GetSession([]byte{byte(i), 1})
			if err != nil || len(got) != 1 || got[0] != byte(i) {
				t.Fatalf("GetSession(%d) = %v, %v; want [%d]", i, got, err, i)
			}
		}
	})
}

// RunRegistrationStore checks that a RegistrationStore keeps, replaces,
// lists and deletes registrations and parked DTLS sessions by endpoint as
// transport.RegistrationStore documents.
func RunRegistrationStore(t *testing.T, newStore func(t *testing.T) transport.RegistrationStore) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	t.Run("empty", func(t *testing.T) {
		s := newStore(t)
		if rs, err := s.Registrations(); err != nil || len(rs) != 0 {
			t.Fatalf("Registrations() of an empty store = %v, %v; want none", rs, err)
		}
		if ps, err := s.ParkedSessions(); err != nil || len(ps) != 0 {
			t.Fatalf("ParkedSessions() of an empty store = %v, %v; want none", ps, err)
		}
		if err := s.DeleteRegistration("nobody"); err != nil {
			t.Fatalf("DeleteRegistration(missing) = %v, want nil", err)
		}
		if err := s.DeleteParked("nobody"); err != nil {
			t.Fatalf("DeleteParked(missing) = %v, want nil", err)
		}
	})
	t.Run("registrations", func(t *testing.T) {
		s := newStore(t)
		a := transport.RegistrationRecord{Endpoint: "868333030000001", Expires: t0, Data: []byte(`{"ep":"868333030000001"}`)}
		b := transport.RegistrationRecord{Endpoint: "868333030000002", Expires: t0.Add(time.Hour), Data: []byte{0, 1, 2}}
		for _, r := range []transport.RegistrationRecord{a, b} {
			if err := s.PutRegistration(r); err != nil {
				t.Fatalf("PutRegistration(%s) = %v", r.Endpoint, err)
			}
		}
		a.Data = []byte("replaced")
		a.Expires = t0.Add(2 * time.Hour)
		if err := s.PutRegistration(a); err != nil {
			t.Fatalf("PutRegistration(replace) = %v", err)
		}
		rs, err := s.Registrations()
		if err != nil {
			t.Fatalf("Registrations() = %v", err)
		}
		slices.SortFunc(rs, func(x, y transport.RegistrationRecord) int { return strings.Compare(x.Endpoint, y.Endpoint) })
		if len(rs) != 2 || string(rs[0].Data) != "replaced" || !rs[0].Expires.Equal(a.Expires) ||
			!bytes.Equal(rs[1].Data, b.Data) || !rs[1].Expires.Equal(b.Expires) {
			t.Fatalf("Registrations() = %+v; want %+v and %+v", rs, a, b)
		}
		if err := s.DeleteRegistration(a.Endpoint); err != nil {
			t.Fatalf("DeleteRegistration = %v", err)
		}
		if rs, _ := s.Registrations(); len(rs) != 1 || rs[0].Endpoint != b.Endpoint {
			t.Fatalf("Registrations() after delete = %+v; want only %s", rs, b.Endpoint)
		}
	})
	t.Run("parked sessions", func(t *testing.T) {
		s := newStore(t)
		p := transport.ParkedSession{Endpoint: "868333030000001", CID: []byte{0, 1, 2, 3, 4, 5, 6, 7},
			Addr: "[::1]:40000", State: []byte{0x4a, 0, 0xff}, Parked: t0}
		q := transport.ParkedSession{Endpoint: "868333030000002", Addr: "127.0.0.1:5", State: []byte{1}, Parked: t0}
		for _, x := range []transport.ParkedSession{p, q} {
			if err := s.PutParked(x); err != nil {
				t.Fatalf("PutParked(%s) = %v", x.Endpoint, err)
			}
		}
		p.State = []byte{9, 9}
		p.Addr = "127.0.0.1:40001"
		p.Parked = t0.Add(time.Minute)
		if err := s.PutParked(p); err != nil {
			t.Fatalf("PutParked(replace) = %v", err)
		}
		ps, err := s.ParkedSessions()
		if err != nil {
			t.Fatalf("ParkedSessions() = %v", err)
		}
		slices.SortFunc(ps, func(x, y transport.ParkedSession) int { return strings.Compare(x.Endpoint, y.Endpoint) })
		if len(ps) != 2 || !bytes.Equal(ps[0].State, p.State) || !bytes.Equal(ps[0].CID, p.CID) ||
			ps[0].Addr != p.Addr || !ps[0].Parked.Equal(p.Parked) || len(ps[1].CID) != 0 || ps[1].Addr != q.Addr {
			t.Fatalf("ParkedSessions() = %+v; want %+v and %+v", ps, p, q)
		}
		if err := s.DeleteParked(p.Endpoint); err != nil {
			t.Fatalf("DeleteParked = %v", err)
		}
		if ps, _ := s.ParkedSessions(); len(ps) != 1 || ps[0].Endpoint != q.Endpoint {
			t.Fatalf("ParkedSessions() after delete = %+v; want only %s", ps, q.Endpoint)
		}
	})
	t.Run("lookups", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		cid := []byte{0xde, 0xad, 0, 1, 2, 3, 4, 5}
		p := transport.ParkedSession{Endpoint: "868333030000001", CID: cid, Addr: "127.0.0.1:40000", State: []byte{1}, Parked: t0}
		q := transport.ParkedSession{Endpoint: "868333030000002", Addr: "[::1]:5683", State: []byte{2}, Parked: t0}
		r := transport.RegistrationRecord{Endpoint: p.Endpoint, Expires: t0, Data: []byte(`{"ep":"868333030000001"}`)}
		notFound := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, transport.ErrNotFound) {
				t.Fatalf("%s = %v; want an error wrapping transport.ErrNotFound", what, err)
			}
		}
		_, err := s.Registration(ctx, r.Endpoint)
		notFound("Registration(missing)", err)
		_, err = s.Parked(ctx, p.Endpoint)
		notFound("Parked(missing)", err)
		_, err = s.ParkedByCID(ctx, cid)
		notFound("ParkedByCID(missing)", err)
		_, err = s.ParkedByAddr(ctx, p.Addr)
		notFound("ParkedByAddr(missing)", err)
		for _, x := range []transport.ParkedSession{p, q} {
			if err := s.PutParked(x); err != nil {
				t.Fatalf("PutParked(%s) = %v", x.Endpoint, err)
			}
		}
		if err := s.PutRegistration(r); err != nil {
			t.Fatalf("PutRegistration = %v", err)
		}
		if got, err := s.Registration(ctx, r.Endpoint); err != nil || !bytes.Equal(got.Data, r.Data) || !got.Expires.Equal(r.Expires) {
			t.Fatalf("Registration(%s) = %+v, %v; want %+v", r.Endpoint, got, err, r)
		}
		same := func(what string, got transport.ParkedSession, err error, want transport.ParkedSession) {
			t.Helper()
			if err != nil || got.Endpoint != want.Endpoint || !bytes.Equal(got.CID, want.CID) || got.Addr != want.Addr ||
				!bytes.Equal(got.State, want.State) || !got.Parked.Equal(want.Parked) {
				t.Fatalf("%s = %+v, %v; want %+v", what, got, err, want)
			}
		}
		got, err := s.Parked(ctx, q.Endpoint)
		same("Parked", got, err, q)
		got, err = s.ParkedByCID(ctx, cid)
		same("ParkedByCID", got, err, p)
		got, err = s.ParkedByAddr(ctx, q.Addr)
		same("ParkedByAddr", got, err, q)
		_, err = s.ParkedByCID(ctx, []byte{0xde, 0xad, 0, 1, 2, 3, 4, 6})
		notFound("ParkedByCID(another Connection ID)", err)

		// The device comes back with a new session: a new Connection ID
		// and address; the old ones find nothing.
		p2 := p
		p2.CID, p2.Addr, p2.State, p2.Parked = []byte{9, 9, 9, 9, 9, 9, 9, 9}, "127.0.0.1:40001", []byte{3}, t0.Add(time.Minute)
		if err := s.PutParked(p2); err != nil {
			t.Fatalf("PutParked(replace) = %v", err)
		}
		_, err = s.ParkedByCID(ctx, cid)
		notFound("ParkedByCID(the replaced session's)", err)
		_, err = s.ParkedByAddr(ctx, p.Addr)
		notFound("ParkedByAddr(the replaced session's)", err)
		got, err = s.ParkedByCID(ctx, p2.CID)
		same("ParkedByCID(new)", got, err, p2)

		// Another device parks later at q's address (a NAT gave it out
		// again): the address finds the later one.
		n := transport.ParkedSession{Endpoint: "868333030000003", Addr: q.Addr, State: []byte{4}, Parked: t0.Add(time.Hour)}
		if err := s.PutParked(n); err != nil {
			t.Fatalf("PutParked(%s) = %v", n.Endpoint, err)
		}
		got, err = s.ParkedByAddr(ctx, q.Addr)
		same("ParkedByAddr(shared address)", got, err, n)

		if err := s.DeleteParked(p.Endpoint); err != nil {
			t.Fatalf("DeleteParked = %v", err)
		}
		_, err = s.ParkedByCID(ctx, p2.CID)
		notFound("ParkedByCID(deleted)", err)
		_, err = s.Parked(ctx, p.Endpoint)
		notFound("Parked(deleted)", err)
		if err := s.DeleteRegistration(r.Endpoint); err != nil {
			t.Fatalf("DeleteRegistration = %v", err)
		}
		_, err = s.Registration(ctx, r.Endpoint)
		notFound("Registration(deleted)", err)
	})
}
