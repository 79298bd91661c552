package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/store/internal/records"
	"github.com/jackc/pgx/v5"
)

// Commands is the command.Store (and command.Pruner) on PostgreSQL. A
// command is one row of "commands" keyed by (device_id, seq): the whole
// command as JSON in rec, and beside it the columns the queries need —
// open (PENDING, SENT, DELIVERED), due (Command.Due() while open), the end
// time for Prune. A Write is one transaction; task counts are applied to
// rows locked FOR UPDATE, so two nodes counting the same task add up.
type Commands struct {
	db *DB
	t  *commandTables
}

// commandTables names the tables of one command queue and holds the
// statements over them: the commands' own, and the LwM2M operations'
// (migration 0005), which follow the same discipline in tables of their
// own.
type commandTables struct {
	commands, last, modes, tasks string
	idKey                        string // the unique constraint on commands.id
	upsert, bump, claim          string
}

func newCommandTables(commands, last, modes, tasks string) *commandTables {
	t := &commandTables{commands: commands, last: last, modes: modes, tasks: tasks, idKey: commands + "_id_key"}
	t.upsert = `INSERT INTO ` + commands + ` (device_id, seq, id, status, open, due, executed, rec)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
	ON CONFLICT (device_id, seq) DO UPDATE SET id = excluded.id, status = excluded.status, open = excluded.open,
		due = excluded.due, executed = excluded.executed, rec = excluded.rec`
	t.bump = `INSERT INTO ` + last + ` (device_id, seq) VALUES ($1, $2)
	ON CONFLICT (device_id) DO UPDATE SET seq = greatest(` + last + `.seq, excluded.seq)`
	t.claim = claimSQL(commands, "device_id, seq", "due <= $1", "due, device_id, seq", "rec")
	return t
}

var (
	commandQueue = newCommandTables("commands", "command_last", "command_modes", "command_tasks")
	lwm2mOpQueue = newCommandTables("lwm2m_ops", "lwm2m_op_last", "lwm2m_op_modes", "lwm2m_op_tasks")
)

var (
	_ command.Store  = (*Commands)(nil)
	_ command.Pruner = (*Commands)(nil)
)

// Commands returns the command Store kept in db.
func (db *DB) Commands() *Commands { return &Commands{db: db, t: commandQueue} }

// LwM2MOps returns the command Store of queued LwM2M operations (LWM-11):
// Commands over tables of their own, as the bbolt store keeps them in a
// bucket of their own.
func (db *DB) LwM2MOps() *Commands { return &Commands{db: db, t: lwm2mOpQueue} }

// decodeCommand reads the stored form, the bbolt store's too
// (store/internal/records).
func decodeCommand(b []byte) (command.Command, error) {
	c, err := records.DecodeCommand(b)
	if err != nil {
		return command.Command{}, fmt.Errorf("store/postgres: command record: %w", err)
	}
	return c, nil
}

// commandRows decodes rows of one rec column.
func commandRows(rows pgx.Rows, err error) ([]command.Command, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (command.Command, error) {
		var b []byte
		if err := r.Scan(&b); err != nil {
			return command.Command{}, err
		}
		return decodeCommand(b)
	})
}

