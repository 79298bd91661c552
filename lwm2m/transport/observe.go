package transport

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Observation is one observe relationship the server holds with a device:
// the token it chose, the endpoint and the observed path. It is stored so
// that notifications arriving after a server restart are still understood
// (LWM-9).
type Observation struct {
	Token    string // hex of the CoAP token
	Endpoint string // normalized endpoint name
	Path     string // "/19/0/0", "/t/d", …
	Created  time.Time
	// Accept is the Content-Format the observe asked for with Accept (nil:
	// none). A notification without a Content-Format is taken to be in it,
	// as the answer to a Read is (RFC 7252 §5.10.4, §5.5.1).
	Accept *lwm2m.Format `json:",omitempty"`
}

// ObservationStore keeps observations by token. Implementations must be safe
// for concurrent use; lwm2mtest.RunObservationStore is the conformance suite.
type ObservationStore interface {
	// PutObservation stores o, replacing one with the same token.
	PutObservation(o Observation) error
	// Observation returns the observation with token, or ErrNotFound.
	Observation(token string) (Observation, error)
	// DeleteObservation removes the observation with token; a missing one is
	// not an error.
	DeleteObservation(token string) error
	// Observations returns the endpoint's observations, oldest first.
	Observations(endpoint string) ([]Observation, error)
}

// MemoryObservationStore is an ObservationStore in memory.
type MemoryObservationStore struct {
	mu sync.RWMutex
	m  map[string]Observation
}

// NewMemoryObservationStore returns an empty MemoryObservationStore.
func NewMemoryObservationStore() *MemoryObservationStore {
	return &MemoryObservationStore{m: make(map[string]Observation)}
}

// PutObservation implements ObservationStore.
func (s *MemoryObservationStore) PutObservation(o Observation) error {
	s.mu.Lock()
	s.m[o.Token] = o
	s.mu.Unlock()
	return nil
}

// Observation implements ObservationStore.
func (s *MemoryObservationStore) Observation(token string) (Observation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.m[token]
	if !ok {
		return Observation{}, ErrNotFound
	}
	return o, nil
}

// DeleteObservation implements ObservationStore.
func (s *MemoryObservationStore) DeleteObservation(token string) error {
	s.mu.Lock()
	delete(s.m, token)
	s.mu.Unlock()
	return nil
}

// Observations implements ObservationStore.
func (s *MemoryObservationStore) Observations(endpoint string) ([]Observation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Observation
	for _, o := range s.m {
		if o.Endpoint == endpoint {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Token < out[j].Token
	})
	return out, nil
}

func tokenKey(tok []byte) string { return hex.EncodeToString(tok) }

func hexToken(s string) ([]byte, error) { return hex.DecodeString(s) }

// dataState is where the server's own observation of a registration's
// data channel (/19/0/0, or /t/d for TUP) stands. It lives in the
// registration, under Server.mu.
type dataState uint8

const (
	dataNone      dataState = iota // no data channel (no </19/0> in the registration), or not asked yet
	dataObserving                  // the observe is on its way, or waits for the device's answer
	dataObserved                   // the device answered it: notifications flow
	dataLost                       // no answer, or the observation ended: observed again at the device's next message
	dataRefused                    // the device refused it (4.xx, or a 2.05 without Observe): asked again when an Update brings an object list
)

// dataObject is the object instance whose resource 0 is the uplink data
// channel (LWM-5).
var dataObject = lwm2m.MustPath("/19/0")

// maxObserveMoves bounds how often one observe follows its device to a new
// session (LWM-10) before it waits for the device's next message.
const maxObserveMoves = 3

// dataChannel returns the path the server observes for r's application
// data, or "" when r has none. s.mu is held.
func dataChannel(r *registration) string {
	switch {
	case r.TUP:
		return "/t/d"
	case r.Objects.Has(dataObject):
		return dataPath.String()
	}
	return ""
}

// newObservation stores a new observation of path with a fresh token.
func (s *Server) newObservation(ep, path string) (Observation, error) {
	o := Observation{Token: tokenKey(newToken()), Endpoint: ep, Path: path, Created: time.Now()}
	if err := s.cfg.Observations.PutObservation(o); err != nil {
		return o, fmt.Errorf("lwm2m: storing observation of %s on %q: %w", path, ep, err)
	}
	return o, nil
}

