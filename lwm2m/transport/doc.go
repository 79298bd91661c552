// Package transport is the network side of Doze's LwM2M: the CoAP/DTLS
// server devices register with (LWM-1 to LWM-5 and LWM-7 to LWM-10), a
// bootstrap server (LWM-13) and a device client, with the CoAP exchange
// layer, the DTLS router and cookie gate, session parking and resumption,
// and the store interfaces they persist through. The object model (paths,
// values, records, content formats, object definitions) is package lwm2m,
// which does no I/O and imports no CoAP or DTLS library; this package
// sends and receives it. A Registration here is a device's current session
// with the server (endpoint, lifetime, binding, objects), not the
// platform's device record in package registry.
//
// # Lifecycle
//
// New, NewBootstrapServer and NewClient check the configuration and start
// nothing: no goroutine, no I/O. Run binds the sockets (unless Listen was
// called first, to learn a port chosen by the system) and serves until its
// context ends or Close is called, then stops everything it started and
// returns nil. A second Run returns at once with an error wrapping
// ErrClosed that says "Run called twice"; Run after Close returns
// ErrClosed. Close is idempotent, may come before Run, and returns only
// after Run has. The Client has no Run: Connect opens its transport and
// Close ends it.
//
// # Server
//
// Server is the network side (LWM-1 to LWM-10): CoAP over UDP (5683) and CoAP over
// DTLS 1.2 (5684) with pre-shared keys, TLS_PSK_WITH_AES_128_CCM_8 and
// TLS_PSK_WITH_AES_128_CBC_SHA256 (LWM-1). Keys come from a KeyStore
// (identity → key, ErrUnknownIdentity otherwise); a device may register only
// under the endpoint name equal to its PSK identity, "urn:imei:X" and "X"
// being the same (LWM-2); anything else gets 4.03. Which endpoints may use
// which transport is the caller's EndpointPolicy (see Security below).
//
// Goroutines: Listen (or Run) starts the DTLS datagram router; Run starts
// the rest and Close waits for every one. One goroutine reads plain CoAP and hands each peer's
// datagrams, in order, to a goroutine of that peer that lives while it has
// work (at most 1024 for peers without a registration); one accepts DTLS, one serves each DTLS session; short-lived goroutines send the observe that follows a
// registration. Everything the server reports goes to one Handler as Events:
// registered, updated, de-registered (with a Reason), woke, uplink,
// notification. HandleEvent is called from the device's reading goroutine,
// in order per device, except EventDeregistered with ReasonExpired, which
// comes from the registration's lifetime timer; it must return quickly. A
// Handler that is also an UplinkHandler gets EventUplink through
// HandleUplink before the device's message is answered, and may refuse it:
// no answer, the message ID forgotten, the device's retransmission
// processed again. That is how a platform makes what a device saw
// acknowledged durable.
//
// Registration (LWM-3): POST /rd with ep, lt, lwm2m, b and Q → 2.01 with
// Location-Path rd/<id>; POST /rd/<id> updates, DELETE /rd/<id> ends it; a
// registration whose lifetime passes without an update ends (ReasonExpired).
// Queue mode is b=UQ (1.0) or Q (1.1). LwM2M versions other than 1.0 and 1.1
// get 4.12. The body is parsed with lwm2m.ParseClientObjects. TUP (LWM-4): POST
// /t/r?ep=IMEI → 2.04, and the server's GET /t/d with Observe leaves right
// after the answer, without waiting for anything (tested in a synctest
// bubble: same instant). Object 19 (LWM-5): after a registration listing
// </19/0>, the server observes /19/0/0; the value of the device's answer,
// its notifications and LwM2M Send (POST /dp) become EventUplink. An
// Update whose object list drops </19/0> forgets the observation; one that
// brings it back has it observed again (stored before EventUpdated). An
// observe the device has not answered when it moves to a new session
// (LWM-10) is sent again there at once; one that got no answer at all is
// sent again at the device's next message; one the device refused (4.xx)
// waits for a new object list. Downlink writes the data into the
// Multiple resource /19/1/0 in the form the device takes (the instance
// /19/1/0/0 as opaque, the resource as TLV or SenML, or the legacy opaque
// write of /19/1/0; chosen by LwM2M version, falling back on 4.00, 4.04
// and 4.15, remembered per endpoint, or forced: see DownlinkForm), and
// TUP's is a POST /t/d. The Client refuses a single value written to a
// Multiple resource with 4.00, as conforming clients do. Payloads of /19/0/0 and Send in the object model's
// formats (TLV, SenML JSON/CBOR, LwM2M JSON) are decoded with lwm2m.Decode and
// give the bytes of each /19/0/0 resource instance; opaque and TUP
// payloads are the bytes themselves. A Send's other values come after its
// /19/0/0 values as one EventNotification with path "/dp": those under
// Config.SendPaths (by default the firmware State /5/0/3 and Update Result
// /5/0/5), or, when the Handler is a SendFilter, those its FilterSend
// takes for that device. A Send the server cannot use is not answered
// 2.04 (LWM-12): over Config.MaxSendSize 4.13 with Size1, empty or
// malformed 4.00, a content format other than SenML JSON/CBOR (or opaque,
// text, none for raw data) 4.15, no /19/0/0 value and none taken 4.04
// naming the paths (and the SendFilter's reason); each with a "send: "
// diagnostic and an EventRefused carrying the same code and text. An
// UplinkHandler takes a Send's values, and every notification of an
// observed path, before the device's ACK, like the data channel's.
//
// Device operations (LWM-7): Read, Write, WritePartial, Execute, Create,
// Delete, Discover, WriteAttributes, Observe, CancelObserve, each bounded by
// its context; error answers are *ResponseError with the CoAP code. The
// composite operations of LwM2M 1.1 (composite.go): ReadComposite
// (FETCH / with a SenML list of paths), WriteComposite (iPATCH / with
// SenML records), ObserveComposite (FETCH with Observe 0; notifications
// come as EventNotification with Path CompositeKey(paths)) and
// CancelObserveComposite, for LwM2M 1.1 devices with a SenML format only
// (ErrCompositeUnsupported otherwise, before anything is sent), at most
// MaxCompositePaths paths. ObserveAccept observes asking for a format;
// the observation keeps it, and a notification without Content-Format is
// taken to be in it (as Read infers an answer's). Read
// returns Content (format + payload); ReadRecords decodes the answer into
// Records with lwm2m.Decode and Config.Model (built-in objects by default).
//
// Queue mode (LWM-8): a queue-mode device is reachable for
// Config.AwakeWindow (default 93 s) after anything it sends (registration,
// update, notification, Send); each raises EventWoke with AwakeUntil. A
// message sent again (a retransmission, answered from the duplicate cache)
// extends the window from its arrival but raises nothing. A request to a
// sleeping device fails at once with ErrSleeping and nothing is sent.
//
// # Exchange layer and retransmission
//
// go-coap v3 is used for the wire format only (message encoding and
// decoding). Message ids, tokens, matching, the deduplication cache and
// retransmission are this package's own (exchange.go), because go-coap
// retransmits from a periodic check (a 4-second tick, its issue 656) and
// keeps its own goroutines per connection. Every confirmable message gets its
// own timers following Transmission (LWM-9): with the zero value waits of
// 10–15 s, 20–30 s, 40–60 s, and giving up 80–120 s after the last try
// (ACK_TIMEOUT 10 s, ACK_RANDOM_FACTOR 1.5, MAX_RETRANSMIT 3), settable per
// device with SetTransmission. One request per device is outstanding at a
// time (NSTART 1). Received message ids are remembered for the exchange
// lifetime (at most 32 per peer): a duplicate request or confirmable
// notification gets the cached answer and is not processed again.
// Observations are kept in an ObservationStore (token → endpoint and path),
// so notifications reaching a restarted server are still understood.
//
// # NAT rebinding, sessions and parking
//
// The DTLS listener asks devices to use a Connection ID (RFC 9146, 8 bytes
// by default): a device that wakes from PSM behind a new address and port
// keeps its session without a new handshake, and the registration follows
// the session's address. The datagrams of the DTLS socket go through the
// package's own router (dtlsmux.go) rather than pion's listener: it routes
// by Connection ID, then by address, and lets a device that restarted
// handshake again from the address of its old session (pion's listener
// would hand that ClientHello to the dead session). A registration update arriving over another
// session (a new handshake from a new address) moves the registration there
// and closes the old session. A device's session lives as long as its
// registration (a DTLS session ends 1 s after the 2.02 of its
// de-registration, so that the device reads the 2.02 before the
// close_notify); a session that has not registered ends after
// Config.IdleTimeout (default 5 minutes). A record with a known
// Connection ID from a new address reaches its session with that source
// address, and pion adopts the address only once the record authenticated
// and is the newest (RFC 9146 §6); the router moves the session when pion
// first writes there. A forged datagram carrying a device's Connection ID
// (it travels in clear) moves nothing (TestForgedConnectionIDRecordDoesNotMoveSession).
// A parked session resumes at its last authenticated address for the same
// reason.
//
// With Config.ParkSessions, the session of a queue-mode device whose awake
// window has passed is parked (park.go): pion's connection state is
// serialized (State.MarshalBinary: keys, epochs, sequence numbers,
// Connection IDs), the connection is closed without a close_notify (the
// router drops its writes), and the router keeps the state under the
// device's Connection ID and address. The device's next record, from any
// address when it uses a Connection ID, resumes the connection
// (dtls.ResumeWithOptions) without a handshake; registration, observations and
// exchange state never left. Nothing is sent on a parked session: requests
// to a sleeping device fail with ErrSleeping before that. A parked device
// costs no goroutine. Caveat: a record that pion had already decrypted at
// the instant of parking is lost (the device's CoAP retransmission covers
// it); records still queued are handed to an immediate resume.
//
// With Config.Registrations (a RegistrationStore; persist.go) this
// survives a restart, a SIGKILL included (LWM-14): a registration is
// written when made or updated and deleted when it ends, a parked session
// (pion's serialized state, Connection ID, address) is written when it is
// parked, before the router can resume it, and Listen restores both
// (registrations whose lifetime passed are dropped), so the device's next
// record on its old session is understood without a handshake
// (TestSessionSurvivesCrash). A resumed session is written again with its
// write sequence number moved 2^32 ahead: if the server dies while the
// device is awake, the next one resumes from there and never sends two
// records under one AES-CCM nonce; the device accepts the gap (RFC 6347
// §4.1.2.6). A store write that fails leaves that session unresumed (the
// device handshakes again) rather than at risk. Config.Sessions (a
// SessionStore) is the other, older mechanism: abbreviated handshakes by
// session ID, for devices that lost their connection state.
//
// With Config.SharedRegistrations several servers write one
// RegistrationStore (a cluster on PostgreSQL behind a UDP load balancer,
// CLU-3; adopt.go): a record the router does not know is looked up there,
// by Connection ID or else by source address, and the parked session and
// its registration are taken over and resumed without a handshake
// (TestSessionMovesToAnotherServer). A session parked here is checked
// against the store before it resumes, and resumed from the store's state
// when another server has used it since (TestSessionTakenBackFromStore);
// a registration whose lifetime passes here but was renewed elsewhere is
// dropped here only (TestExpiryLeavesRenewedElsewhere). Lookups run off
// the router's goroutine and are bounded: one in flight per Connection ID
// or address, 16 a second per source IP and 2,048 in all, 256 in flight,
// a miss not looked up again for 10 s (TestLookupBounds). Each resume
// then costs one store read more than on a single server.
//
// # Security (SEC-1, SEC-2, SEC-4)
//
// Config.Policy (an EndpointPolicy the caller implements, like KeyStore)
// says how each endpoint must connect: SecurityPSK (DTLS with its key
// only), SecurityNone (plain CoAP only) or SecurityUnknown (refused
// everywhere). It is asked before anything is kept for a Register, a TUP
// register, an Update or a De-register: a PSK device over plain CoAP gets
// 4.01 Unauthorized, an unknown endpoint 4.03 Forbidden, a DTLS identity
// whose policy is not SecurityPSK 4.03. A plain CoAP Register for an
// endpoint registered over DTLS is refused (4.01) whatever the policy, so
// impersonation never moves a registration. Without a Policy, DTLS devices
// are accepted by their key and plain CoAP refuses every registration.
//
// A plain CoAP peer holds no session until its registration is accepted
// (stranger.go): pings and malformed messages are answered from the
// datagram alone, requests on a short-lived session that is not counted
// and is forgotten once answered (at most 1024 at once), and a Block1
// body from such a peer is capped at MaxMessageSize. A flood of spoofed
// datagrams from any number of addresses therefore costs no session
// (TestHostileSpoofedPingFlood: 100,000 pings from 200 addresses with
// MaxSessions 50; a device registers during and after it). Registration
// lifetimes above Config.MaxLifetime (default 72 h) are refused with 4.00.
// Log lines a peer can cause once per datagram (refused registrations,
// malformed messages, dropped datagrams) are aggregated: the first of an
// interval with its details, then one line a minute with the count.
//
// An answer to a sender without a session (a plain CoAP peer that is not
// registered, a sender on the bootstrap server's plain CoAP port without a
// bootstrap session) may go to a forged source address, so the server
// must not amplify (reflect.go, SEC-2). An error answer (4.xx, 5.xx) to
// such a sender is never larger than the datagram that caused it (a
// success answer is a 2.31 Continue, smaller than its block, or a file
// block, budgeted below): its code and token stay, its
// diagnostic text is cut to fit, and dropped with the options when even
// that is too much (a 4-byte GET gets a 4-byte 4.04). Registered devices
// and DTLS sessions get the whole diagnostic. All answers to such senders
// together, Resets included, pass one token bucket,
// Config.StrangerAnswerRate (BootstrapConfig.StrangerAnswerRate), default
// 1,000 a second with a burst of as many; beyond it an answer is dropped,
// counted (StrangerAnswersDropped) and logged in aggregate, as a full
// socket buffer would drop it: a real device retransmits, and its
// registration, once accepted, is no longer held to the bucket. The
// default is far above what devices that are not yet registered need and
// bounds what a spoofed flood can reflect to about one answer per
// request-sized datagram, 1,000 a second.
//
// On the bootstrap server an endpoint has at most one session: an
// accepted Bootstrap-Request for an endpoint that has one ends the older
// session (whose bootstrap then fails) and opens the new one, so forged
// requests for a NoSec device's name from many addresses hold one
// session, not one per address, and a device that lost its session to a
// new address is not locked out. Sessions over plain CoAP, where anyone
// can send a request for a NoSec endpoint, have their own cap,
// BootstrapConfig.MaxPlainSessions (default a quarter of MaxSessions),
// beyond which a request gets 5.03 with Max-Age 60: they can never take
// the rest of MaxSessions, which stays for DTLS devices, whose handshake
// is the proof (SEC-2).
//
// Protocol errors get the RFC 7252 answers: a malformed confirmable message
// (token length 9–15, option nibble 15, an option past the end, a payload
// marker without payload, an Empty message with bytes) is rejected with a
// Reset carrying its message ID, a malformed non-confirmable one is
// ignored (§4.2, §4.3); an unrecognised critical option in a confirmable
// request gets 4.02 Bad Option (§5.4.1), Proxy-Uri 5.05; a method a
// resource does not take (GET /rd, PUT /rd/<id>, GET /dp, FETCH) gets
// 4.05 Method Not Allowed, an unknown resource (including /bs: no
// bootstrap here) 4.04.
//
// Files under FilesPath may be downloaded by a peer that did not register
// on that socket (clients often download from a second socket): the
// unguessable name is the credential, FileSource.Open gets the endpoint
// "", at most 64 such sources download at once, and a source address that
// asks for 8 names that do not exist is slowed to one every 5 s (4.29).
// Since such a source may be forged and a GET of a few dozen bytes draws
// a block of up to 1,024, the bytes of blocks sent to peers without a
// registration are budgeted (SEC-2): Config.StrangerDownloadRatePerIP per
// source IP (IPv6: /64, default 32 KiB/s) and Config.StrangerDownloadRate
// in all (default 256 KiB/s), each with a burst of one second's worth; a
// block beyond either gets 4.29 with Max-Age and the device asks again.
// A firmware download at NB-IoT speed stays well within them; a
// registered device or a DTLS session is not held to them.
//
// When a registration's lifetime expires, its DTLS session, live or
// parked, is kept for IdleTimeout: the device's next Register on it is
// accepted without a handshake.
//
// # DTLS handshakes: no state before proof
//
// Every ClientHello is handled by the router before anything exists for
// its sender (dtlsgate.go, SEC-2). One without a valid cookie gets a
// HelloVerifyRequest whose cookie is an HMAC over the sender's address and
// the hello's fields (cookie.go, RFC 6347 §4.2.1; the secret changes every
// two minutes, the previous one is still accepted); nothing is kept. Only a
// hello that returns a valid cookie opens a virtual connection and a pion
// server, at most Config.MaxHandshakes (default 1024) at once; beyond that
// it is dropped and counted, and the device retransmits it. Since a
// valid cookie proves only that the sender receives at its address, one
// host could otherwise take most slots by finishing the cookie round from
// many ports and stalling; so at most Config.MaxHandshakesPerIP (default
// 32) handshakes are in flight from one source IP address, an IPv6
// source counted by its /64 (one subscriber's prefix); a hello beyond it
// is dropped and counted as well (DTLSStats.HellosDroppedPerIP, SEC-2).
// NB-IoT devices behind a carrier NAT share public addresses, which is
// why the default is generous: 32 handshakes at once from one NAT address
// is far above what devices waking independently start, and a device
// whose hello is dropped retransmits it. A handshake
// that has not finished ends at Config.HandshakeTimeout, a quarter of it
// once half the slots are taken. pion cannot continue a handshake after a
// stateless cookie round (its InsecureSkipVerifyHello answers the second
// hello, message_seq 1, with ServerHello message_seq 0), so the router
// plays pion's own cookie round on the virtual connection (pionhello.go);
// pion, OpenSSL and GnuTLS clients complete the handshake
// (TestInteropDTLSCookieExchange). A ClientHello whose record version is
// any {254,x} (mbedTLS 2.x sends {254,0}) is answered, its record version
// normalised before pion sees it. A wrong key, and an unknown identity
// alike, end the handshake with a fatal decrypt_error alert as soon as the
// device's Finished fails to decrypt (RFC 4279 §2: the answer does not tell
// which identities exist); the log names the identity and the reason (bad
// key, unknown identity, timeout). Refusals and failures are logged once
// per kind at once and then as one line per 10 s with a count;
// Server.DTLSStats counts cookies sent, hellos refused, dropped at the cap
// and shed, handshakes started, completed (full or resumed) and failed by
// reason. With Config.Sessions (a SessionStore the caller implements,
// MemorySessionStore in memory), a device that dropped its DTLS state while
// asleep resumes its session by ID with an abbreviated handshake, also
// after a restart when the store is durable, while its identity's key is
// unchanged (resume.go).
//
// The router reads the socket in batches (recvmmsg, 4 MB receive buffer)
// and answers hellos on a second goroutine in batches (sendmmsg); hellos it
// cannot answer in time are shed from a bounded queue, never a device's
// second hello or its handshake records. BenchmarkDTLSHandshakeFlood
// measures handshakes per second during a flood of spoofed ClientHellos
// against the same without it (at 50,000 hellos/s: 0.80–0.90 of the
// rate; figures in docs/benchmarks.md); the hostile tests
// (hostile_dtls_test.go) drive 20,000 sources while a device registers.
//
// # DTLS interop: the empty extensions block of pion's ServerHello
//
// A ClientHello with neither extended_master_secret nor renegotiation_info
// (nor the renegotiation SCSV) on a PSK suite gets a ServerHello with no
// extension, and pion (v3.1.15) encodes it with an empty extensions block:
// the two bytes 00 00 after the compression method. MessageServerHello's
// Marshal (pkg/protocol/handshake/message_server_hello.go) appends
// extension.Marshal(m.Extensions), which writes the length even for an
// empty list, and flight4 (a full handshake) passes it the empty list (an
// abbreviated handshake's ServerHello, flight4b, always carries
// renegotiation_info). That is valid TLS (RFC 5246 §7.4.1.3: the block is optional; an
// empty one is a well-formed vector), and Go's crypto/tls leaves it out.
// A JavaScript DTLS stack seen in the field hashes its own re-encoding of
// the ServerHello, without the block, instead of the bytes it received,
// so its transcript differs from pion's by those two bytes and the
// Finished check fails ("verify data does not match"). It is the client's
// bug (RFC 5246 §7.4.9 hashes the messages as exchanged), and no option of
// pion changes the encoding. The router cannot mend it: it sees the
// ServerHello, but pion's Finished is computed over the bytes pion wrote,
// so removing the two bytes on the wire makes every client fail instead
// of one. What works: the client offers extended_master_secret or
// renegotiation_info (the server then answers with a non-empty block), or
// pion omits the empty block, the change to propose upstream, in
// MessageServerHello.Marshal:
//
//	out = append(out, byte(m.CompressionMethod.ID))
//	if len(m.Extensions) == 0 {
//		return out, nil // RFC 5246 §7.4.1.3: no extensions, no block
//	}
//	return append(out, extensions...), nil
//
// pion's Unmarshal already reads a ServerHello without the block. The
// test TestPionServerHelloEmptyExtensions pins today's encoding and fails
// when an upgrade of pion changes it.
//
// # Limits
//
// MaxSessions (default 100000) caps DTLS sessions plus registered plain
// CoAP peers: requests beyond it get 5.03 with Max-Age 60. RequestRate/RequestBurst
// (default 20/s, burst 40) limit each session; more gets 4.29 Too Many
// Requests with Max-Age. A datagram above MaxMessageSize (default 4096)
// gets 4.13 with Size1; a registration of a few hundred bytes fits in one
// datagram without block-wise transfer.
// Block-wise transfer (RFC 7959): files offered through Config.Files (such
// as firmware for object 5's Package URI) are downloaded by devices with
// GET and Block2 under FilesPath ("/fw/<name>"), with ETag and Size2;
// these block requests are not held to RequestRate (downloads by peers
// without a registration are budgeted in bytes, see Security). A device's answer to a read
// that comes in Block2 blocks is fetched block by block and reassembled (up
// to 1 MB); the Client cuts answers above 1024 bytes into 512-byte blocks.
// Request bodies above 1024 bytes (writes to the device, Send, large
// registrations) go in Block1 blocks of 512 bytes, answered 2.31 Continue
// and reassembled by the receiver (one body at a time per session, up to
// 1 MB from a registered or DTLS peer, MaxMessageSize from any other; a
// block out of order gets 4.08). Block1 blocks count against the
// request rate.
//
// # Client
//
// Client is the device side (used by the tests and the device simulator):
// Connect (DTLS PSK with a Connection ID, or plain CoAP), Register (LwM2M or
// TUP), Update, Deregister, resources served from Handle (read, write,
// execute, create, delete, discover, write-attributes, observe), Notify to
// observers and Send (POST /dp). Rebind moves it to a new local port, as a
// NAT does. Write-Attributes are checked as the TS says (known names,
// whole seconds for pmin/pmax/epmin/epmax, decimal gt/lt/st on resources
// only, pmin ≤ pmax, lt + 2·st < gt; anything else 4.00, nothing changed)
// and kept per path (Client.Attributes); the client does not time
// notifications by them — Notify stays the application's call.
//
// # Figures
//
// lwm2m/cmd/lwm2mbench drives N simulated DTLS devices and, in the same run, a
// bare go-coap DTLS server with the same load, and prints registrations/s,
// uplinks/s, the server's CPU per operation and its heap and goroutines
// per idle registered device, with the ratios. On 2 cores (26 Nov 2026):
// 1,075–1,953 DTLS registrations/s; 12.4–13.1 KB of heap and no goroutine
// per sleeping device at 20,000 devices (go-coap: 33 KB and five
// goroutines); uplinks 1.14–1.67× go-coap's at 2,000 devices, 1.15× at
// 20,000, but 0.48× when every uplink wakes a parked session. The runs,
// the machine and what was tried are in docs/benchmarks.md.
package transport
