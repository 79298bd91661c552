package store

// bucketLwM2MOps keeps the LwM2M operations queued for sleeping devices
// (LWM-11): reads, writes, executes … that an application asked for while
// the device was asleep, run at its next wake-up. They follow the command
// discipline of CMD-1 … CMD-9 (one at a time per device, re-sent until
// acknowledged, expiry, durable across restarts), so they are kept exactly
// as commands are, with the same keys, in a bucket of their own: an
// operation never shows up among a device's commands, nor a command
// among its operations, and each has its own queue order.
var bucketLwM2MOps = []byte("lwm2mops")

// LwM2MOps returns the command.Store of queued LwM2M operations: the
// bbolt implementation of Commands over its own bucket. Each operation is
// a command.Command whose Body names the operation (Method) and its
// arguments (Paras); its Result is the device's answer.
func (db *DB) LwM2MOps() *Commands { return &Commands{db: db, bucket: bucketLwM2MOps} }
