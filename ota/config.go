package ota

import (
	"log/slog"
	"time"
)

// Config tunes an Engine. The zero value works for software upgrades with
// every device taken as online.
type Config struct {
	// Devices looks devices up for the online check of the "now" policy
	// and the product check. nil means every device exists, is online
	// and matches every package.
	Devices Devices
	// Object5 performs LwM2M object 5 operations. nil means firmware
	// tasks are refused.
	Object5 Object5
	// Listener hears state changes and results. nil means none.
	Listener Listener
	// Logger logs what the engine cannot return. nil discards.
	Logger *slog.Logger
	// FirmwareURI is the base of the Package URI written to /5/0/1; the
	// package id is appended (e.g. "coaps://dm.example.com:5684/fw/").
	// Required for firmware tasks. The lwm2m server serves it with
	// Engine.Block2.
	FirmwareURI string
	// OnlineTimeout bounds the wait for a device to come online under
	// the device_online policy. 0 means 24h. (Window tasks wait until
	// their window ends.)
	OnlineTimeout time.Duration
	// VersionTimeout bounds the wait for a version (PCP 19, /3/0/3),
	// also the check after a firmware update. 0 means 30m.
	VersionTimeout time.Duration
	// DownloadTimeout bounds the time without download progress (a
	// block request or the download result). 0 means 1h.
	DownloadTimeout time.Duration
	// ResultTimeout bounds the wait for the upgrade result after
	// execute. 0 means 30m.
	ResultTimeout time.Duration
	// RetryInterval is the wait before an automatic retry when the task's
	// policy gives none. 0 means 10m.
	RetryInterval time.Duration
	// CallTimeout bounds each Object5 call. 0 means 1m.
	CallTimeout time.Duration
	// Workers is the number of goroutines making Object5 calls. 0 means 4.
	Workers int
	// MaxDownloads caps the sub-tasks downloading at once (the notify and
	// download steps, software and firmware together); the others wait in
	// StepQueued, first come first served, with no deadline. 0 means no
	// limit (OTA-8).
	MaxDownloads int
	// Node names this engine among several that share one Store (a
	// platform node id, stable across restarts). When set, the Store must
	// implement Claimer, and the timer acts only on the due work this
	// engine claimed: a sub-task whose step (or online wait) deadline
	// passed, as stored, is leased to one node (for ClaimLease) and
	// timed out by that node only, from its own copy or, when it holds
	// none or an older one, from the stored one; a task's automatic retry
	// is made by the node holding the task's lease. A node whose copy of
	// a sub-task passed its deadline without a lease reads the stored
	// one and follows it (another node ended it or moved it on). The
	// timer claims at least every quarter lease (other nodes' writes do
	// not wake it), so a dead node's due steps are taken by another node
	// within about ClaimLease and a quarter after they fell due. "" means
	// one node: the timer acts on every sub-task it holds.
	Node string
	// ClaimLease is how long a claim on a due sub-task or a task's retry
	// lasts. The engine acts on a claimed sub-task only while at least
	// half the lease is left, so the write lands before the lease ends;
	// claims are renewed on every claim while the sub-task is still due.
	// 0 means 1 minute.
	ClaimLease time.Duration
}

func (c *Config) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.OnlineTimeout, 24*time.Hour)
	def(&c.VersionTimeout, 30*time.Minute)
	def(&c.DownloadTimeout, time.Hour)
	def(&c.ResultTimeout, 30*time.Minute)
	def(&c.RetryInterval, 10*time.Minute)
	def(&c.CallTimeout, time.Minute)
	def(&c.ClaimLease, defaultClaimLease)
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"OnlineTimeout", c.OnlineTimeout}, {"VersionTimeout", c.VersionTimeout}, {"DownloadTimeout", c.DownloadTimeout},
		{"ResultTimeout", c.ResultTimeout}, {"RetryInterval", c.RetryInterval}, {"CallTimeout", c.CallTimeout}} {
		if d.v < 0 {
			return fieldErr("Config."+d.name, "%s, must not be negative", d.v)
		}
	}
	if c.Workers < 0 {
		return fieldErr("Config.Workers", "%d, must not be negative", c.Workers)
	}
	if c.MaxDownloads < 0 {
		return fieldErr("Config.MaxDownloads", "%d, must not be negative", c.MaxDownloads)
	}
	return nil
}

// tickEvery is the shortest time between two timer ticks of Run.
const tickEvery = time.Second
