// Package push delivers notifications to application servers as HTTP(S)
// webhooks (PSH-1 … PSH-7; FAQ §5).
//
// An application subscribes a callback URL to a notify type
// (Engine.Subscribe); the platform publishes typed bodies to the
// subscribers (Engine.Publish, Engine.PublishReport) or sends any body to
// one checked URL (Engine.Send, as for command callbacks). Every accepted
// push is first stored in an outbox, then delivered with retries,
// per-endpoint health and Standard Webhooks signing, behind an SSRF guard.
//
// An Engine follows Doze's one lifecycle: New checks the Config and starts
// nothing; Run loads the outbox, delivers until its context ends or Close
// is called, and returns nil; a second Run returns at once with an error
// wrapping ErrClosed that says "Run called twice", and Run after Close
// returns ErrClosed; Close is idempotent, may come before Run and returns
// only after Run has.
//
// # Model
//
// An application subscribes a callback URL to a notify type (Subscription,
// Engine.Subscribe; NotifyTypes: the 18 of PSH-1, lwm2mOperationResult and lwm2mNotification). Callback URLs must be
// http(s)://host:port/path (ParseCallbackURL, one sentinel per broken rule:
// ErrURLScheme, ErrURLNoHost, ErrURLNoPort, ErrURLNoPath), and within one
// application they share one host and port (ErrOriginConflict; the same
// check guards a command's callbackUrl, Engine.CheckCallback, CMD-6).
//
// Bodies are Go types whose JSON is exactly docs/api.md's, "notifyType" first:
// DeviceDataChangedBody, DeviceDatasChangedBody, BindDeviceBody,
// DeviceAddedBody, DeviceDeletedBody, DeviceInfoChangedBody, the upgrade
// bodies, and Body for the types docs/api.md gives no shape for. A device
// Report is split into one deviceDataChanged push per service and kept
// whole for deviceDatasChanged (Engine.PublishReport, §5.13, §5.16).
// A command's callback (CMD-6) needs no subscription: Engine.Send (or
// SendFor) delivers any body, such as the encoded command.Notification, to
// a checked URL with the same outbox, retries and signing.
//
// Every accepted push is a Message in the Store's outbox before Publish,
// PublishReport or Send returns (PSH-6). Engine.Run loads the outbox and
// delivers: POST, success on 2xx; no answer within Config.Timeout (15 s),
// a connection failure, or 501–504 is a failure and the message is kept
// and retried for Config.KeepTime (10 min); any other answer (other 4xx,
// 500, 505+, 3xx — redirects are not followed) is final, and the message
// is dropped as rejected. A valid URL that fails is retried after
// Config.RetrySchedule (1 s, 5 s, 15 s, 30 s, 60 s, then 60 s); after
// Config.FailureThreshold (10) failed tries within the keep time it is
// invalid and is probed every Config.ProbeInterval (30 s) with its oldest
// message; an answer makes it valid and its kept messages flow again.
// Messages whose keep time ends are dropped: counted (Stats), logged, told
// to Config.Listener with ErrExpired, and deleted. Every push carries a
// webhook-id header that is the same on every try (PSH-5); with a
// subscription secret it is signed the Standard Webhooks way (PSH-7, Sign,
// Verify). Endpoints and Stats report each URL's state, failures, queue
// depth, lag and counters (GET /doze/v1/endpoints, metrics).
//
// # Scheduling
//
// Each URL has its own queue, ordered by expiry (which is enqueue order).
// One dispatcher goes round the URLs that have messages, taking the next
// due message of the next URL that may start a try, and hands it to one of
// Config.Workers (128) workers. A URL may have Config.EndpointConcurrency
// (16) tries in flight while it answers, and one at a time while it fails,
// is invalid, or has not yet answered 2xx since Run started. So a URL that
// never answered holds one worker, one that answered and then hangs holds
// at most 16 until its first timeout and then one, and a failing one holds
// none between its retries: one endpoint's backlog never holds up another
// (PSH-4 round-robin).
//
// # Security
//
// The SSRF guard refuses loopback, link-local, unspecified, multicast and
// cloud-metadata addresses (169.254.169.254, fd00:ec2::254), 0.0.0.0/8 and
// 255.255.255.255 unless Config.Allow covers them; private (RFC 1918)
// addresses are allowed, since platforms live in private networks. An
// IPv6 address that carries an IPv4 one (IPv4-mapped and -compatible,
// SIIT, NAT64 64:ff9b::/96 and every RFC 6052 reading of 64:ff9b:1::/48,
// 6to4, Teredo) is judged by that IPv4 address as well (DeniedReason). A
// host that ends in a number but is not dotted-decimal IPv4 (2130706433,
// 0x7f.1, 0177.0.0.1, 127.1) is refused as ErrURLSyntax, because
// resolvers read those forms in different ways. Subscribe resolves the host and
// checks every address; the engine's dialer checks the address it actually
// connects to (net.Dialer.Control), so a name re-pointed after subscribing
// (DNS rebinding) is refused at dial time, and the message is dropped with
// ErrAddressDenied rather than retried. Send checks IP-literal hosts at
// once and names at dial time. No proxy is used. A Config.Transport
// replacement (tests) bypasses the dial-time check.
//
// HTTPS callbacks are verified with the system roots and the host name, or
// with what Config.TLSConfig gives for the message's application (its own
// CAs, APP-6), over a transport of that application's own, which dials
// through the same guard. A certificate that does not verify fails the try
// with a *CertificateError naming the host and the application; the try is
// retried, so a push waits for the application to fix its trust.
//
// Secrets: "whsec_<base64>" (the key is the decoded bytes, as Standard
// Webhooks specifies) or any other string (its bytes are the key). The
// signature is webhook-signature: v1,<base64 HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>">; the timestamp is the try's
// time in Unix seconds, so it changes between tries while the id does not.
// Secret prints and logs as REDACTED, and has no JSON form in Subscription;
// the bbolt store keeps it in the file (protect the file).
//
// # Concurrency
//
// All Engine methods are safe for concurrent use. Run owns every goroutine
// (dispatcher, workers, a store deleter) and stops them before it returns.
// Subscription methods and Publish/Send work before Run: messages wait in
// the Store and go out when Run starts. Listener methods are called from
// engine goroutines and must not block for long.
//
// # Decisions where the rules were silent
//
//   - Every failed try counts toward the threshold, also tries that were
//     in flight together; after the first failure the URL gets one try at a
//     time, so a burst counts at most EndpointConcurrency at once.
//   - A URL starts with one try at a time and opens up to
//     EndpointConcurrency after its first 2xx (slow start), so new URLs
//     that hang cannot take many workers.
//   - A final non-2xx answer proves the URL reachable: it resets the
//     failure count and makes an invalid URL valid.
//   - Subscribing the same application, type and URL again returns the
//     existing subscription (with the new secret) instead of doubling pushes.
//   - Delivered and dropped messages are deleted from the Store in batches
//     without waiting; a crash in between repeats a delivery, which
//     receivers drop by webhook-id (PSH-5).
//   - Endpoint state (valid/invalid, failures, tries so far) lives in
//     memory: after a restart every URL starts valid. Expiry times are
//     stored, so keep time is counted across restarts.
//   - Config.MaxQueued (100000) bounds one URL's queue; Publish beyond it
//     fails with ErrQueueFull rather than growing memory without end.
//   - Nothing is lost silently (SEC-6): a push that cannot be accepted
//     (Store error, full queue, engine closed, subscriptions unreadable)
//     fails the Publish, PublishReport or Send call, so the caller keeps
//     its input (an uplink stays in its inbox) and may try again; it is
//     also counted in Stats.Refused and logged with its reason. This is
//     the one place the engine both logs and returns an error: the count
//     and the log line must not depend on every caller doing it.
//   - fwUpgradeResultNotify has no sample in docs/api.md; FwUpgradeResultBody
//     follows the original platform's public documentation.
//   - Endpoints lists every URL a message was queued for since New. An
//     invalid URL with nothing queued is not probed; its next message is
//     the probe (sent at once if the probe time has passed).
//
// # Caveats
//
//   - The dispatcher walks the URLs that hold messages until it finds one
//     that may send; with thousands of URLs waiting out retries, each pick
//     costs a walk over them. Fine for hundreds of applications; a timer
//     heap would be the next step beyond.
//   - Publish reads the application's subscriptions from the Store on every
//     call (the bbolt store keeps an index by application and notify type),
//     so several nodes sharing one Store see the same subscriptions.
//   - Endpoint health is per process: nodes sharing a Store each judge a URL
//     on their own tries.
//   - Several nodes (Config.Node, a Store that is a Claimer): an engine
//     delivers only what it holds a lease on. It leases what it stores as
//     it stores it (if another node's claim was quicker, that node
//     delivers), renews its leases and claims free or lapsed messages
//     every ClaimLease/4, and starts a try only if it would end (Timeout)
//     before its leases may. When a renewal fails for so long that its
//     leases may have ended, it forgets what waits and claims back what
//     is still its own, so a message another node took meanwhile is not
//     tried twice. Leases are compared with each node's own clock: clocks
//     must agree to much less than ClaimLease. A message delivered just
//     before its node dies, and not yet deleted, goes out again from
//     another node (at-least-once, same webhook-id). Close does not
//     release leases: another node takes the messages when they end, a
//     node restarted with the same Node at once.
//
// # Figures
//
// Measured figures and how to reproduce them are in docs/benchmarks.md of the
// repository, section "Push engine".
package push
