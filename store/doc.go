// Package store keeps everything Doze must not forget in one embedded bbolt
// file: devices, products and codecs, commands, subscriptions and the push
// outbox, upgrade packages and tasks, history and shadow (SPEC STO-1).
//
// Open returns a DB; each package's Store interface is implemented by a view
// on it (for example DB.Registry). Every package has one top-level bucket of
// its own, and keys are laid out for the queries that package makes.
//
// Durability: a write returns only after bbolt has committed and synced it.
// Writes that arrive together from many goroutines share one commit through
// bbolt's Batch, so durability does not cost one fsync per call.
//
// store is the only package that imports bbolt.
package store
