// Package store keeps everything Doze must not forget in one embedded bbolt
// file: devices, products and codecs, commands, subscriptions and the push
// outbox, upgrade packages and tasks, history and shadow (SPEC STO-1).
//
// Open returns a DB; each package's Store interface is implemented by a view
// on it (for example DB.Registry, a registry.Store). Every package has one
// top-level bucket of its own, and keys are laid out for the queries that
// package makes (the registry's layout is documented on Registry).
//
// Durability: a write returns only after bbolt has committed and synced it.
// Writes that arrive together from many goroutines share one commit, so
// durability does not cost one fsync per call. The registry uses DB.commit,
// a group commit without a timer: a write that finds the disk idle commits
// at once, and writes that arrive while a commit is on its way to disk go
// together in the next one. bbolt's Batch instead waits up to 10 ms for
// company, which costs a lone writer 10 ms per write (figures in
// registry/doc.go). Other packages may use either.
//
// Inbox holds device uplinks between their acknowledgement and their
// processing (examples/platform puts each one there before the device is
// answered), for a restarted platform to process what a crash interrupted.
//
// DeviceLog keeps the last N events of each device (default 200), pruned
// in the write that adds new ones; a writer batches entries into few
// commits (BenchmarkDeviceLogAppend: 1.44 ms per entry written alone, 66 µs
// per entry 64 to a commit; 2 shared cores, one run).
//
// The crash test (TestRegistryCrash) kills a process that is registering
// devices with SIGKILL, reopens the file, finds every device whose
// Register had returned, and runs bbolt's consistency check (DB.Check).
//
// Errors: a file that is not a bbolt file fails Open with ErrNotDB; a file
// another process holds fails with ErrLocked after Options.LockTimeout;
// both come wrapped in an *OpenError naming the file.
//
// store is the only package that imports bbolt.
package store
