// Package registry keeps the devices of a Doze platform: registration and
// credentials, binding and its timeout, online status, groups and gateways
// (REG-1…REG-5).
//
// An application adds a device with Registry.Register (an Enrollment); the
// device binds when it first connects with its credential
// (Registry.Connect), its uplinks keep it ONLINE (Registry.Touch), and
// Registry.Run expires registrations that never bound and turns silent
// devices OFFLINE. Everything is in a Store (MemStore, or package store).
//
// A Registry follows Doze's one lifecycle: New checks the Config and starts
// nothing; Run acts on deadlines until its context ends or Close is
// called, and returns nil; a second Run returns at once with an error
// wrapping ErrClosed that says "Run called twice", and Run after Close
// returns ErrClosed; Close is idempotent, may come before Run and returns
// only after Run has. After Close every method returns ErrClosed.
//
// # Model
//
// An application registers a device (Registry.Register, an Enrollment) with its nodeId
// (IMEI or MAC), deviceInfo naming a product of the catalog (checked
// through the Products interface), an optional verifyCode (default: the
// nodeId), a transport security (SecurityPSK, the default, or
// SecurityNone), a PSK for SecurityPSK (default: 16 bytes from
// crypto/rand; none for SecurityNone) and a binding timeout (default
// 180 s, 0 = never). The registry gives it a
// deviceId, a UUIDv7, so ids sort by registration time. "urn:imei:X" and
// "X" are the same nodeId (NodeKey); one nodeId belongs to one device.
//
// A device binds the first time it connects with the right credential
// (Registry.Connect with the verifyCode, or with the PSK a DTLS handshake
// succeeded with; Registry.PSK is the lookup the DTLS server needs, by
// identity = nodeId). Binding moves it INACTIVE → ONLINE. The transport
// follows the security (SEC-1): a SecurityPSK device binds only with its
// PSK, over DTLS, so an impostor over plain CoAP who knows the nodeId (the
// IMEI printed on the meter) gets ErrWrongTransport; a SecurityNone device
// has no key (Registry.PSK refuses it) and binds only over plain CoAP with
// its verifyCode. Registry.Security is the lookup a server's endpoint
// policy needs before it keeps anything for a connecting endpoint. A registration
// that has not bound when its timeout passes is deleted and reported as
// EventExpired. Every uplink calls Registry.Touch. An NB-IoT device silent
// for Config.SilencePeriod (25 h) goes OFFLINE; a connection-oriented
// device (Connect with Persistent) goes OFFLINE Config.DisconnectGrace
// (1 min) after Registry.Disconnect. The platform may mark a device
// ABNORMAL. Deleting a device removes its credentials at once (REG-5).
//
// Devices sit behind gateways (Enrollment.GatewayID, NodeType GATEWAY)
// and in named groups; List filters by status, product, device type,
// gateway, group, node type and registration time, with paging, ordered by
// deviceId.
//
// Changes are reported to a Listener (added, bound, expired, info changed,
// deleted, status changed), after they are stored.
//
// # Time
//
// The timing rules are pure functions (ExpiresAt, OfflineAt,
// NextDeadline). Each write stores the device's next absolute deadline
// (Device.Deadline); Registry.Run sleeps until the earliest one in the
// Store (Store.Due) and then expires or turns OFFLINE what is due. A
// restarted Run acts on the stored deadlines; a write with an earlier
// deadline wakes Run; Run also rechecks every Config.Recheck (1 min) for
// deadlines written by other processes sharing the Store.
//
// # Storage and concurrency
//
// A Registry is safe for concurrent use and holds no lock of its own: the
// Store makes each change atomic (Store.Update runs a function on the
// stored device inside its transaction), checks nodeId uniqueness and
// references to gateways and groups. MemStore keeps everything in memory;
// package store keeps it in bbolt with indexes for nodeId, status,
// product, gateway, group and deadline. Both pass registrytest.Run.
//
// Secrets: a PSK prints as REDACTED through fmt, slog (LogValuer) and JSON;
// PSK.Hex is the only way to see it. Errors never contain a PSK or a
// verifyCode.
//
// # Decisions where the rules are silent
//
//   - Bad input is a *FieldError naming the field, the value (never a
//     secret; at most 64 characters of it) and the rule; Register reports
//     every problem of its input at once (errors.Join), unknown gateway
//     and groups included. A taken nodeId is found when the Store creates
//     the device, so it is reported once the rest has passed.
//   - nodeId and verifyCode: 1 to 256 characters, no spaces or control
//     characters; a nodeId carries the "urn:imei:" prefix at most once. deviceInfo fields: at most 256 characters;
//     manufacturerId, deviceType, model and protocolType are required.
//     Group names: 1 to 64 characters, unique.
//   - ABNORMAL is sticky: uplinks and silence do not change it; only
//     ClearAbnormal does, which computes ONLINE, OFFLINE or INACTIVE from
//     the device's history.
//   - A device connecting after its binding timeout passed is refused
//     (ErrExpired) even if Run has not deleted it yet.
//   - Deleting a gateway deletes its sub-devices first (each reported as
//     deleted). An expired registration is reported only as EventExpired,
//     not also as EventDeleted.
//   - Touch of a device that has not bound fails (ErrNotBound): a device
//     must connect with its credential before it can report.
//   - Query.PageSize 0 means no paging (every match).
//   - Devices are found by nodeId, not by verifyCode: a plain LwM2M device
//     registers with its nodeId as endpoint name, and Connect compares the
//     verifyCode the platform got from it. With the default verifyCode
//     (= nodeId) the endpoint name is both, and "urn:imei:X" and "X"
//     match each other as verifyCodes too; a verifyCode the application
//     chose is compared exactly.
//
// # Adapters
//
// The DTLS server's key lookup by PSK identity is Registry.PSK, its
// endpoint policy Registry.Security, and push turns Events into deviceAdded, bindDevice, deviceInfoChanged
// and deviceDeleted notifications through a Listener.
//
// # Figures
//
// Measured figures and how to reproduce them are in docs/benchmarks.md of the
// repository, section "Registry".
package registry