// observeData observes r's data channel on its own goroutine and delivers
// the value of the device's answer as uplink data, as a notification's
// would be (issue 15 item 5). o is the stored observation to use, or the
// zero Observation to make one. The caller has set r.data to
// dataObserving.
//
// A device that moves to a new session before it answers (an Update from
// a new address, LWM-10) is asked again there at once; one that does not
// answer at all is asked again at its next message (see touch).
func (s *Server) observeData(r *registration, o Observation) {
	s.async(func(ctx context.Context) {
		for moves := 0; ; moves++ {
			s.mu.Lock()
			sess, path := r.sess, dataChannel(r)
			s.mu.Unlock()
			if path == "" { // an Update took the data channel away meanwhile
				return
			}
			var err error
			if o.Token == "" {
				if o, err = s.newObservation(r.Endpoint, path); err != nil {
					s.dataFailed(r, sess, moves, err)
					return
				}
			}
			c, observing, err := s.observeOnce(ctx, o)
			if err == nil {
				s.dataAnswered(r, o, c, observing)
				return
			}
			if !s.dataFailed(r, sess, moves, err) {
				return
			}
			o = Observation{}
		}
	})
}

// observeOnce sends the observe of o (GET with Observe 0, RFC 7641) and
// returns the answer and whether the device added the server as an
// observer. The stored observation is deleted when it did not.
func (s *Server) observeOnce(ctx context.Context, o Observation) (Content, bool, error) {
	m := newRequest(codes.GET, o.Path)
	m.Token, _ = hexToken(o.Token)
	addUint(m, message.Observe, 0)
	resp, err := s.request(ctx, "observe", o.Endpoint, o.Path, m)
	if err != nil {
		_ = s.cfg.Observations.DeleteObservation(o.Token)
		return Content{}, false, err
	}
	_, observing := observeOpt(resp)
	if !observing { // RFC 7641 §3.1: not added to the list of observers
		_ = s.cfg.Observations.DeleteObservation(o.Token)
	}
	return Content{Format: contentFormat(resp), Payload: resp.Payload}, observing, nil
}

// dataAnswered records the device's answer to the observe of its data
// channel and delivers the value it carries (none when the answer is
// empty: no data yet).
func (s *Server) dataAnswered(r *registration, o Observation, c Content, observing bool) {
	s.mu.Lock()
	if s.regs[r.Endpoint] == r && r.data == dataObserving {
		r.data = dataObserved
		if !observing {
			r.data = dataRefused
		}
	}
	s.mu.Unlock()
	if !observing {
		s.log.Info("lwm2m: the device answered the observe of its data channel without Observe; it will not notify",
			"endpoint", r.Endpoint, "path", o.Path)
	}
	if len(c.Payload) == 0 {
		return
	}
	now := time.Now()
	for _, u := range s.uplinkValues(o.Path, c) {
		if len(u.data) == 0 {
			continue
		}
		err := s.emitUplink(Event{Kind: EventUplink, Endpoint: r.Endpoint, Time: now, Path: u.path, Payload: u.data, ContentFormat: c.Format})
		if err != nil {
			s.log.Warn("lwm2m: the value of the observe answer was not kept", "endpoint", r.Endpoint, "path", o.Path, "err", err)
		}
	}
}

// dataFailed records that the observe of r's data channel, sent on sess,
// failed with err, and reports whether to send it again at once: the
// registration moved to another session meanwhile (LWM-10). Otherwise a
// device that refused it (4.xx) is not asked again before its next
// object list; any other failure waits for the device's next message.
func (s *Server) dataFailed(r *registration, sess *session, moves int, err error) (again bool) {
	var re *ResponseError
	s.mu.Lock()
	current := s.regs[r.Endpoint] == r && r.data == dataObserving
	switch {
	case !current:
	case errors.As(err, &re) && re.ClientError():
		r.data = dataRefused
	case r.sess != sess && moves < maxObserveMoves:
		again = true
	default:
		r.data = dataLost
	}
	s.mu.Unlock()
	switch {
	case again:
		s.log.Debug("lwm2m: the device moved before it answered the observe of its data channel; observing again on its new session",
			"endpoint", r.Endpoint, "err", err)
	case current:
		s.log.Info("lwm2m: observing the data channel failed", "endpoint", r.Endpoint, "err", err)
	}
	return again
}

// dataEnded records that the device ended the observation of its data
// channel (an error or a response without Observe, RFC 7641 §3.2): it is
// observed again at the device's next message.
func (s *Server) dataEnded(ep string) {
	s.mu.Lock()
	if r := s.regs[ep]; r != nil && r.data == dataObserved {
		r.data = dataLost
	}
	s.mu.Unlock()
}

// forgetData deletes the endpoint's stored observations of the data
// channel (an Update dropped </19/0>: the device ended them).
func (s *Server) forgetData(ep string) {
	obs, err := s.cfg.Observations.Observations(ep)
	if err != nil {
		s.log.Warn("lwm2m: listing observations", "endpoint", ep, "err", err)
		return
	}
	for _, o := range obs {
		if o.Path == dataPath.String() {
			_ = s.cfg.Observations.DeleteObservation(o.Token)
		}
	}
}
