package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/doze-io/doze/store"
	"github.com/doze-io/doze/store/internal/records"
	"github.com/jackc/pgx/v5"
)

// DeviceLog keeps the most recent events of each device, as
// store.DeviceLog does: a row of "device_log" per entry, numbered by one
// identity column for every device, the entry as JSON in rec. Each Append
// prunes the devices it wrote to their last Max entries in the same
// transaction; a message is cut at store.MaxLogMessage bytes.
type DeviceLog struct {
	db  *DB
	max int
}

// DeviceLog returns the device log view of db, keeping max entries per
// device (0 means store.DefaultDeviceLogMax).
func (db *DB) DeviceLog(max int) *DeviceLog {
	if max <= 0 {
		max = store.DefaultDeviceLogMax
	}
	return &DeviceLog{db: db, max: max}
}

// Append stores entries, of any devices, in one transaction, and prunes
// each device's log to its last Max entries. Entries of one device keep
// their order.
func (l *DeviceLog) Append(ctx context.Context, entries ...store.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	batch := &pgx.Batch{}
	var devices []string
	for i, e := range entries {
		if e.DeviceID == "" {
			return fmt.Errorf("store/postgres: device log: entry %d has no deviceId", i)
		}
		e.Message = records.Cut(e.Message, store.MaxLogMessage)
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		batch.Queue("INSERT INTO device_log (device_id, rec) VALUES ($1, $2)", e.DeviceID, v)
		devices = append(devices, e.DeviceID)
	}
	slices.Sort(devices)
	for _, id := range slices.Compact(devices) {
		batch.Queue(`DELETE FROM device_log WHERE device_id = $1 AND seq <= (
			SELECT seq FROM device_log WHERE device_id = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)`, id, l.max)
	}
	err := l.db.tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() })
	if err != nil {
		return fmt.Errorf("store/postgres: device log: appending %d entries: %w", len(entries), err)
	}
	return nil
}

// Recent returns up to limit entries of the device, newest first.
func (l *DeviceLog) Recent(deviceID string, limit int) ([]store.LogEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := l.db.pool.Query(context.Background(),
		"SELECT seq, rec FROM device_log WHERE device_id = $1 ORDER BY seq DESC LIMIT $2", deviceID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.LogEntry, error) {
		var seq int64
		var b []byte
		e := store.LogEntry{DeviceID: deviceID}
		if err := r.Scan(&seq, &b); err != nil {
			return e, err
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return e, fmt.Errorf("store/postgres: device log of %s: entry %d: %w", deviceID, seq, err)
		}
		return e, nil
	})
}

// Delete removes the log of a device (it was deleted).
func (l *DeviceLog) Delete(deviceID string) error {
	_, err := l.db.pool.Exec(context.Background(), "DELETE FROM device_log WHERE device_id = $1", deviceID)
	return err
}
