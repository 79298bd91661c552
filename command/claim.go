package command

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Claimer is an optional ability of a Store that several engines (one per
// platform node) share: the timers of an engine given a node id
// (Config.Node) act only on the due commands it holds a lease on, so that
// two engines never both time out, expire or retry one command. A node
// that dies loses its leases when they end and its due commands go to the
// others. store/postgres's command stores implement it (leases written on
// the rows, taken with FOR UPDATE SKIP LOCKED).
//
// A lease of owner on a command ends at a time the owner set (now+lease,
// by its own clock); another owner may take the command only after that.
type Claimer interface {
	// ClaimCommands leases to owner until now+lease at most limit open
	// commands whose Due() is not after now and that no other owner
	// holds a lease on (free ones, those whose lease ended, and owner's
	// own, whose lease it renews), and returns them earliest Due() first.
	ClaimCommands(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Command, error)
}

// maxNode bounds Config.Node.
const maxNode = 200

// defaultClaimLease is Config.ClaimLease's default.
const defaultClaimLease = time.Minute

func (c Config) checkClaim(st Store) (Claimer, error) {
	switch {
	case c.Node == "":
		return nil, nil
	case len(c.Node) > maxNode || strings.IndexByte(c.Node, 0) >= 0:
		return nil, fmt.Errorf("command: Config.Node %q: want 1–%d bytes, no NUL", c.Node, maxNode)
	case c.ClaimLease < 0:
		return nil, fmt.Errorf("command: Config.ClaimLease %v must not be negative", c.ClaimLease)
	}
	cl, ok := st.(Claimer)
	if !ok {
		return nil, fmt.Errorf("command: Config.Node %q is set but the Store (%T) does not implement command.Claimer: "+
			"engines sharing a store need one that claims due commands per node", c.Node, st)
	}
	return cl, nil
}

// mine reports whether this engine may end or take over c at now: always
// without Config.Node, else only while it holds a lease on c with at
// least half of it left.
func (e *Engine) mine(c *Command, now time.Time) bool {
	return e.claimer == nil || e.claims.Holds(c.ID, now, e.cfg.ClaimLease/2)
}

// due returns the due commands the timers act on: all of them, or with
// Config.Node those it claimed.
func (e *Engine) due(ctx context.Context, now time.Time) ([]Command, error) {
	if e.claimer == nil {
		return e.st.Due(ctx, now, dueBatch)
	}
	e.claims.Drop(now)
	cs, err := e.claimer.ClaimCommands(ctx, e.cfg.Node, now, e.cfg.ClaimLease, dueBatch)
	if err != nil {
		return nil, fmt.Errorf("command: claiming due commands: %w", err)
	}
	ids := make([]string, len(cs))
	for i := range cs {
		ids[i] = cs[i].ID
	}
	e.claims.Add(ids, now, e.cfg.ClaimLease)
	return cs, nil
}

// Sessions tells an engine whose Store other nodes share which devices'
// sessions (a DTLS or CoAP session, an MQTT connection) are on its own
// node (Config.Sessions). A command goes out only from the node that has
// the device's session: another node that finds a command to send or
// re-send — its timers claimed the command, or the command was queued
// through it — calls Elsewhere instead, and the platform wakes the node
// that has the session (over NATS), whose engine then sends (Kick). A
// device whose session is on no node gets its commands when it next
// reaches one (DeviceWoke there).
type Sessions interface {
	// Here reports whether the device's session is on this node. It is
	// called under the device's lock: it must not block.
	Here(deviceID string) bool
	// Elsewhere is called when a command of the device is to be sent
	// and its session is not here. It must not block.
	Elsewhere(deviceID string)
}
