package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/push"
	"github.com/jackc/pgx/v5"
)

// Claiming work among nodes (CLU-2). When several platform nodes share one
// database, a command to send, a push to deliver or an upgrade step to
// time out must be done by one node. The engines' Store interfaces have no
// notion of nodes, so claiming is an optional ability of this package's
// stores, found by type assertion (CommandClaimer, MessageClaimer,
// SubTaskClaimer).
//
// A claim is a lease written on the row itself: one statement selects
// the candidate rows FOR UPDATE SKIP LOCKED — rows another node is
// claiming at this instant are skipped, not waited for — keeps those
// whose lease has ended or is the caller's own, and sets claim_owner and
// claim_until. Two nodes claiming at once therefore never get the same
// row; a node that dies holding a lease loses it when the lease ends, and
// its work goes to whichever node claims next. A node renews its lease by
// claiming again before it ends. Lease length is the caller's choice: it
// must exceed the time the work takes (a send, a delivery attempt).

// CommandClaimer claims due commands: open commands whose Due() is not
// after now, earliest first, that no other owner holds a lease on.
type CommandClaimer interface {
	ClaimCommands(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]command.Command, error)
}

// MessageClaimer claims messages of the push outbox to deliver, ordered by
// URL then id, that no other owner holds a lease on. It is push.Claimer:
// an engine given a node id (push.Config.Node) delivers only what it
// claimed.
type MessageClaimer interface {
	ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]push.Message, error)
	ClaimMessagesOf(ctx context.Context, owner string, now time.Time, lease time.Duration, msgs []push.Message) ([]push.Message, error)
	RenewMessages(ctx context.Context, owner string, now time.Time, lease time.Duration) (int, error)
}

// SubTaskClaimer claims upgrade sub-tasks whose step deadline is not after
// now and which have not ended, earliest deadline first, that no other
// owner holds a lease on. With ClaimTask (a task's automatic retry, one
// lease row per task in "leases") it is ota.Claimer: an engine given a
// node id (ota.Config.Node) times out only the steps it claimed.
type SubTaskClaimer interface {
	ClaimSubTasks(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]ota.SubTask, error)
	ClaimTask(ctx context.Context, owner, taskID string, now time.Time, lease time.Duration) (bool, error)
}

var (
	_ CommandClaimer = (*Commands)(nil)
	_ MessageClaimer = (*Push)(nil)
	_ push.Claimer   = (*Push)(nil)
	_ SubTaskClaimer = (*OTA)(nil)
	_ ota.Claimer    = (*OTA)(nil)
)

// maxOwner bounds an owner name (a node id).
const maxOwner = 200

func checkClaim(owner string, lease time.Duration, limit int) error {
	switch {
	case owner == "" || len(owner) > maxOwner || strings.IndexByte(owner, 0) >= 0:
		return fmt.Errorf("store/postgres: claim owner %q: want 1–%d bytes, no NUL", owner, maxOwner)
	case lease <= 0:
		return fmt.Errorf("store/postgres: claim lease %v: want a positive duration", lease)
	case limit < 0:
		return fmt.Errorf("store/postgres: claim limit %d: want ≥ 0", limit)
	}
	return nil
}

// claimSQL builds the claiming statement for table: pick (the candidate
// rows' condition and order, using $1 = now), lease them to $2 until $3,
// at most $4 rows, returning cols.
func claimSQL(table, key, pick, order, cols string) string {
	return `WITH c AS (
		SELECT ` + key + ` FROM ` + table + `
		WHERE ` + pick + ` AND (claim_until IS NULL OR claim_until <= $1 OR claim_owner = $2)
		ORDER BY ` + order + ` LIMIT $4
		FOR UPDATE SKIP LOCKED)
	UPDATE ` + table + ` t SET claim_owner = $2, claim_until = $3
	FROM c WHERE (` + prefixed("t.", key) + `) = (` + prefixed("c.", key) + `)
	RETURNING ` + prefixed("t.", cols)
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

var claimSubTasksSQL = claimSQL("ota_subtasks", "task_id, device_id", "NOT final AND deadline <= $1", "deadline, task_id, device_id", "rec")

// ClaimCommands implements CommandClaimer.
func (s *Commands) ClaimCommands(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]command.Command, error) {
	if err := checkClaim(owner, lease, limit); err != nil || limit == 0 {
		return nil, err
	}
	out, err := commandRows(s.db.pool.Query(ctx, s.t.claim, clampNanos(now), owner, clampNanos(now.Add(lease)), limit))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b command.Command) int {
		return cmp.Or(a.Due().Compare(b.Due()), strings.Compare(a.DeviceID, b.DeviceID), cmp.Compare(a.Seq, b.Seq))
	})
	return out, nil
}

// ClaimMessages implements MessageClaimer.
func (p *Push) ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]push.Message, error) {
	return pushOutbox.claimMessages(ctx, p.db, owner, now, lease, limit)
}

// ClaimSubTasks implements SubTaskClaimer.
func (o *OTA) ClaimSubTasks(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]ota.SubTask, error) {
	if err := checkClaim(owner, lease, limit); err != nil || limit == 0 {
		return nil, err
	}
	rows, err := o.db.pool.Query(ctx, claimSubTasksSQL, clampNanos(now), owner, clampNanos(now.Add(lease)), limit)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ota.SubTask, error) {
		var b []byte
		var s ota.SubTask
		if err := r.Scan(&b); err != nil {
			return s, err
		}
		return s, json.Unmarshal(b, &s)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b ota.SubTask) int {
		return cmp.Or(a.Deadline.Compare(b.Deadline), strings.Compare(a.TaskID, b.TaskID), strings.Compare(a.DeviceID, b.DeviceID))
	})
	return out, nil
}

// ClaimTask implements SubTaskClaimer: the lease called "ota.task/" and
// the task id (or, for an id too long for a lease name, "ota.task#" and
// the SHA-256 of it in hex) in the leases table (DB.AcquireLease).
func (o *OTA) ClaimTask(ctx context.Context, owner, taskID string, now time.Time, lease time.Duration) (bool, error) {
	if taskID == "" {
		return false, fmt.Errorf("store/postgres: claim of a task: empty task id")
	}
	return o.db.AcquireLease(ctx, taskLeaseName(taskID), owner, now, lease)
}

func taskLeaseName(taskID string) string {
	if name := "ota.task/" + taskID; len(name) <= maxLeaseName {
		return name
	}
	sum := sha256.Sum256([]byte(taskID))
	return "ota.task#" + hex.EncodeToString(sum[:])
}

// ClaimMessagesOf leases those of msgs (by URL and id) that are stored and
// that no other owner holds a lease on to owner until now+lease, and
// returns them (elements of msgs, in their order). A message missing from
// the result is another node's to deliver, or gone.
func (p *Push) ClaimMessagesOf(ctx context.Context, owner string, now time.Time, lease time.Duration, msgs []push.Message) ([]push.Message, error) {
	return pushOutbox.claimMessagesOf(ctx, p.db, owner, now, lease, msgs)
}

// RenewMessages extends every lease owner holds on the outbox to
// now+lease and returns how many there are. A lease another owner took
// (after it ended) is not owner's any more and is left alone.
func (p *Push) RenewMessages(ctx context.Context, owner string, now time.Time, lease time.Duration) (int, error) {
	return pushOutbox.renewMessages(ctx, p.db, owner, now, lease)
}
