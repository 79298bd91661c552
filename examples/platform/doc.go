// Command platform is the assembled Doze platform: CoAP and DTLS-PSK for
// NB-IoT devices (package lwm2m), the northbound REST API of
// the API document for applications, a web console at / and, on a
// separate operator listener, Prometheus metrics at /metrics, over one
// bbolt file or a PostgreSQL database that several platform nodes share
// (-store postgres://…).
//
//	go run ./examples/platform
//
// starts it with no setup: CoAP on :5683, DTLS on :5684, the API and
// console on :8743, metrics on 127.0.0.1:8744, data under ./doze-data/, a
// demo application whose appId and secret are printed on the start that
// creates it (and kept in doze-data/apps.json), and the demo water-meter
// product DozeLabs/WM100 with its codec. -help lists the flags;
// -config names a JSON file with any field of Config.
//
// # How the parts meet
//
// platform.go builds every package over one store (storage.go: the bbolt
// store.DB or a postgres.DB, behind the interfaces each package takes and
// the platform's own views); adapters.go holds the
// adapters between them, each asserting the interface it fits
// (transport.KeyStore from the registry, command.Sender through the codec and
// lwm2m, command.Listener and registry.Listener into push, ota.Channel,
// ota.Devices, ota.Object5 and ota.Listener, transport.FileSource for firmware).
// uplink.go is the uplink flow of docs/architecture.md: a device event is handled on
// one of 64 workers chosen by endpoint, so one device's events stay in
// order; a registration binds the device (REG-2); a wake-up lets queued
// commands and upgrades go out (CMD-3, OTA-2); payloads starting FF FE go to
// ota, everything else to the product's codec; reports are checked against
// the product model, kept in history and the shadow, pushed, and
// acknowledged when the codec says so (COD-4). Bind before data: reports
// and notifications of a device that is not bound (its registration was
// refused, or it never registered) are dropped and written to its device
// log, never stored or pushed.
//
// # Concurrency and shutdown
//
// New starts nothing. Run starts the packages' Run loops, the 64 event
// workers and the history pruner, and returns when its context ends and all
// of them have returned. lwm2m's HandleEvent only queues the event (256 per
// worker); once Run is stopping, events are dropped (logged at Info) rather
// than block the lwm2m server's Close. Uplinks are durable before they are
// acknowledged: the platform is an transport.UplinkHandler, and HandleUplink
// puts each uplink in the store's inbox (a synced write, shared by devices
// reporting at the same time) before the lwm2m server sends the device its
// ACK; if that write fails the device gets no ACK and sends again. A
// report leaves the inbox in the one transaction that stores everything it
// causes (store.DB.SaveUplink: history, shadow, the pushes to every app's
// subscribers, what every app's forwarding rules send — forward.go,
// rules_api.go — and the inbox entry), which concurrent workers share through the
// store's group commit, so an uplink costs two shared commits (inbox put,
// SaveUplink) and is either wholly stored or still in the inbox (SEC-6).
// Other uplinks (command responses, PCP frames, refused data) leave it in
// batches (when the worker's queue runs empty or 64 are done). When the
// push engine keeps its outbox elsewhere than the platform's file, history
// and shadow, the pushes and the inbox delete are separate writes, each
// retried alone. Run
// processes what is left in the inbox (a crash, or uplinks dropped while
// stopping) before it serves devices: at least once, so an uplink
// processed just before a crash can be stored and pushed twice.
// TestCrashKeepsAcknowledged kills the platform right after a device's
// 20th acknowledged report and finds all 20 in history. Report ACKs and command ACKs run on
// goroutines that Run waits for; a report ACK's 3-minute wait ends when Run
// stops. main's HTTP server finishes requests in flight (up to 5 s) before
// Close shuts the store. Close is idempotent; call it after Run returned.
//
// # Several nodes (PostgreSQL)
//
// With -store postgres://user@host/db (?search_path=name picks a schema,
// created when absent), several platform processes can run on one
// database; each names itself with -node-id (default: the host name; keep
// it stable across restarts). What the nodes share through the database:
// devices, groups and credentials; products; commands and batch tasks;
// queued LwM2M operations; subscriptions and the push outbox; upgrade
// packages' records, tasks and sub-tasks; history; shadows; the device
// log; bootstrap configurations; and the applications (a table instead of
// apps.json; a node reads them again every 2 s, so an app created,
// changed or deleted on one node reaches the others within that). So any
// node answers any API call about any of them: TestTwoNodesShareStore
// starts two processes on one schema, registers a device through node 1
// and reads, lists and commands it through node 2.
//
// A device moves between nodes (CLU-3): its session (DTLS state with
// Connection ID, registration, observations) lives on the node it talks
// to and is written to the shared tables when it parks and when it
// resumes. When the device's datagrams start arriving at another node —
// its node died, or the UDP balancer in front moved it — that node finds
// the session in the database by the record's Connection ID (or, for a
// device without one, its source address), takes it over and answers:
// no new handshake, no new registration (lwm2m/transport's
// SharedRegistrations, set here on PostgreSQL; docs/cluster.md says how
// to run it). Lookups of unknown Connection IDs are rate-limited per
// source address, so random records cost few queries. TestClusterNodeDies
// runs three processes on one schema, SIGKILLs one and moves its devices
// to another: no acknowledged report or push lost, each command once, no
// handshake (-cluster.devices sets how many devices; 30 by default).
//
// Routing between nodes (CLU-2, cluster.go) is on with -nats
// nats://host:4222 (and -cluster, the name in the NATS subjects): a node
// has the sessions of the devices whose last datagram reached it and says
// so on NATS when one arrives; commands and queued LwM2M operations go out
// only from that node (command.Config.Sessions) — one queued through
// another node is stored there and the node with the session is woken to
// send it in the device's current window (TestClusterRoutesOverNATS);
// calls that need the session (LwM2M operations, the registration view,
// the MQTT service call, an immediate command) are forwarded to that node
// with the caller's application and answered as it answers (a Doze-Node
// header names it). Without -nats each node sends only at the device's
// next uplink there.
//
// What else is per node, plainly:
//
//   - Behind a balancer that hides devices' addresses, set
//     moveLookupsPerSource (default 16 lookups a second per source
//     address) or moved devices queue behind that limit.
//   - A node that a device left keeps its registration in memory until
//     its lifetime passes or the device comes back (then the node resumes
//     from the newer state the other node stored, never its own); at
//     expiry it sees the registration renewed in the store and drops it
//     without an event.
//   - Work claimed in SQL under the node id: each push is delivered by
//     the node holding its lease (push.Config.Node): a node leases the
//     pushes it stores as it stores them, renews its leases every 15 s
//     (a quarter of the 1-minute lease), and every 15 s claims pushes
//     nobody holds — a dead node's once its leases end, so they go out
//     from another node within about 75 s. A restarted node takes back
//     only its own and free pushes, not another live node's in flight
//     (TestPushTwoNodesDeliverOnce, TestPushTakeoverAfterLease in
//     store/postgres). A push can still arrive twice when a node dies
//     after the answer and before the delete (at-least-once, with its
//     stable webhook-id, PSH-5). The deadline sweep (binding timeouts,
//     devices going OFFLINE) is done by the one node holding the
//     "registry.sweep" lease (3 minutes, renewed every minute; another
//     node takes over within 4 minutes of its holder's death); each
//     device is settled in one locked transaction anyway, so it is told
//     OFFLINE once (TestRegistrySweepOneNode).
//     Command and LwM2M operation timers are claimed too
//     (command.Config.Node): a command whose timeout, expiry, retry or
//     retransmission is due is leased (1 minute, renewed while it stays
//     due) to the one node whose timers claimed it, and only that node
//     times it out or expires it; a node serving the device after an
//     uplink leaves a command past its time to its holder. Each node
//     looks for due commands at least every 15 s, so a dead node's are
//     taken within about 75 s of its leases' end
//     (TestCommandTimeoutsTwoNodes: one TIMEOUT per command).
//   - A command's first send or retry is not leased: with -nats only
//     the node that has the device's session sends (command.Config.
//     Sessions; another node hands the send over); without -nats it may
//     be made by the node whose timers claimed it and by a node serving
//     the device after an uplink at the same time, and a send attempt in
//     flight on one node may be taken as SENT by the claiming node
//     (CMD-9's crash recovery). Upgrade steps are claimed (ota.Config.Node):
//     a step past its deadline is timed out by the node holding its
//     lease, a task's automatic retry is made by one node
//     (TestUpgradeStepTwoNodes); starting sub-tasks is not claimed. Node
//     clocks must agree to well under the leases (NTP).
//   - Data forwarding rules are kept in the shared store; every node
//     applies them to the reports it takes and runs a forwarding engine
//     on the shared outbox, and each forwarding message is claimed under a
//     lease (as pushes are) and delivered by one node; a dead node's go
//     out from another once their leases end (at least once: one
//     delivered just before its node died may go out again, with the same
//     id). A rule changed on one node reaches another node's reports
//     within its rule cache (1 s).
//   - Access tokens are kept in the memory of the node that issued them:
//     an application logs in on each node it calls (or the HTTP balancer
//     keeps it on one). Upgrade package contents are files under each
//     node's data directory (ota.Dir): upload a package on the node that
//     serves the devices, or share the directory. The admin token is per
//     data directory unless the config sets adminToken (set the same on
//     every node).
//   - An uplink acknowledged by a node is in the shared inbox with that
//     node's id; only a node with that id replays it after a crash.
//   - A subscription made on one node reaches another node's reports
//     within the push engine's subscription cache (1 s).
//
// Speed: at 200 DTLS devices on the project machine the platform on a
// local PostgreSQL moved 0.23–0.31× the end-to-end uplinks of bbolt
// (docs/benchmarks.md): every uplink pays its own synced commits there,
// where bbolt shares one among concurrent uplinks.
//
// # Decisions where the spec is silent
//
//   - One platform, many applications: every resource belongs to the app
//     that created it, and another app gets what an unknown id gets
//     (api_owner.go); a device's notifications and history are its owner's
//     (history while the owner's historyEnabled is on). nodeIds, product
//     keys and group names stay unique on the whole platform. Data from
//     before ownership goes to the default app (apps_migrate.go).
//   - An app's device quota refuses with 403 device_quota_exceeded, not
//     429: waiting does not lift it (apps_quota.go).
//   - The per-device log (GET /doze/v1/devices/{id}/log) keeps the last
//     deviceLogSize (200) events per device in the store (store.DeviceLog),
//     pruned as new ones come, so it survives a restart. An event is queued
//     in memory and written once a second or 256 at a time, many to a
//     commit: the uplink path pays no disk sync for its log lines (Add
//     0.55 µs against 1.74 ms for a synced write of its own,
//     BenchmarkDeviceLogAdd; 2 shared cores, one run), and a crash loses at
//     most the last second of log lines. Cancel tasks (deviceCommandCancelTasks) are receipts kept in memory;
//     the cancelled commands themselves are durable.
//   - Desired shadow values (STO-3) are delivered when the device next
//     wakes as the first command of their service whose paras name every
//     desired value (the water meter's desired {"period": 600} on Meter
//     becomes SET_REPORT_PERIOD); values no command can carry stay desired
//     and the device log says so. A product model does not say which command
//     sets which property, so this is our rule.
//   - Status (REG-3, status.go). An LwM2M registration is the device's
//     connection: when it ends (De-register, or the lifetime passed without
//     an Update) the registry's connection rule applies and the device is
//     OFFLINE disconnectGrace (1 min) later unless it registered again, so
//     a reboot's De-register and Register do not flap. ABNORMAL is the
//     device that talks but cannot be understood: abnormalAfter (3)
//     uplinks in a row that cannot be used (over the size limit, no codec,
//     undecodable, no service fitting the product model) make it ABNORMAL,
//     and the next usable one (a stored report, a command response) makes
//     it ONLINE. The original platform showed ABNORMAL and applications
//     filter by it, so it is kept with this trigger rather than removed.
//     Every move pushes deviceInfoChanged.
//   - Notifications (APP-7, notify.go): deviceModelAdded/Deleted when a
//     product is added or deleted; deviceDesiredPropertiesModifyStatusChanged
//     when the command carrying desired values (supersede key
//     shadow:<serviceId>) is delivered or ends. deviceEvent and
//     serviceInfoChanged have no trigger here (product models declare no
//     events; a device has no per-service settings), so subscribing to them
//     is refused with 400 notify_type_not_sent.
//   - Batch tasks check their command against every target device's product
//     model, all or nothing; the task's timeout (minutes) caps each
//     command's expireTime. Upgrade tasks leave out devices whose product
//     does not declare the upgrade capability of the package's kind (OTA-5)
//     and list them with the reason.
//   - deviceInfo.manufacturerName, when not given, is taken from the product,
//     so upgrade packages (matched by manufacturerName) find the device.
//   - Listing commands or batch-task rows without a deviceId walks every
//     device: fine for the example platform, not for a million devices.
//   - Commands belong to the app that sent them: another app's command is
//     answered 404 on cancel and left out of listings; commands the
//     platform sends itself (desired shadow values) are listed for every
//     app, and a device's cancel task cancels the caller's PENDING commands
//     and the platform's. Batch tasks are not scoped by app yet.
//   - Deleting a device (REG-5) ends its registration and its DTLS session,
//     live or parked (transport.Server.Disconnect), and cancels its PENDING
//     commands; its upgrade sub-tasks are left to fail in their task.
//   - A token is 32 random bytes; tokens live in memory, so a restart logs
//     every app out (apps and secrets are kept).
//
// # Security (SEC-1, SEC-3, SEC-5)
//
//   - Transport: a device is registered with security "PSK" (the default:
//     DTLS only, with its key) or "NONE" (no key: plain CoAP only, for
//     networks that secure the link themselves). The default config keeps
//     plain CoAP on, but only for NONE devices: the registry refuses to
//     bind a PSK device over plain CoAP (registry.ErrWrongTransport), so
//     an impostor presenting a meter's IMEI, which is also the default
//     verifyCode, binds nothing; policy.go gives the lwm2m server the
//     same answer per endpoint (lwm2m EndpointPolicy) so such a
//     registration is refused before the server keeps anything. -coap off
//     turns plain CoAP off altogether.
//   - Uploads stream: a multipart body is read part by part; a package
//     file goes straight to disk, a profile zip (4 MiB) and codec JSON
//     (2 MiB) are read under their caps; a part over its cap gets 413
//     upload_too_large naming the limit. At most maxUploads (4) uploads
//     run at once (503 too_many_uploads, Retry-After) and 2 per app (429).
//     JSON bodies over 1 MiB get 413 body_too_large. A 24 MiB package
//     upload allocates 0.18 MiB in the whole process (TestUploadStreams;
//     2 shared cores).
//   - Login and refreshToken are rate-limited by token buckets, per app (10
//     at once, then one every 6 s) and per source address (20, then one
//     every 3 s; IPv6 counted per /64; at most 10,000 addresses kept), and
//     answer 429 login_rate_limited with Retry-After. Access tokens live
//     tokenTTL (1 h), refresh tokens 7 days and work once; an app holds at
//     most 64 token pairs, its oldest evicted. Each app has its own lock;
//     an app's expired pairs are pruned at its next login, no sweep over
//     every app.
//   - MQTT devices: the broker (package mqtt) limits failed
//     authentications per device (10 at once, then one every 6 s, counted
//     under both the deviceId and the nodeId) and per source address (100,
//     then one a second: failures only, so honest devices behind one NAT
//     are not affected), and refuses a limited device or address, even
//     with the right secret, unchecked, with CONNACK 0x9F (3.1.1: 3). A
//     name that is no device counts against the address only. A refused
//     secret writes at most one "refused" entry in the device's log per
//     minute; the next one says how many were not written one by one, so
//     whoever knows a nodeId cannot flush the device's log.
//   - Secrets are printed once: the banner shows an app's secret only on
//     the start that created it; later starts say to use -reset-secret.
//     The administrator token of the apps API (/doze/v1/apps, APP-3) is
//     the config's adminToken, or one created and printed on the first
//     start, of which only the SHA-256 is kept (admin.json).
//   - /metrics is served on the admin listener (-admin, default
//     127.0.0.1:8744; "off" disables it), never the public one; a
//     non-loopback admin address needs adminToken (a bearer token). Labels
//     carry no callback URLs or device identifiers.
//   - /doze/v1/endpoints lists only the calling app's callback URLs (its
//     subscriptions' and those its commands used since the start), and
//     taskDetails only the caller's commands and the platform's.
//   - Loopback callback URLs pass the SSRF guard by default only with
//     -demo; otherwise only if allowPush names them.
//
// # Tests
//
// e2e_test.go runs the README walkthrough in-process on loopback with a real
// DTLS device client; console_test.go drives the web console in headless
// Chromium through chromedriver (skipped with a message when either is not
// installed); openapi_test.go checks openapi.json against the routes both
// ways; conformance_test.go checks docs/api.md status codes and rules (CMD-6 403,
// cancel 409, STO-2 paging, device-delete cleanup) and that broken bodies
// get a 4xx with the error body, with FuzzCommandBody over two handlers;
// bind_test.go checks bind before data and deleting a connected device; shutdown_test.go checks that Run and
// Close leave no goroutine behind (goleak) and never block on a full queue.
//
// # Uplink pipeline: CPU per uplink by stage
//
// Measured with the README's load run (1,000 DTLS devices × 20 uplinks,
// deviceDataChanged, demo meter: three pushes per uplink) and a CPU
// profile of the platform over the uplink phase, before (commit 9dc71e2)
// and after issue 17's changes, one after the other on 2 shared cores
// (load average 7.6–8.0), µs of platform CPU per uplink; a stage is every
// sample with that package on the stack (transport: lwm2m and DTLS
// without the store write inside it, which counts as store; push: without
// its store writes):
//
//	            all  transport  decode  check  store  push  other (runtime, GC, platform glue)
//	before      416         66     1.0    0.5    112    55    182
//	after       448         86     2.5    0.0    100    64    195
//
// The CPU per uplink barely moved: the platform was not CPU-bound but
// bound by the wait for disk syncs on one bbolt writer (four commits per
// uplink, on three write queues). What changed is that wait: the store
// stage alone (BenchmarkUplinkStore in package store, 64 workers, synced)
// goes from 1,526–1,780 to 3,006–3,333 uplinks/s (1.9×). The transport
// share includes the codec's report acknowledgement, a separate CoAP
// downlink per report (about 9% of the platform's CPU in both profiles),
// and stays one: the ACK of a notification is Empty (RFC 7252 §4.2, RFC
// 7641 §4.5) and the 2.04 of a Send carries nothing an LwM2M client hands
// to its application, which takes the acknowledgement from a write of
// /19/1/0 (TestSendReportAckOnDataChannel). The decode, check and encode
// stages now take the codec's record path: each service's JSON is written
// once, straight from the codec.Record, for history and every push body
// (BenchmarkReportDecode; TestReportGolden pins the bytes).
// Figures and the load runs: docs/benchmarks.md, "Uplink pipeline".
//
// Third pass, on a quiet machine (load average 1.3–1.7; 400 devices × 50
// uplinks; a 5 s profile from the operator listener's
// /debug/pprof/profile during the uplinks, its shares applied to the
// platform's whole CPU time for the run, µs per uplink). Stages as above;
// inbox is the synced put before the ACK; store is the SaveUplink
// transaction with the commits it leads; push is the HTTP deliveries with
// their outbox deletes; ack is the codec's report acknowledgement
// downlink. A group commit's CPU counts to the stage whose write led it,
// so inbox and store share the commits between them:
//
//	                          all  transport  inbox  decode  check  store  push  ack  GC  other
//	CoAP, 3 deviceDataChanged 331         39     20     0.7      2     62   112   25  37     33
//	CoAP, 1 deviceDatasChanged 256        48     27     0.7    1.5     55    41   33  22     28
//	MQTT JSON, 2 pushes       222         22     31      16     <1     53    54    –  29     17
//
// The platform is neither bound by one stage nor by its CPU alone: at
// these rates it used 1–1.25 of the two cores, the simulator's devices and
// the webhook sink the rest, and each acknowledgement waits 7–12 ms in
// Inbox.Put for the one bbolt writer, whose commits (1.6–2.7 ms each,
// carrying the pipeline's transactions) keep it ~80% busy. An MQTT report
// costs the durable path two commits, as a CoAP uplink does
// (TestMQTTReportTwoCommits); letting acknowledgements commit first was
// measured and did not help (docs/benchmarks.md, "Third pass").
//
// Fifth pass: acknowledge first, process after (eventqueue.go). With both
// running at once on the same cores, the platform settled where every
// acknowledgement waited for the pipeline's share of the CPU (3,400–3,900
// ACKs/s). Now a worker's queue never makes an acknowledgement wait (at
// most maxBacklog uplinks wait; beyond that one is not acknowledged), and
// while devices are acknowledged faster than the workers can take their
// uplinks (the backlog grew by more than 20 in the last 100 ms, more than
// 32 wait, and more arrived than 5/4 of what the pipeline was lately seen
// to take in 100 ms), the workers hold every event back — each at most ackFirst, 2 s,
// after it arrived — until no uplink came for 30 ms or no more come than
// the pipeline takes. Durable ACKs went
// to 0.37–0.45 of bare go-coap (from 0.13–0.15), end to end 3–10% down, and
// a paced load the pipeline keeps up with is never held (p99
// device-to-push 32–40 ms at half the maximum rate). In a held phase the
// platform spends ~65 µs of CPU per acknowledged uplink: the inbox put 16%,
// the wake-up event every message raises 15% (since cut: one wake-up per
// device while one waits in its queue, pendingWakes), GC ~10%, DTLS and
// CoAP most of the rest. Caveat: during a storm, registrations, wake-up work
// (desired values, queued LwM2M operations, upgrades) and the codec's
// report acknowledgement wait with the uplinks, up to ackFirst; queued
// commands do not (the command engine hears of a wake-up before the
// queue). Figures: docs/benchmarks.md, "Fifth pass".
//
// Sixth pass: what bounds end to end. The load run now measures, in the
// same run, the webhook deliveries alone (every push of the run posted
// again to the sink by plain net/http) and, from the machine's CPU time,
// the bound of the parts no platform leaves out: the device's exchanges
// (report and report acknowledgement, each at the bare server's CPU) plus
// its deliveries. On 2 cores that bound is 0.21–0.27 of bare go-coap with
// the demo meter's three deviceDataChanged, 0.33–0.41 with one
// deviceDatasChanged, and 0.24–0.30 of a bare MQTT broker with two pushes
// per report: an HTTP delivery costs the machine about what a whole DTLS
// exchange does. The platform reaches 0.30–0.49 of it (CoAP) and
// 0.23–0.34 (MQTT); the rest is its own work (synced inbox and store
// commits, check, queues). The ingest gate now learns the pipeline's rate:
// before, a stall under a steady load it kept up with held every uplink
// for ackFirst (p50 device-to-push 2 s in one paced run); see
// docs/benchmarks.md, "Sixth pass". The acknowledgement is bound by the
// machine's CPU, not by the wait for the disk: while devices are
// acknowledged the two cores are 85–99% busy (a sixth of it kernel work
// charged to no process: loopback UDP, the syncs), and 128 or 256 in flight are
// acknowledged no faster than 64 (12,000–17,000/s); the ratio to bare
// go-coap moves with the bare server's own 2× spread between runs
// (docs/benchmarks.md, "Seventh pass").
//
// # Caveats
//
//   - An MQTT device that reconnects with the same client id right after
//     its previous connection closed cleanly can, rarely, find its new
//     connection unknown to the broker: mochi's clean-up of the closed
//     connection removes the client id after the disconnect hook, and a
//     connection opened in between stays open and subscribed but is
//     written nothing. A command sent then was DELIVERED without reaching
//     the device (seen in TestMQTTSimulatorLoad, 1 in 36–100 runs with
//     both cores loaded). Now such a downlink is not delivered
//     (mqtt.ErrNotSubscribed: the command stays SENT, is sent again when
//     the device connects again, or times out at its deadline) and the
//     lost connection is closed,
//     so that the device connects again (mqtt
//     TestCommandToConnectionUnknownToBroker). A device that does not
//     reconnect by itself is not reachable until it does.
//   - deviceDataHistory with a property reads the device's whole matching
//     history and filters and pages it here (the store pages by record, not
//     by property); bound it with startTime/endTime on long histories.
package main
