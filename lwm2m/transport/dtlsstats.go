package transport

// DTLSStats are the counters of the DTLS side since Listen, for a
// platform to export as metrics. Counts only grow; HandshakesInFlight is a
// gauge.
type DTLSStats struct {
	// CookiesSent counts HelloVerifyRequests: ClientHellos without a valid
	// cookie, answered statelessly.
	CookiesSent uint64
	// HellosRefused counts ClientHellos that were not answered: not DTLS,
	// fragmented, malformed, or a cookie in the wrong place.
	HellosRefused uint64
	// HellosDropped counts ClientHellos with a valid cookie that started
	// nothing because MaxHandshakes handshakes were in flight.
	HellosDropped uint64
	// HellosDroppedPerIP counts ClientHellos with a valid cookie that
	// started nothing because MaxHandshakesPerIP handshakes from their
	// source IP (IPv6: /64) were in flight.
	HellosDroppedPerIP uint64
	// HellosShed counts ClientHellos without a valid cookie that were not
	// answered because the router was answering as many as it could.
	HellosShed uint64

	HandshakesStarted   uint64 // pion handshakes started (after a valid cookie)
	HandshakesCompleted uint64 // of which completed: full plus abbreviated
	HandshakesFull      uint64 // completed with a PSK key exchange
	HandshakesResumed   uint64 // completed as abbreviated handshakes (session resumption)

	FailedBadKey          uint64 // ended with decrypt_error: the device's key is not ours
	FailedUnknownIdentity uint64 // ended with decrypt_error: no key for the identity
	FailedTimeout         uint64 // not finished before the deadline
	FailedOther           uint64 // a fatal alert, the device restarting, the server closing

	HandshakesInFlight int // handshakes started and not ended

	// With Config.SharedRegistrations (adopt.go): StoreLookups counts
	// records the router did not know that were looked up in the shared
	// store; StoreLookupsLimited those not looked up (the source's rate,
	// the lookups in flight, or a recent miss for the same key);
	// SessionsAdopted the sessions taken over from the store without a
	// handshake; SessionsTakenBack the sessions parked here that another
	// server had used since, resumed from the store's newer state.
	StoreLookups, StoreLookupsLimited, SessionsAdopted, SessionsTakenBack uint64
}

// DTLSStats returns the DTLS side's counters; zero before Listen or when
// DTLS is off.
func (s *Server) DTLSStats() DTLSStats {
	s.mu.Lock()
	m := s.mux
	s.mu.Unlock()
	if m == nil {
		return DTLSStats{}
	}
	c := &m.stats
	return DTLSStats{
		CookiesSent:           c.cookiesSent.Load(),
		HellosRefused:         c.hellosRefused.Load(),
		HellosDropped:         c.hellosDropped.Load(),
		HellosDroppedPerIP:    c.hellosDroppedPerIP.Load(),
		HellosShed:            c.hellosShed.Load(),
		HandshakesStarted:     c.started.Load(),
		HandshakesCompleted:   c.full.Load() + c.abbreviated.Load(),
		HandshakesFull:        c.full.Load(),
		HandshakesResumed:     c.abbreviated.Load(),
		FailedBadKey:          c.failedBadKey.Load(),
		FailedUnknownIdentity: c.failedUnknown.Load(),
		FailedTimeout:         c.failedTimeout.Load(),
		FailedOther:           c.failedOther.Load(),
		HandshakesInFlight:    m.inFlight(),
		StoreLookups:          c.lookups.Load(),
		StoreLookupsLimited:   c.lookupsLimited.Load(),
		SessionsAdopted:       c.adopted.Load(),
		SessionsTakenBack:     c.takenBack.Load(),
	}
}
