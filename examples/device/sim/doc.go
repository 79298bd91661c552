// Package sim simulates NB-IoT water meters (the Doze demo product
// WaterMeter_DozeLabs_WM100) for demos, end-to-end tests and load runs. The
// command examples/device drives it from flags; the platform's end-to-end
// tests import it and run devices in-process on loopback.
//
// # A device
//
//	d, err := sim.New(sim.Config{Server: "127.0.0.1:5684", IMEI: "868333030000001", Key: psk,
//		Power: sim.Power{Mode: sim.PSM}, ReportPeriod: time.Hour})
//	go d.Run(ctx)     // connect, register, report, answer, sleep; returns when ctx ends
//	<-d.Ready()       // registered
//	d.Report(ctx)     // one meter reading now (wakes a sleeping device)
//	d.Stats(), d.ReportPeriod(), d.SoftwareVersion(), d.FirmwareVersion(), d.Asleep()
//
// Transport: DTLS 1.2 PSK when Config.Key is set (the PSK identity is the
// IMEI, as the platform's deviceCredentials answer gives it), plain CoAP
// otherwise, through the lwm2m package's Client (which uses a DTLS
// Connection ID).
//
// Protocol LwM2M: the device registers (POST /rd, LwM2M 1.1) announcing
// objects 3, 5 and 19; reports are opaque notifications of /19/0/0 once the
// server observes it, LwM2M Send (POST /dp) before that; the platform's
// downlinks are writes of the Multiple resource /19/1/0 (its instance
// /19/1/0/0, or the resource as TLV or SenML; a single value written to
// /19/1/0 itself is refused with 4.00, as the LwM2M formats require).
// Protocol TUP: POST /t/r?ep=IMEI,
// reports are notifications of /t/d, downlinks POSTs to /t/d. Reports are
// confirmable unless Config.NonConfirmable.
//
// Standard objects (Config.Objects = StandardObjects, the command's
// -objects standard): a temperature sensor as a standard LwM2M client
// without object 19 is, for a product that maps its services to resources
// (the platform's demo product TS3303). It announces Device (3),
// Connectivity Monitoring (4), Firmware Update (5) and IPSO Temperature
// (3303), answers reads in plain text, reports its Sensor Value (5700)
// with Min and Max Measured Value (5601, 5602) by notification of each
// resource the server observes, else by LwM2M Send in SenML JSON, and takes
// a write of Application Type (5750) and an execute of Reset Min and Max
// (5605) as its commands (Stats.Commands).
//
// Data: every ReportPeriod (and right after registering unless
// NoFirstReport) the device sends a meterReading encoded by the water-meter
// codec (testdata/watermeter.json, a copy of codec/testdata/watermeter.json,
// embedded): battery level, signal strength, a total flow that grows with a
// per-device flow rate, a pulse counter. Downlinks are decoded by the same
// codec: a readingAck is counted (Stats.ReportAcks); SET_REPORT_PERIOD
// sets the period (seconds) and is answered with setReportPeriodResult
// carrying the command's mid and result 0 (1 for a period ≤ 0 or another
// command); undecodable bytes are counted in Stats.DecodeErrors and logged.
//
// Software upgrade (PCP): downlinks starting FF FE go to the device-side
// Downloader of ota/download; the frames it returns (version answer, block requests,
// download and upgrade results) go up as uplinks. Firmware upgrade (LwM2M
// object 5): a write of a coap:// or coaps:// URI to /5/0/1 starts a
// block-wise download (Block2, 512-byte blocks, lwm2m Client.Download) of
// the URI's path from the server the device is connected to; State /5/0/3
// goes 1 downloading, 2 downloaded, and Update Result /5/0/5 is notified to
// observers at each change; executing /5/0/2 when downloaded goes to state
// 3, installs (the new version is FirmwareVersionOf the image: "DOZEFW
// <version>\n" on its first line) and ends in state 0 with result 1. A
// failed download ends in state 0 with result 7 (the server answered an
// error, such as 4.04) or 4 (connection lost); a URI that is not coap(s)
// gives 7; an empty URI resets to 0/0. /5/0/7 and /3/0/3 read the firmware
// version.
//
// # Power modes
//
// Power.Reachable and Power.NextChange are the timing rules, pure functions
// of the eDRX anchor (registration time), the last uplink and now:
//
//	PSM   reachable for ActiveTime (default 30s) after each uplink, then asleep until the next
//	DRX   always reachable
//	eDRX  reachable in the first PagingWindow (2.56s) of every Cycle (20.48s) from
//	      registration, and for ActiveTime after each uplink
//
// PSM devices register in queue mode. The server's awake window
// (transport.Config.AwakeWindow, 93 s by default) longer than ActiveTime means
// the server may send after the device fell asleep: such requests go
// unanswered, as they would to a real device. A device falls asleep by moving its
// UDP socket to a new port (lwm2m Client.Rebind): the server's requests
// then reach a port nobody listens on and go unanswered, as for a real
// device whose radio is off; the server's retransmissions end in its
// timeout. When it wakes to send, a plain-CoAP device first updates its
// registration so that the server learns its new address (a DTLS device
// keeps its session through its Connection ID); an eDRX device also updates
// its registration at the start of each paging window, standing in for the
// network that would page it. A firmware download in progress keeps the
// device awake.
//
// # Provisioning and load
//
// API is a client of the platform's REST API (docs/api.md): Login, RegisterDevice
// (deviceCredentials; the answer's psk is the device's key, hex) and
// Subscribe. WaterMeterInfo is the demo product's deviceInfo:
// manufacturerId DozeLabs, deviceType WaterMeter, model WM100, protocolType
// CoAP (as in profile/testdata/profiles/WaterMeter_DozeLabs_WM100). A 429
// (100 calls/s per app) is retried with a growing wait.
//
// Load connects N devices (Workers at a time, DRX, no periodic reports),
// subscribes a webhook sink (LoadConfig.SinkAddr) to deviceDataChanged, sends
// Uplinks reports per device and counts the pushes that carry the Meter
// service (one per meterReading): end-to-end uplinks/s is pushes divided by
// the time from the first report sent to the last push received. In the
// same call it runs the bare go-coap v3 server of lwm2m/ceiling (UDP, or
// DTLS PSK with a Connection ID when the devices use DTLS) in this process
// and sends it the same number of confirmable POST /dp from as many lwm2m
// clients: the ceiling. MQTTLoad does the same over MQTT, with the bare
// mochi-mqtt broker of mqtt/ceiling as its ceiling.
//
// After the ceiling, the deliveries alone (the floor): every push the sink
// got in the measured run (all of them, not only the counted Meter ones)
// is posted to it again from the bodies it kept, by a plain net/http
// client with the platform's 16 in flight per URL and no platform in
// between. With the machine's busy CPU time over the ceiling and over the
// floor (/proc/stat), LoadResult.Bound is what the parts of an uplink that
// no platform can leave out reach together on these cores: the device's
// exchanges (its report, and each report acknowledgement it answered,
// counted as one exchange at the bare server's CPU cost) plus its
// deliveries, their CPU times per uplink added and the machine's cores
// divided by the sum. It is a model: it takes the CPU an item costs in
// isolation to be what it costs beside the rest, and it leaves out what a
// platform adds (storage, checks); BoundRatio, Bound over the ceiling, is
// the highest end-to-end ratio such a run can show. The command prints the
// cores each run kept busy, so a run that was not CPU-bound shows.
//
// Every wait is bounded by LoadConfig.Timeout: when it passes
// before every acknowledged report was pushed, Load returns the figures so
// far with an error wrapping context.DeadlineExceeded (the command prints
// them, then the error). In the command, registration through -api comes
// before the load run and is not counted in -timeout. The devices send
// from loopback source addresses 127.0.0.2, 127.0.0.3, … (LoadConfig.Sources,
// one per 20,000 devices by default): one address gives about 28,000
// sockets towards one server (Linux's ephemeral port range). Each device
// holds one socket, so one process holds at most its descriptor limit of
// devices; the command refuses more, saying how to split the run.
//
// LoadConfig.Rate (-rate N) paces the uplinks instead: N per second over
// all devices, evenly spread and open loop (a device still waiting for its
// last acknowledgement sends its next uplink late, never skipping it), and
// PaceOfMax (-rate half) first runs unpaced to measure the maximum
// end-to-end rate, then paced at that fraction of it on the same devices.
// Every run reports the device-to-push latency (p50, p90, p99, max): from
// when a device began sending an uplink to when the sink received its
// push, matched by the push's deviceId (looked up in the app's device
// list) and the reading's pulseCount (the uplink's number).
//
// # Command
//
//	go run ./examples/device -n 1000 -api http://127.0.0.1:8743 -app <appId> -secret <secret>
//	go run ./examples/device -n 5 -dtls=false -mode edrx -protocol tup -period 1m
//	go run ./examples/device -n 10000 -mode drx -load -uplinks 5 -api … -app … -secret …
//
// Flags: -n devices; -imei first IMEI (the others count up); -server
// host:port; -dtls (default true) and -psk hex (one key for all, needed
// without -api); -mode psm|drx|edrx, -active, -edrx-cycle,
// -paging-window; -period; -protocol lwm2m|tup; -api, -app, -secret
// (register the devices first; with -psk the key is asked for and an
// existing device, 409, is taken as registered with it); -manufacturer,
// -model, -devicetype, -protocoltype (default the demo water meter); -sw,
// -fw versions; -for duration; -load, -uplinks, -workers, -timeout, -sink
// (the webhook sink's address, default 127.0.0.1:8745: the platform wants
// every callback URL of an app on one host and port), -rate N|half
// (paced load, LoadConfig.Rate and PaceOfMax); -v. The command
// refuses, with the flag, its value and what is allowed: -n, -workers or
// -uplinks below 1, a -timeout that is not positive, a negative -for, a
// non-decimal -imei or one whose count (-n) would outgrow its digits, a
// -rate that is neither a positive number nor "half" (or is given without
// -load, or with -mqtt), a
// -psk that is not hex, an unknown -mode or -protocol, and stray
// arguments.
//
// # Concurrency
//
// New starts nothing. Run owns every goroutine of the device (the client's
// reader, firmware downloads) and waits for them before returning. Resource
// handlers run on the client's reading goroutine and only hand work to Run;
// all sending happens on Run's goroutine, one exchange at a time. Report,
// Stats and the getters are safe from any goroutine.
//
// # Caveats
//
//   - The lwm2m Client binds 127.0.0.1, so the simulator reaches only a
//     platform on the same machine.
//   - The firmware download always goes to the connected server: the host
//     of the Package URI is not dialled.
//   - Asleep devices are unreachable by socket, not by dropping: a plain
//     CoAP server sees each wake-up as a new address (hence the update).
//   - eDRX paging is simulated with a registration update per window, which
//     a real device does not send.
//   - examples/device imports examples/device/sim; internal/deptest allows a
//     package's own sub-packages only from test files, so the command's
//     TestImports applies the rules minus that one import (deptest should
//     allow it).
//
// # Figures
//
// The load mode against the assembled platform on 2 cores (26 Nov 2026):
// 1,266–1,434 end-to-end uplinks/s for 1,000 DTLS devices × 5 uplinks,
// 0.08–0.10 of a bare go-coap server's rate in the same run (the platform
// stores, checks and pushes every report; the bare server does none of
// it). BenchmarkLoad runs it against the command tests' fake platform.
// The runs and their history are in docs/benchmarks.md.
package sim
