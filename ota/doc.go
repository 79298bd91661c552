// Package ota upgrades device software and firmware (OTA-1 …
// OTA-8; FAQ §10). Its [Engine] keeps upgrade packages, runs upgrade tasks
// and their per-device sub-tasks, drives software upgrades over PCP inside
// the data channel and firmware upgrades over LwM2M object 5, and serves
// package blocks with resume.
//
// The engine reaches the rest of a platform only through interfaces it
// declares: a [Store] for durable state, [Files] for package contents, a
// [Channel] for PCP frames, and optionally [Devices], [Object5] and a
// [Listener]. The PCP wire format is the sub-package ota/pcp (which codec
// uses too, to keep PCP frames away from codecs); the device side of a PCP
// upgrade, a resumable downloader, is ota/download.
//
// An Engine follows Doze's one lifecycle: [New] validates the Config and
// starts nothing and does no I/O; [Engine.Run] loads the unfinished tasks
// from the Store, runs the timer and the object 5 workers, blocks until its
// ctx ends or [Engine.Close] is called and returns nil after a normal
// stop; a second Run returns an error wrapping [ErrClosed] that says "Run
// called twice", and Run after Close returns ErrClosed; Close is
// idempotent, may come before Run, and returns only after Run has. Methods
// called between New and Run work: the first that needs the unfinished
// tasks loads them under its own ctx (once; a failed load is tried again).
//
// # Model
//
// A [Package] is uploaded content plus metadata: kind ([Software] over
// PCP, [Firmware] over object 5), version, product (device type,
// manufacturer, model, protocol), source versions, PCP block size (32..500,
// default 500), size, SHA-256 digest and PCP check code. The content stays
// in [Files] (a [Dir] on disk) and is only ever read through io.ReaderAt,
// one block at a time; [Engine.AddPackage] streams it once to compute the
// digest.
//
// A [Task] sends one package to many devices under a [Policy]: now (a
// device that is not online fails with "Device Abnormal is not online"),
// device_online (start when the device next wakes; "Waiting for the device
// online timeout" after Config.OnlineTimeout) or custom (a window; devices
// not online before its end fail). Each device has a [SubTask]. Task states
// are wait, processing, success, failed, stop; sub-task states wait,
// processing, fail, success, stop. Failure reasons are the exact strings
// of OTA-3 (Reason… constants).
//
// A processing sub-task moves through steps, each with a server-side
// deadline from [Config] (OTA-8):
//
//	query    PCP 19 / read /3/0/3      VersionTimeout   "Waiting for report device firmware version timeout"
//	queued   waiting for a download slot (Config.MaxDownloads), no deadline
//	notify   PCP 20 / write /5/0/1     DownloadTimeout  "Waiting for device downloaded package timeout"
//	download blocks (PCP 21 / Block2)  DownloadTimeout, moved on by every block
//	execute  PCP 23 / execute /5/0/2   ResultTimeout    "Wait for the device to report upgrade result timeout"
//	result   PCP 24 / /5/0/5           ResultTimeout
//	check    read /3/0/3 after update  VersionTimeout   "Updating timeout and query device version for check timeout"
//
// When the version is known the rules of OTA-1/OTA-2 apply: the same
// version ends the sub-task with "The current version is the same as the
// target version"; a version outside the package's source versions fails
// with [ReasonSourceVersion]; a lower target is allowed. A device with an
// unfinished sub-task in another task (software or firmware) gets "Task
// Conflict" when a task is created or retried.
//
// A failed task is retried automatically Policy.RetryTimes times (0..5),
// after RetryInterval doubling each time (software) or Config.RetryInterval
// (firmware takes no interval, FAQ §10.10). Only failed sub-tasks are
// retried, and automatically only those whose reason may change (not same
// version, source version, no protocol service, unsupported package,
// invalid URI). [Engine.Retry] retries every failed sub-task on demand.
// Devices that succeeded are never touched (OTA-4).
//
// # PCP
//
// The platform side of PCP is [Engine.HandleFrame] (frames from the device)
// and [Engine.DeviceOnline] (the device is awake): the engine asks the
// version when a sub-task starts, sends the notify when the device is
// awake, serves any valid block number at any time straight from the file,
// answers 0x80 (no such task: no upgrade, or another version) and 0x81 (no
// such block), takes the download result, sends execute and takes the
// upgrade result. Config.MaxDownloads caps the downloads in progress
// (notify and download steps); the rest wait in StepQueued and are notified
// in order as slots free up. A queued device that asks for blocks on its
// own is served. Whenever the device wakes, the request of the current
// step (query, notify, execute) is sent again, since a frame sent to a
// sleeping device may be lost. Per device it keeps a bitmap of served
// blocks, repeats and the first and last serving time ([Engine.Served]).
// The notify's check code is the PCP CRC16 of the whole package (the the rules'
// vector shows 0; we send the real value so devices detect a changed
// package, FAQ §10.11; a device that ignores it still works).
//
// # Object 5
//
// Firmware goes through the [Object5] interface (this package does not
// import lwm2m): read the running version (/3/0/3, the Device object's
// firmware version; /5/0/7 names the package last downloaded), observe
// /5/0/3 and /5/0/5, write the Package URI Config.FirmwareURI+package id
// to /5/0/1, execute /5/0/2. The device reboots after Execute and
// registers anew, so the sub-task is driven by what the device reports,
// in whatever order it comes: notifications ([Engine.FirmwareState],
// [Engine.FirmwareResult]), a Send of either or both
// ([Engine.FirmwareReport]), and, after every new registration
// ([Engine.DeviceRegistered]), observing /5/0/3 and /5/0/5 again and
// taking the values of those answers. Only values reported after the
// Package URI was written count (the device may still show an earlier
// attempt's result until then). Then:
//
//	Update Result 2..9                 the attempt fails with UpdateResultReason; retryTimes applies
//	State 1 Downloading                download step (deadline moved on)
//	State 2 Downloaded                 execute (also when seen after a restart)
//	State 3 Updating                   result step
//	Update Result 1                    read /3/0/3; success when it is the target version
//	Idle and result 0, after a restart download step: the device forgot it, the URI is written again;
//	                                   after Execute: the version tells
//	Downloaded and result 0 after Execute, after a restart: execute again
//
// Each step keeps its deadline (a restarted download does not get a new
// one). The lwm2m server serves the Package URI blockwise ([Engine.Block2],
// RFC 7959, ETag = SHA-256 digest, Size2 = size) and tells
// [Engine.FirmwareServed] the end of each block: the download's deadline
// moves on and its progress is the highest block served over the size
// ([SubTask.Progress]).
//
// # Wiring it into a platform
//
//	engine, _ := ota.New(st.OTA(), ota.Dir(dir), pcpChannel, ota.Config{Devices: reg, Object5: fw, Listener: pushes, FirmwareURI: uri,
//		Node: nodeID}) // Node only on a store shared by several nodes
//	go engine.Run(ctx)
//	uplink payload starting FF FE        → engine.HandleFrame(ctx, deviceID, payload)   (pcp.IsPCP)
//	registration, update, any uplink      → engine.DeviceOnline(ctx, deviceID)
//	registration (not update)             → engine.DeviceRegistered(ctx, deviceID), then DeviceOnline
//	notify or Send of /5/0/3, /5/0/5      → engine.FirmwareState / FirmwareResult / FirmwareReport
//	each firmware block served            → engine.FirmwareServed(ctx, deviceID, packageID, end)
//	GET FirmwareURI+id with Block2        → engine.Block2(ctx, id, num, szx)
//	before sending a device command       → engine.Upgrading(deviceID) (hold it while true)
//	upload, create, stop, retry           → AddPackage, CreateTask, Stop, Retry; reads: Task, SubTasks, Progress
//
// # Concurrency and durability
//
// An Engine is safe for concurrent use. Every state change of a sub-task is
// written to the Store before the frame that follows it is sent; a
// restarted engine carries on (store/ota_test.go). Download progress in the Store is updated
// each tenth of the blocks; after a restart a download step gets a fresh
// DownloadTimeout and the device resumes at its own next block; when Run
// starts it sends the pending request of every loaded sub-task whose
// device is online and starts those created but never started. Listener
// calls and frames are made outside every lock.
//
// # Several nodes
//
// Engines of several platform nodes may share one Store: an upgrade step is
// performed by exactly one node (CLU-2). Given a node id (Config.Node), an
// engine needs a Store that implements [Claimer] (New refuses one that does
// not), and:
//
//   - A step or online wait whose deadline passed, as stored, is timed out
//     only by the node holding a lease on the sub-task (ClaimSubTasks, for
//     Config.ClaimLease, default 1 minute), while at least half the lease
//     is left: one write, one result event. The holder times out its own
//     copy, or the stored one when that is newer (another node moved the
//     step on) or when it holds none (the task was created on another node
//     after it loaded its tasks, or that node died).
//   - A node whose copy passed its deadline without the lease reads the
//     stored copy back, then at most every quarter lease: one another node
//     ended is forgotten without an event (and the task as stored is
//     followed), one another node moved on is followed.
//   - A node that moved a download on since its last write (each block
//     moves the deadline; progress is written each tenth of the package)
//     writes the sub-task again half a lease before the stored deadline, so
//     that no node claims a download that still progresses.
//   - A task's automatic retry is made by the node holding the task's lease
//     (ClaimTask), only while the stored task still waits for it; a node
//     that finds it retried or stopped forgets the task.
//   - The timer claims at least every quarter lease (other nodes' writes do
//     not wake it), so a dead node's due steps are timed out by another
//     node within about a lease and a quarter after they fell due.
//
// Not claimed: the start of sub-tasks (a window opening, DeviceOnline, a
// frame) and the requests re-sent on a wake are made by the node that runs
// them; a window task several nodes loaded is marked processing by each
// (the same write). A node holds in memory the tasks it created, those it
// loaded when it started and those whose steps it adopted; Stop and the
// live progress of a sub-task are those of the node asked. Node clocks must
// agree to well under the lease (NTP). Without Config.Node the engine acts
// on every sub-task it holds, as one node.
//
// # Caveats
//
//   - Run's timer looks at every active sub-task on each tick, and ticks at
//     most once a second, so a deadline may pass up to a second late under
//     load (exact otherwise). A deadline heap would remove the scan.
//   - Waiting sub-tasks start on CreateTask, the window opening, a retry,
//     DeviceOnline or a frame from the device; the timer does not poll the
//     registry, so the platform must call DeviceOnline when devices wake.
//   - Block tracking (bitmap, repeats) lives in memory; the store keeps the
//     count of distinct blocks, saved each tenth of the package.
//   - A sub-task write that the Store refuses (disk full) is logged and the
//     flow goes on in memory; the answer to the device is still sent.
//   - CreateTask, Retry and Stop run one at a time. Sub-task writes are made
//     under the sub-task's own lock only; a task's own state change (start,
//     end, retry planned) is written under the engine lock, which block
//     serving takes briefly to find a session.
//
// # Decisions where the issue was silent
//
//   - The same-version outcome is a failed sub-task with the FAQ's string,
//     as the FAQ lists it among the reasons a task "ends at once".
//   - PCP result codes map to reasons with [ResultReason]; busy and low
//     battery on a version query, notify or execute are asked again at the
//     next wake (the step's deadline still applies).
//   - The version is asked only when a sub-task starts (OTA-5); a Listener
//     that also implements [VersionListener] hears every version a device
//     reports.
//   - Window tasks do not interrupt sub-tasks still running at the window's
//     end.
//   - "Which blocks were served and when" (OTA-7) is a bitmap plus the
//     first and last serving time per device, not a time per block (that
//     would cost 8 KB per device for a 1 MB package).
//   - Stopping a task ends its active sub-tasks with [ReasonStopped]
//     (state stop, no result event).
//
// # Figures
//
// Measured with go test -run XXX -bench 'ServeBlocks|MemoryPerDevice'
// -benchtime 2s -count 3 on 2 cores, AMD EPYC, Go 1.26, on a machine
// shared with seven other builds (figures vary up to 2× run to run):
//
//	BenchmarkServeBlocks/baseline-read-and-frame  159,000–176,000 blocks/s (median 173,000)  1,000 goroutines: pread + frame, 0 allocs
//	BenchmarkServeBlocks/engine-1000-devices        63,000–138,000 blocks/s (median 102,000)  parse, session lookup, tracking, pread, frame, send; 2 allocs, 538 B
//	BenchmarkMemoryPerDevice                         1,187 B per device with a 1 MB download in progress
//
// The engine serves blocks at about 0.6× the raw read-and-frame rate
// (medians; 0.36–0.8× across runs); half of its CPU time is the pread of
// the block itself. 1,000 devices each taking one block a second (a fast
// NB-IoT device) use about 1% of it. Memory per downloading device counts
// the session, its 2,098-bit block bitmap and the sub-task in the
// in-memory store.
package ota
