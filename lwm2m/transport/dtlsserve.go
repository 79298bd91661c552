package transport

import (
	"errors"
	"net"
	"time"

	"github.com/pion/dtls/v3"
)

// The DTLS server's helpers around acceptDTLS and serveDTLS (server.go):
// each handshake's pion configuration, its failures, and the aggregated log.

// connOptions are the listener's pion options for the handshake on v: its
// PSK callback and logger report to the router.
func (s *Server) connOptions(v *vconn) []dtls.ServerOption {
	psk := func(id []byte) ([]byte, error) {
		identity := string(id)
		k, err := s.keys.Key(identity)
		if errors.Is(err, ErrUnknownIdentity) {
			// Go on as if the key were wrong (RFC 4279 §2): the device
			// gets the same alert either way.
			s.mux.keyLookup(v, identity, true)
			return randomKey(), nil
		}
		if err != nil {
			s.log.Warn("lwm2m: key store failed during a DTLS handshake", "identity", identity, "err", err)
			return nil, err
		}
		s.mux.keyLookup(v, identity, false)
		return k, nil
	}
	// later options override earlier ones
	return serverOptions(s.dtlsOpts, dtls.WithPSK(psk), dtls.WithLoggerFactory(connLoggers{v}))
}

// serverOptions returns the shared options base as server options,
// followed by more.
func serverOptions(base []dtls.Option, more ...dtls.ServerOption) []dtls.ServerOption {
	out := make([]dtls.ServerOption, 0, len(base)+len(more))
	for _, o := range base {
		out = append(out, o)
	}
	return append(out, more...)
}

// suiteOptions is the pion option for the configured cipher suites, or
// none when the list is empty (pion refuses an empty one and then offers
// its defaults).
func suiteOptions(cs []CipherSuite) []dtls.Option {
	if len(cs) == 0 {
		return nil
	}
	return []dtls.Option{dtls.WithCipherSuites(dtlsSuites(cs)...)}
}

// handshakeFailed counts a failed handshake and logs it, aggregated, with
// the identity and the reason.
func (s *Server) handshakeFailed(identity string, why failReason, addr net.Addr, err error) {
	c := &s.mux.stats
	switch why {
	case failBadKey:
		c.failedBadKey.Add(1)
	case failUnknownIdentity:
		c.failedUnknown.Add(1)
	case failTimeout:
		c.failedTimeout.Add(1)
	default:
		c.failedOther.Add(1)
		if why == failNone {
			why = failAlert
		}
	}
	// one aggregated kind per reason: a flood of one does not hide another
	s.mux.agg.info(time.Now(), "lwm2m: DTLS handshake failed: "+why.kind(),
		"identity", identity, "reason", why.String(), "addr", addr, "err", err)
}

// flushDTLSLog writes the aggregated lines of the DTLS side.
func (s *Server) flushDTLSLog() {
	defer s.wg.Done()
	t := time.NewTicker(logAggInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			s.mux.agg.flush(time.Now().Add(logAggInterval))
			return
		case now := <-t.C:
			s.mux.agg.flush(now)
		}
	}
}
