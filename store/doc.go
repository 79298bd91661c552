// Package store keeps everything Doze must not forget in one embedded bbolt
// file: devices, products and codecs, commands, subscriptions and the push
// outbox, upgrade packages and tasks, history and shadow (STO-1).
//
// Open returns a DB; each package's Store interface is implemented by a view
// on it (for example DB.Registry, a registry.Store). Every package has one
// top-level bucket of its own, and keys are laid out for the queries that
// package makes (the registry's layout is documented on Registry).
// store/postgres keeps the same data in PostgreSQL; the records both keep
// alike (commands, tasks) share one encoding.
//
// # Writes: one discipline
//
// A write returns only after bbolt has committed and synced it. Every
// write goes through one group commit (DB.commit): a write that finds the
// disk idle commits at once, and the writes that arrive while a commit is
// on its way to disk go together in the next one, one transaction and one
// fsync for all of them. It is one discipline rather than three (bbolt's
// Update, bbolt's Batch and our own) because each of the others costs
// where this one does not: Update spends one fsync per call, so concurrent
// writers queue on the disk; Batch waits up to 10 ms for company, which
// costs a lone writer 10 ms per write (BenchmarkCommit; figures in
// docs/benchmarks.md, "Registry"). And one queue means one place to get
// isolation right.
//
// Its contract is bolt.Batch's: one write's error (or panic) is that
// write's alone. When a write in a shared commit fails, the transaction is
// rolled back, the failing write runs alone to get its own error (or
// panic, in its own goroutine), and the others are committed without it.
// So a write's function may run more than once and must not have effects
// outside its transaction, or must reset them when it starts (Prune's
// count does).
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
// both come wrapped in an *OpenError naming the file. A view used after
// DB.Close fails with ErrClosed.
//
// store is the only package that imports bbolt.
package store
