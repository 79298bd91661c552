// Package lwm2mtest holds conformance suites for the store interfaces of
// package lwm2m. Every implementation runs them in its tests:
//
//	func TestObservations(t *testing.T) {
//		lwm2mtest.RunObservationStore(t, func(t *testing.T) transport.ObservationStore { return myStore(t) })
//	}
//
// It also holds Device, a small LwM2M device written on go-coap's message
// codec alone, which plays the stacks seen in the field (LwM2M 1.1, 1.0,
// modules of the original platform) as strictly as the OMA text, so that
// the server is tested against the standard rather than against this
// module's own transport.Client.
package lwm2mtest

import (
	"errors"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
)

// RunObservationStore checks that an ObservationStore keeps, finds, lists and
// deletes observations as transport.ObservationStore documents.
func RunObservationStore(t *testing.T, newStore func(t *testing.T) transport.ObservationStore) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t.Run("MissingIsErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Observation("00"); !errors.Is(err, transport.ErrNotFound) {
			t.Fatalf("Observation(missing) error = %v, want transport.ErrNotFound", err)
		}
		if err := s.DeleteObservation("00"); err != nil {
			t.Fatalf("DeleteObservation(missing) = %v, want nil", err)
		}
	})
	t.Run("PutGetReplaceDelete", func(t *testing.T) {
		s := newStore(t)
		o := transport.Observation{Token: "a1b2", Endpoint: "868333030000001", Path: "/19/0/0", Created: t0}
		if err := s.PutObservation(o); err != nil {
			t.Fatalf("PutObservation: %v", err)
		}
		got, err := s.Observation("a1b2")
		if err != nil || got.Endpoint != o.Endpoint || got.Path != o.Path || !got.Created.Equal(t0) {
			t.Fatalf("Observation(a1b2) = %+v, %v; want %+v", got, err, o)
		}
		o.Path = "/t/d"
		if err := s.PutObservation(o); err != nil {
			t.Fatalf("PutObservation(replace): %v", err)
		}
		if got, _ := s.Observation("a1b2"); got.Path != "/t/d" {
			t.Fatalf("after replace Path = %q, want /t/d", got.Path)
		}
		if err := s.DeleteObservation("a1b2"); err != nil {
			t.Fatalf("DeleteObservation: %v", err)
		}
		if _, err := s.Observation("a1b2"); !errors.Is(err, transport.ErrNotFound) {
			t.Fatalf("after delete error = %v, want ErrNotFound", err)
		}
	})
	t.Run("ListByEndpointOldestFirst", func(t *testing.T) {
		s := newStore(t)
		for i, p := range []string{"/3/0/0", "/19/0/0", "/5/0/3"} {
			tok := string(rune('a'+2-i)) + "0"
			if err := s.PutObservation(transport.Observation{Token: tok, Endpoint: "dev1", Path: p, Created: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutObservation(transport.Observation{Token: "ff", Endpoint: "dev2", Path: "/t/d", Created: t0}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Observations("dev1")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].Path != "/3/0/0" || got[1].Path != "/19/0/0" || got[2].Path != "/5/0/3" {
			t.Fatalf("Observations(dev1) = %+v, want 3 in creation order", got)
		}
		if got, _ := s.Observations("nobody"); len(got) != 0 {
			t.Fatalf("Observations(nobody) = %+v, want none", got)
		}
	})
}