// Write implements command.Store: one transaction for the commands and
// the task counts.
func (s *Commands) Write(ctx context.Context, w command.Write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Rows are locked in one order (device, seq; tasks by id) by every
	// writer, so two nodes writing overlapping commands wait for each
	// other instead of deadlocking.
	order := make([]*command.Command, len(w.Commands))
	for i := range w.Commands {
		order[i] = &w.Commands[i]
	}
	slices.SortStableFunc(order, func(a, b *command.Command) int {
		return cmp.Or(strings.Compare(a.DeviceID, b.DeviceID), cmp.Compare(a.Seq, b.Seq))
	})
	counts := slices.Clone(w.Counts)
	slices.SortStableFunc(counts, func(a, b command.Count) int { return strings.Compare(a.TaskID, b.TaskID) })
	batch := &pgx.Batch{}
	for _, c := range order {
		if err := command.CheckRecord(c); err != nil {
			return err
		}
		if c.Seq > math.MaxInt64 {
			return fmt.Errorf("%w: command %s Seq %d; allowed 1..%d", ErrTooLarge, c.ID, c.Seq, int64(math.MaxInt64))
		}
		b, err := records.EncodeCommand(c)
		if err != nil {
			return err
		}
		var due, executed any
		if c.Status.Open() {
			due = nanos(c.Due())
		} else {
			executed = nanos(c.ExecuteTime)
		}
		batch.Queue(s.t.upsert, c.DeviceID, int64(c.Seq), c.ID, int16(c.Status), c.Status.Open(), due, executed, b)
		batch.Queue(s.t.bump, c.DeviceID, int64(c.Seq))
	}
	for _, n := range counts {
		if err := command.CheckCount(n); err != nil {
			return err
		}
	}
	return s.db.tx(ctx, func(tx pgx.Tx) error {
		for _, n := range counts {
			if err := s.countTask(ctx, tx, n); err != nil {
				return err
			}
		}
		if batch.Len() == 0 {
			return nil
		}
		err := tx.SendBatch(ctx, batch).Close()
		if code, constraint := pgCode(err); code == codeUniqueViolation && constraint == s.t.idKey {
			return fmt.Errorf("%w: a command id is already used by another device or seq (%v)", command.ErrBadRecord, err)
		}
		return err
	})
}

func (s *Commands) countTask(ctx context.Context, tx pgx.Tx, n command.Count) error {
	var b []byte
	err := tx.QueryRow(ctx, "SELECT rec FROM "+s.t.tasks+" WHERE id = $1 FOR UPDATE", n.TaskID).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store/postgres: %w", &command.NotFoundError{What: "task", ID: n.TaskID})
	}
	if err != nil {
		return err
	}
	var t records.Task
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("store/postgres: task %q: %w", n.TaskID, err)
	}
	ct := command.Task(t)
	ct.Count(n.Status)
	if b, err = json.Marshal(records.Task(ct)); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "UPDATE "+s.t.tasks+" SET rec = $2 WHERE id = $1", n.TaskID, b)
	return err
}

// Get implements command.Store.
func (s *Commands) Get(ctx context.Context, id string) (command.Command, error) {
	var b []byte
	err := s.db.pool.QueryRow(ctx, "SELECT rec FROM "+s.t.commands+" WHERE id = $1", id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return command.Command{}, &command.NotFoundError{What: "command", ID: id}
	}
	if err != nil {
		return command.Command{}, err
	}
	return decodeCommand(b)
}

