package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/doze-io/doze/ota"
	"github.com/jackc/pgx/v5"
)

// OTA is the ota.Store on PostgreSQL: packages, tasks and sub-tasks as JSON
// records (the bbolt store's encoding) in "ota_packages", "ota_tasks" and
// "ota_subtasks"; a sub-task's row also carries its step deadline and
// whether it has ended, for Claim. Sub-tasks reference their task (a
// foreign key), so a sub-task of a missing task is refused by the
// database whichever node writes it.
type OTA struct{ db *DB }

var _ ota.Store = (*OTA)(nil)

// OTA returns the ota Store kept in db.
func (db *DB) OTA() *OTA { return &OTA{db: db} }

func (o *OTA) putRec(ctx context.Context, table, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store/postgres: encode %s %q: %w", table, id, err)
	}
	_, err = o.db.pool.Exec(ctx, "INSERT INTO "+table+" (id, rec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET rec = excluded.rec", id, b)
	return err
}

func getRec(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql, what, id string, v any, args ...any) error {
	var b []byte
	err := q.QueryRow(ctx, sql, args...).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s %q", ota.ErrNotFound, what, id)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("store/postgres: %s %q: %w", what, id, err)
	}
	return nil
}

func listRecs[T any](ctx context.Context, db *DB, sql string, args ...any) ([]T, error) {
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) {
		var b []byte
		var v T
		if err := r.Scan(&b); err != nil {
			return v, err
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return v, fmt.Errorf("store/postgres: record: %w", err)
		}
		return v, nil
	})
}

// PutPackage implements ota.Store.
func (o *OTA) PutPackage(ctx context.Context, p ota.Package) error {
	return o.putRec(ctx, "ota_packages", p.ID, p)
}

// Package implements ota.Store.
func (o *OTA) Package(ctx context.Context, id string) (ota.Package, error) {
	var p ota.Package
	err := getRec(ctx, o.db.pool, "SELECT rec FROM ota_packages WHERE id = $1", "package", id, &p, id)
	return p, err
}

// Packages implements ota.Store.
func (o *OTA) Packages(ctx context.Context) ([]ota.Package, error) {
	return listRecs[ota.Package](ctx, o.db, "SELECT rec FROM ota_packages ORDER BY id")
}

// DeletePackage implements ota.Store.
func (o *OTA) DeletePackage(ctx context.Context, id string) error {
	tag, err := o.db.pool.Exec(ctx, "DELETE FROM ota_packages WHERE id = $1", id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: package %q", ota.ErrNotFound, id)
	}
	return nil
}

const upsertSubTask = `INSERT INTO ota_subtasks (task_id, device_id, final, deadline, rec) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (task_id, device_id) DO UPDATE SET final = excluded.final, deadline = excluded.deadline, rec = excluded.rec`

func subTaskArgs(s *ota.SubTask) ([]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: encode sub-task %s: %w", s.ID(), err)
	}
	return []any{s.TaskID, s.DeviceID, s.State.Final(), nanos(s.Deadline), b}, nil
}

// PutTask implements ota.Store: the task and its sub-tasks in one
// transaction.
func (o *OTA) PutTask(ctx context.Context, t ota.Task, subs []ota.SubTask) error {
	tb, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("store/postgres: encode task %q: %w", t.ID, err)
	}
	batch := &pgx.Batch{}
	batch.Queue("INSERT INTO ota_tasks (id, rec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET rec = excluded.rec", t.ID, tb)
	for i := range subs {
		if subs[i].TaskID != t.ID {
			return fmt.Errorf("store/postgres: sub-task %s does not belong to task %q", subs[i].ID(), t.ID)
		}
		args, err := subTaskArgs(&subs[i])
		if err != nil {
			return err
		}
		batch.Queue(upsertSubTask, args...)
	}
	return o.db.tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() })
}

// Task implements ota.Store.
func (o *OTA) Task(ctx context.Context, id string) (ota.Task, error) {
	var t ota.Task
	err := getRec(ctx, o.db.pool, "SELECT rec FROM ota_tasks WHERE id = $1", "task", id, &t, id)
	return t, err
}

// Tasks implements ota.Store.
func (o *OTA) Tasks(ctx context.Context) ([]ota.Task, error) {
	return listRecs[ota.Task](ctx, o.db, "SELECT rec FROM ota_tasks ORDER BY id")
}

// PutSubTask implements ota.Store.
func (o *OTA) PutSubTask(ctx context.Context, s ota.SubTask) error {
	args, err := subTaskArgs(&s)
	if err != nil {
		return err
	}
	_, err = o.db.pool.Exec(ctx, upsertSubTask, args...)
	if code, _ := pgCode(err); code == codeForeignKeyViolation {
		return fmt.Errorf("%w: task %q of sub-task %s", ota.ErrNotFound, s.TaskID, s.ID())
	}
	return err
}

// SubTask implements ota.Store.
func (o *OTA) SubTask(ctx context.Context, taskID, deviceID string) (ota.SubTask, error) {
	var s ota.SubTask
	err := getRec(ctx, o.db.pool, "SELECT rec FROM ota_subtasks WHERE task_id = $1 AND device_id = $2",
		"sub-task", taskID+"/"+deviceID, &s, taskID, deviceID)
	return s, err
}

// SubTasks implements ota.Store.
func (o *OTA) SubTasks(ctx context.Context, taskID string) ([]ota.SubTask, error) {
	var out []ota.SubTask
	err := pgx.BeginTxFunc(ctx, o.db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM ota_tasks WHERE id = $1)", taskID).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: task %q", ota.ErrNotFound, taskID)
		}
		rows, err := tx.Query(ctx, "SELECT rec FROM ota_subtasks WHERE task_id = $1 ORDER BY device_id", taskID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ota.SubTask, error) {
			var b []byte
			var s ota.SubTask
			if err := r.Scan(&b); err != nil {
				return s, err
			}
			return s, json.Unmarshal(b, &s)
		})
		return err
	})
	return out, err
}
