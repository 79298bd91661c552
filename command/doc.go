// Package command delivers downlink commands to devices that sleep most of
// the time (NB-IoT PSM, DRX, eDRX): rules CMD-1 … CMD-11.
//
// Engine.Submit stores a PENDING Command; the Engine sends each device's
// queue one command at a time when the device's Mode says it can be
// reached, follows the ACK and the response to an end state, and tells a
// Listener of every move (the platform pushes Command.Notification to the
// command's callbackUrl). Everything is in a Store, so a restart resumes
// where it stopped.
//
// An Engine follows Doze's one lifecycle: New checks the Config and starts
// nothing; Run sends and runs the timers until its context ends or Close
// is called, and returns nil; a second Run returns at once with an error
// wrapping ErrClosed that says "Run called twice", and Run after Close
// returns ErrClosed; Close is idempotent, may come before Run and returns
// only after Run has.
//
// # Model
//
// A Command is created PENDING by Engine.Submit and moves through the
// states of CMD-1 along a table of allowed moves (CanMove, Moves); any
// other move is refused with a *MoveError:
//
//	PENDING → SENT | EXPIRED | CANCELED | FAILED
//	SENT    → SENT (re-send, CMD-4) | DELIVERED | TIMEOUT
//	DELIVERED → SUCCESSFUL | FAILED | TIMEOUT
//
// Every move is stamped (creationTime, platformIssuedTime, deliveredTime,
// executeTime) and every send counts in issuedTimes. A Command's JSON is
// the command object of the northbound API; Command.Notification is the
// body pushed to its callbackUrl (CMD-6).
//
// Each device has a queue ordered by Seq. Its head goes out when the
// device's Mode says it can be reached, and the next command only after the
// head ended (CMD-4). Modes are per device (Engine.SetMode, default
// Config.DefaultMode = PSM) and carry the device's own timers; their timing
// is pure arithmetic on time.Time (Mode.Window, Mode.Reachable,
// Mode.NextTry, Mode.Deadline), tested as tables:
//
//	PSM   reachable for ActiveTime (T3324, 20 s) after each uplink; timeout 300 s
//	DRX   always reachable; timeout 300 s
//	eDRX  reachable for ActiveTime after an uplink and in the paging window
//	      [uplink + k·Cycle, + PagingWindow), k ≥ 1; timeout 2 × Cycle + 120 s
//
// The platform tells the engine what happens: DeviceWoke (an uplink
// arrived), Acked (the transport saw the device's ACK; a Transmitter
// reports it by returning), Responded (the codec decoded a command
// response, matched by mid — Command.Mid — or by being the only
// outstanding command). The engine calls a Sender (or Transmitter) to
// encode and send, and a Listener on every state change. A mode's zero
// timers take Config.DefaultMode's (the platform gives the lwm2m server's
// awake window as the PSM active time, CMD-11).
//
// # The downlink path
//
// A command's path through an assembled platform (examples/platform), hop
// by hop, with the store writes it costs (each a synced write on bbolt):
//
//	1 REST      POST deviceCommands → Engine.Submit: PENDING stored      write 1
//	2 engine    the device's mode lets it out (DRX at once, PSM after an
//	            uplink, eDRX in its paging window): a worker starts the
//	            transmission, whose goroutine stores the head with
//	            SendAttempt (CMD-9)                                      write 2
//	3 transport Transmitter.Transmit: the codec encodes, lwm2m writes
//	            /19/1/0 (or /t/d) as a CON; when its first transmission
//	            left, left() stores SENT with the mode's deadline        write 3
//	4 ACK       the device's ACK (its 2.04) ends Transmit: DELIVERED     write 4
//	            (no ACK after the retransmissions: nothing; TIMEOUT at
//	            the deadline, write 4, or a re-send at the next wake-up)
//	5 response  the device's command response, decoded by the codec, is
//	            matched by mid: SUCCESSFUL or FAILED                     write 5
//	6 pushes    after each write's device lock is released the Listener
//	            hears the move; for SENT, DELIVERED and the end state the
//	            platform puts the callback in push's outbox              +1 write each
//
// Per command with a callbackUrl: 5 command writes and 3 outbox writes
// (push then removes each delivered message: its own writes).
//
// # Durability (CMD-9)
//
// The Store holds everything; the engine keeps in memory only each
// device's mode, last sequence number, whether its queue is empty, last
// uplink time and last transport failure time (the last two are not stored
// while the engine uses the device; see below). Run forgets this state for
// a device with nothing open (no command, no transmission) that was not
// used for 10 minutes, and reads it back from the Store when the device is
// next used; the last uplink is written first when the Store implements
// Uplinks (a Store without it keeps the devices heard from). Every state
// change is written before the Listener hears of it or the queue moves on,
// and every first send attempt before Sender.Send is called.
// Open commands are indexed by Command.Due, the next instant the engine
// must act on them (expiry, next try, retransmission, timeout), so Run
// re-arms every timer from the Store after a restart. MemStore is the
// in-memory Store; store.DB.Commands the bbolt one; commandtest.Run checks
// any implementation.
//
// # Concurrency
//
// Engine methods are safe for concurrent use. Operations on one device are
// serialised by a per-device lock (a channel, so that a goroutine waiting
// for it is "durably blocked" for testing/synctest). Run starts
// Config.Workers goroutines that serve the device queues, one timer loop
// and one loop that forgets idle devices, and waits for them before it
// returns. A worker does not wait for a device that another goroutine
// holds (a transmission storing its outcome, a response): that goroutine
// hands the device back to the workers when it lets go. DeviceWoke takes
// no lock and does no I/O. A plain Sender is called by a worker with the
// device's lock held: it must not call the Engine for that device. A
// Transmitter is called without it, on a goroutine per transmission that
// Run waits for, which also stores the send attempt, so that in a wake
// storm the workers do not wait for synced writes one device at a time. The
// Listener is called after the lock is released, a device's moves in the
// order they were stored, and may call the Engine.
//
// # Decisions where the spec was silent
//
//   - Attempt, send, then store the outcome: before Sender.Send the engine
//     stores the PENDING head with Command.SendAttempt set, and stores SENT
//     (or FAILED, or the next try) after Send returned. SENT itself is not
//     stored first because an encode or transport failure would then need
//     moves CMD-1 does not have (SENT → FAILED, SENT → PENDING). A command
//     found later with SendAttempt set (the process stopped during Send, or
//     the outcome's write failed) is taken as SENT at the attempt's time:
//     its timeout runs from then, and it goes out again only on a wake-up,
//     as CMD-4 allows. The cost is one more store write (a sync on bbolt)
//     per first send. A re-send (SENT → SENT) is stored after Send only: a
//     crash between the two loses one issuedTimes count and the re-send's
//     later timeout, nothing else.
//   - Transport failure (a Send error wrapping neither ErrEncode nor
//     ErrRefused): the command stays PENDING at the head; a DRX/eDRX device
//     is tried again after Config.RetryInterval (30 s, at the next window
//     for eDRX), a PSM device at its next uplink. An encode failure makes it
//     FAILED with the codec's error as Reason; so does a device's lasting
//     refusal (*RefusedError, a CoAP 4.xx answer), with the device's code
//     in Result ({"code":"4.00","reason":…}) rather than retried for as
//     long as expireTime allows.
//   - Re-send (CMD-4, FAQ §3.24): a SENT command the device has not ACKed
//     goes out again when the device sends an uplink at least 10 s after the
//     last send and before creationTime + expireTime; the timeout counts
//     from that re-send. maxRetransmit adds retransmissions while the device
//     is reachable, 10, 20 and 40 s apart (FAQ §7.3); they do not move the
//     timeout. A response that arrives before the ACK implies it
//     (SENT → DELIVERED → SUCCESSFUL, both stored and heard); one that
//     names the mid of a command whose send was attempted but not yet
//     recorded as left (the sending goroutine slow to get the device's
//     lock) implies that too (PENDING → SENT → DELIVERED → SUCCESSFUL).
//     A response without a mid matches recorded sends only.
//   - Immediate commands (expireTime 0) fail at once, stored FAILED with the
//     reason and returned with an error wrapping ErrUnreachable, when the
//     device is not reachable in its mode or has earlier commands open; a
//     transport failure also makes them FAILED.
//   - The mid is derived from Seq (1..65535), so it needs no state.
//   - A response that matches no outstanding command is logged (Warn) and
//     dropped; Responded returns nil.
//   - The callbackUrl must be an absolute http(s) URL with a host; matching
//     its host and port with the application's subscriptions is the
//     platform's, through Config.CheckCallback (return ErrCallbackConflict).
//   - Supersede key (CMD-10): a new command CANCELs the device's PENDING
//     commands with the same key (Reason "superseded …"); SENT ones stay.
//   - For commands the platform ended itself (encode error, unreachable,
//     expired, superseded, timeout) the pushed resultDetail is
//     {"reason":"…"}; for device results it is the device's body.
//   - expireTime is at most Config.MaxExpireTime (30 days).
//   - The engine reads a queue through Store.Front, not Queue: the head
//     (for a response, also the next command) and the commands due now.
//     Every command it could end (expired, timed out, an attempt never
//     recorded) is due, so the whole queue is read only when one of them
//     must end. Delivery being serial (CMD-4), a response can match only
//     the head.
//   - Batch tasks (CMD-8) take a list of device ids (groups, products and
//     "all devices" are expanded by the platform); duplicates count once; a
//     device whose command cannot be created counts as failed. Counts are
//     raised by the Store in the same write as the command's final move.
//   - The last uplink time is not stored at each uplink (that would cost a
//     synced write per uplink, more than everything else the engine
//     writes); it is stored only when the engine forgets an idle device,
//     for every device forgotten at once in one write (Uplinks). After a
//     restart a device forgotten before it comes back with that stored
//     time; for the others, a PSM device waits for its next uplink: it may have been in
//     its active time, but its head goes out at the next uplink, which is
//     what PSM means anyway. An eDRX device, whose paging windows can no
//     longer be placed, is tried at once, as a device never heard from is
//     (FAQ §3.26: for eDRX the platform does not wait for uplink, it queues
//     and sends); the network buffers downlink for an eDRX device until its
//     next paging window. If that try fails in transport it is tried again every
//     Config.RetryInterval, each try holding a worker for up to
//     Config.SendTimeout, until the device's first uplink anchors its
//     windows. We judge this right: the command is not held back for up to
//     a whole eDRX cycle (10485.76 s at most) on a guess, and the cost is
//     bounded by Config.Workers.
//
// # Caveats
//
//   - Ended commands are kept for ever unless Config.Retention is set and
//     the Store implements Pruner (MemStore and the bbolt store do); Prune
//     walks every record, hourly, so it costs O(all commands) per hour.
//   - A command whose SENT write failed keeps its SendAttempt until the
//     engine next looks at its device (within a second, or at start): an
//     ACK or response for it in that time is refused (Acked returns a
//     *MoveError) or dropped (Responded). Only a failing Store gets there.
//   - SubmitBatch is not resumable: a crash while it creates the commands of
//     a large task leaves a task whose total counts devices that never got a
//     command, so it never reaches 1000 ‰.
//   - Task status is Running or Complete; the API's Pending and Timeout task
//     states are not produced. Pending would be visible only while
//     SubmitBatch runs (it returns once every command exists). Timeout
//     belongs to the batch API's task-level timeout, which BatchRequest does
//     not carry: every command of a task ends by itself, at the latest at
//     expireTime plus its mode's timeout, so a task always reaches Complete
//     (except after the SubmitBatch crash above). A platform that offers
//     the task timeout computes Timeout from Task.CreationTime.
//
// # Figures
//
// Measured figures and how to reproduce them are in docs/benchmarks.md of the
// repository, section "Command engine".
package command
