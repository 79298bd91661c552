// Package mqtt is Doze's MQTT device access (MQT-1…MQT-5): a broker,
// embedded in the platform, for devices without CoAP — 2G/3G/4G modules
// and gateways — speaking MQTT 3.1.1 or 5 over TCP (default :1883) and
// TLS (default :8883).
//
// The broker is github.com/mochi-mqtt/server/v2, a maintained, MQTT 5
// compliant broker library; this package adds Doze's rules as one hook:
//
//   - Authentication (MQT-1): username = deviceId or nodeId, password =
//     the device's secret, checked by Devices (the registry compares the
//     secret's salted hash in constant time). The client id must be the
//     device's own (deviceId, nodeId, "{deviceId}_…" or empty), so no
//     client can take over another device's session. Wills are dropped.
//   - Failed authentications are limited, per device and per source
//     address (an IPv6 /64), with token buckets of golang.org/x/time/rate
//     (Config.DeviceAuthLimit, default 10 at once then one every 6 s;
//     Config.AddrAuthLimit, default 100 at once then one a second). Only
//     failures spend tokens, so honest devices sharing an address (a
//     carrier-grade NAT) are not limited by their number; a CONNECT counts
//     as a failure of its device while its credentials are checked, so
//     guesses sent in parallel cannot pass together. An address is not
//     charged that way (a NAT's devices may all connect at once after a
//     restart): it is limited by the failures it spent, and by at most
//     1,000 of its CONNECTs being checked at once. While a device or address has no
//     token, each of its CONNECTs is refused before its secret is
//     checked, even the right one, with CONNACK 0x9F "connection rate
//     exceeded" (MQTT 3.1.1: 3, server unavailable). A device's budget is
//     found by the username; a failure that Devices reports as an
//     *AuthError also counts under the device's other name (deviceId or
//     nodeId), and one wrapping ErrUnknownDevice counts against the
//     address only and keeps nothing for the name. Each kind keeps at
//     most 100,000 buckets: full ones are dropped first, then an
//     arbitrary one. Refusals are counted (Stats.AuthFailures,
//     Stats.AuthLimited) and logged as one summary line a minute per
//     kind, with the count and the last attempt, not a line each.
//   - Gateway events (MQT-5): a gateway publishes add, delete and status
//     requests for its sub-devices on its own …/sys/events/up;
//     ParseEvents reads them (bounded: MaxEvents, MaxSubDevicesPerEvent,
//     MaxStatusesPerEvent, MaxFieldLen, …), EventResponse encodes the
//     answer that Event sends down on …/sys/events/down. The registry
//     work is the handler's.
//   - Batch reports (MQT-5): a gateway reports for many sub-devices at
//     once on its own …/sys/gateway/sub_devices/properties/report;
//     ParseSubDeviceReports reads it (at most MaxBatchDevices entries,
//     Config.MaxBatchPayload bytes), each entry on its own.
//   - ACL (MQT-1, MQT-2): a device publishes only on its uplink topics
//     and subscribes only under $oc/devices/{its deviceId}/sys/; a
//     gateway also under its sub-devices' (MQT-5, SubDevices).
//   - Limits (MQT-4): QoS 0 and 1; at most Config.MaxRate messages per
//     second per connection (a token bucket of golang.org/x/time/rate,
//     bursts of MaxRate) and Config.MaxPayload bytes per payload
//     (Config.MaxBatchPayload for a gateway's batch report);
//     retained messages refused. An MQTT 5 connection that breaks one is
//     closed with DISCONNECT 0x96, 0x95 or 0x9A; an MQTT 3.1.1 message is
//     dropped unacknowledged. Each refusal is counted (Stats) and logged.
//
// Connections before their CONNECT: a peer has proven nothing until its
// CONNECT is read and its credentials checked, so what it may hold until
// then is bounded. The broker is served through this package's own TCP
// listener (the library lets a server bring its own), which gives every
// accepted connection a deadline of Config.ConnectTimeout (default 30 s)
// for its TLS handshake and CONNECT; once the broker has read the CONNECT
// it replaces that deadline by the keep-alive's (one and a half times the
// keep-alive; none for keep-alive 0), so the timeout bounds only what
// comes before. A connection is pending from accept until the broker
// first writes to it (the CONNACK, whatever its code) or it closes; at
// most Config.MaxPendingConnects (default 1024) are pending over every
// listener, and a new connection above that is closed at once, before
// anything is read. The cap is global, not per source address: devices
// behind a carrier-grade NAT share addresses. Connected clients do not
// count, so a flood of silent connections delays new devices by at most
// the connect timeout and never touches connected ones; the memory it
// can hold is about MaxPendingConnects packets of the broker's maximum
// size. A failing Accept (out of file descriptors) is retried after a
// pause (5 ms doubling to 1 s) instead of stopping the listener. Timeouts
// and refusals are counted (Stats.ConnectTimeouts, Stats.PendingRefused)
// and logged as one summary line a minute per kind, with the count, not
// a line each; Close flushes what is left. Close also closes the
// pending connections, so it does not wait for their deadline.
//
// A device's message reaches Handler.Message before the broker sends its
// PUBACK, so a handler that keeps it durably gives QoS 1 its meaning: an
// acknowledged report is never lost. Messages are not forwarded to other
// subscribers. Downlinks (Command, Send) go out at QoS 1 and return when
// the device's PUBACK arrived.
//
// Sessions and DELIVERED: a downlink is delivered (Command returns nil)
// only by a PUBACK for its packet id read on the connection the PUBLISH
// was written to. When a device reconnects with the same client id (a
// session takeover) or after its connection dropped, the broker follows
// the MQTT session rules (3.1.1 §3.1.2.4 and §4.4, 5.0 §3.1.2.4 and §4.4):
//
//   - The new connection resumes the session (CleanSession 0; MQTT 5:
//     Clean Start 0 and a session expiry): the broker re-sends every
//     unacknowledged downlink on it with DUP set, and the downlink's
//     waiter moves to it; the PUBACK of the new connection delivers it.
//     The old connection's close does not fail it. The resumed session's
//     subscriptions come with it, so a device that does not subscribe
//     again is still told to be listening (Handler.Listening).
//   - The new connection starts clean: the old session and its in-flight
//     downlinks are discarded, so each fails with ErrDisconnected when
//     the new session is established (the command engine keeps the
//     command and sends it again once the device listens). A PUBACK of
//     the new connection can only deliver what was sent on it.
//   - The connection drops and its session ends with it (CleanSession 1,
//     or MQTT 5 session expiry 0): its downlinks fail with
//     ErrDisconnected at once. A session that outlives its connection
//     keeps them until the device comes back (then as above) or the
//     caller's context ends.
//
// Lifecycle: New checks the Config and opens nothing. Listen opens the
// ports (Run calls it if nobody did). Run serves until its context ends or
// Close is called, then closes every connection and returns nil; a second
// Run returns an error wrapping ErrClosed that says "Run called twice",
// and Run after Close returns ErrClosed. Close is idempotent, may come
// before Run, and returns only after Run has.
//
// Concurrency: Server is safe for concurrent use. Handler methods run on
// the connections' goroutines. Run owns the broker's goroutines; Close
// waits for them.
//
// Caveats: a connection whose CONNACK cannot be written after its
// credentials were accepted is counted as connected until the platform
// restarts (the broker library reports no disconnect for it).
package mqtt