// LastSeq implements command.Store.
func (s *Commands) LastSeq(ctx context.Context, deviceID string) (uint64, error) {
	var n int64
	err := s.db.pool.QueryRow(ctx, "SELECT seq FROM "+s.t.last+" WHERE device_id = $1", deviceID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(n), err
}

// Queue implements command.Store.
func (s *Commands) Queue(ctx context.Context, deviceID string) ([]command.Command, error) {
	return commandRows(s.db.pool.Query(ctx, "SELECT rec FROM "+s.t.commands+" WHERE device_id = $1 AND open ORDER BY seq", deviceID))
}

// Front implements command.Store: the first n open commands and the later
// due ones, chosen by the server from the open-commands index.
func (s *Commands) Front(ctx context.Context, deviceID string, n int, t time.Time) ([]command.Command, error) {
	n = max(n, 0)
	var bound any // NULL: "due <= NULL" is never true
	if !t.IsZero() {
		bound = clampNanos(t)
	}
	return commandRows(s.db.pool.Query(ctx, `SELECT rec FROM (
			SELECT rec, seq, due, row_number() OVER (ORDER BY seq) AS i
			FROM `+s.t.commands+` WHERE device_id = $1 AND open) q
		WHERE i <= $2 OR due <= $3 ORDER BY seq`, deviceID, n, bound))
}

// List implements command.Store.
func (s *Commands) List(ctx context.Context, deviceID string, after uint64, limit int) ([]command.Command, error) {
	if limit <= 0 || after >= math.MaxInt64 {
		return nil, nil
	}
	return commandRows(s.db.pool.Query(ctx, "SELECT rec FROM "+s.t.commands+" WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
		deviceID, int64(after), limit))
}

// Due implements command.Store.
func (s *Commands) Due(ctx context.Context, t time.Time, limit int) ([]command.Command, error) {
	if limit <= 0 {
		return nil, nil
	}
	return commandRows(s.db.pool.Query(ctx, "SELECT rec FROM "+s.t.commands+" WHERE due <= $1 ORDER BY due, device_id, seq LIMIT $2",
		clampNanos(t), limit))
}

// NextDue implements command.Store.
func (s *Commands) NextDue(ctx context.Context) (time.Time, error) {
	var d *int64
	if err := s.db.pool.QueryRow(ctx, "SELECT min(due) FROM "+s.t.commands+" WHERE due IS NOT NULL").Scan(&d); err != nil {
		return time.Time{}, err
	}
	if d == nil {
		return time.Time{}, nil
	}
	return time.Unix(0, *d).UTC(), nil
}

// PutMode implements command.Store.
func (s *Commands) PutMode(ctx context.Context, deviceID string, m command.Mode) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.db.pool.Exec(ctx, `INSERT INTO `+s.t.modes+` (device_id, rec) VALUES ($1, $2)
		ON CONFLICT (device_id) DO UPDATE SET rec = excluded.rec`, deviceID, b)
	return err
}

// Mode implements command.Store.
func (s *Commands) Mode(ctx context.Context, deviceID string) (command.Mode, bool, error) {
	var b []byte
	err := s.db.pool.QueryRow(ctx, "SELECT rec FROM "+s.t.modes+" WHERE device_id = $1", deviceID).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return command.Mode{}, false, nil
	}
	if err != nil {
		return command.Mode{}, false, err
	}
	var m command.Mode
	if err := json.Unmarshal(b, &m); err != nil {
		return command.Mode{}, true, fmt.Errorf("store/postgres: mode of %q: %w", deviceID, err)
	}
	return m, true, nil
}

// PutTask implements command.Store.
func (s *Commands) PutTask(ctx context.Context, t command.Task) error {
	b, err := json.Marshal(records.Task(t))
	if err != nil {
		return err
	}
	_, err = s.db.pool.Exec(ctx, `INSERT INTO `+s.t.tasks+` (id, rec) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET rec = excluded.rec`, t.ID, b)
	return err
}

// Task implements command.Store.
func (s *Commands) Task(ctx context.Context, id string) (command.Task, error) {
	var b []byte
	err := s.db.pool.QueryRow(ctx, "SELECT rec FROM "+s.t.tasks+" WHERE id = $1", id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return command.Task{}, &command.NotFoundError{What: "task", ID: id}
	}
	if err != nil {
		return command.Task{}, err
	}
	var r records.Task
	if err := json.Unmarshal(b, &r); err != nil {
		return command.Task{}, fmt.Errorf("store/postgres: task %q: %w", id, err)
	}
	return command.Task(r), nil
}

// Prune implements command.Pruner: one statement, served by the index of
// ended commands.
func (s *Commands) Prune(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	final := make([]int16, 0, 8)
	for st := command.Status(1); st.Valid(); st++ {
		if st.Final() {
			final = append(final, int16(st))
		}
	}
	slices.Sort(final)
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM `+s.t.commands+` WHERE (device_id, seq) IN (
			SELECT device_id, seq FROM `+s.t.commands+`
			WHERE NOT open AND status = ANY($1) AND executed < $2 LIMIT $3)`, final, clampNanos(before), limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
