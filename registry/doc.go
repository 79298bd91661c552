// Package registry keeps the devices of a Doze platform: registration and
// credentials, binding and its timeout, online status, groups and gateways
// (SPEC REG-1…REG-5).
//
// # Model
//
// An application registers a device (Registry.Register) with its nodeId
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
// # Decisions where the SPEC is silent
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
// The DTLS server's key lookup (pion's PSK callback) adapts in a line:
//
//	PSK: func(identity []byte) ([]byte, error) {
//		return reg.PSK(context.Background(), string(identity))
//	},
//
// and push turns Events into deviceAdded, bindDevice, deviceInfoChanged
// and deviceDeleted notifications through a Listener.
//
// # Figures
//
// Measured on 2 cores, AMD EPYC (Go reports "Oxide Virtual Turin-like
// Processor"), Go 1.26, on a machine shared with seven other builds (load
// average 11–13, one shared disk), so absolute numbers are low and vary by
// up to 2× between runs; compare ratios within one run. Register includes
// the deviceInfo checks, a crypto/rand PSK and the UUIDv7; on bbolt it
// includes an fsync per commit (group commit, see package store). Get on
// bbolt is one read transaction and a decode. Benchmarks: BenchmarkRegister,
// BenchmarkGet and BenchmarkMemoryPerDevice here; BenchmarkRegistryRegister,
// BenchmarkRegistryGet, BenchmarkRegistryFileSize and BenchmarkCommit in
// package store.
//
//   - Memory: 1,000,000 devices in a MemStore take 822 B per device, 755 B
//     beyond the bytes of their own strings (target ≤ 1 KB).
//   - bbolt file: 672 B per device (100,000 devices, ~40 bytes of
//     deviceInfo, no groups); 1176 B before filling pages to 90%.
//   - Group commit (BenchmarkCommit, one 200-byte put per write, same run):
//     with 64 callers 10 800 writes/s, 2.9× bbolt's Batch (3 700/s) and 39×
//     one Update per write (280/s); with 8 callers 670/s, 1.7× Batch. With
//     1 caller Batch waits out its 10 ms delay (55/s) while group commit
//     runs like a plain Update (415–484/s against 341–743/s in three
//     interleaved runs each).
//
// Operations per second (one run of each package's benchmarks):
//
//	                      1 caller    8 callers   64 callers
//	Register, memory      49 700/s    18 200/s    20 400/s
//	Register, bbolt          162/s     1 180/s     4 450/s
//	Get, memory          636 000/s   735 000/s   386 000/s
//	Get, bbolt            82 400/s    56 600/s    63 100/s
//
// Register in memory gets slower with more callers: MemStore has one lock
// and the two cores were busy with other work; on bbolt more callers share
// each fsync, so throughput grows with them.
package registry
