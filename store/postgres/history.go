package postgres

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/doze-io/doze/store"
	"github.com/jackc/pgx/v5"
)

// History is the history view of a DB (STO-2): one row per service
// per report in "history". A query names one device and is served by the
// btree index (device_id, ts DESC, seq DESC): it reads only that device's
// rows, newest first, whatever the table's size. Prune deletes by ts
// through a BRIN index (rows arrive in time order, so a few hundred bytes
// of BRIN summarise millions of rows). The package doc says how this
// scales to 100 M rows.
type History struct{ db *DB }

// History returns the history view of db.
func (db *DB) History() *History { return &History{db: db} }

const insertHistory = `INSERT INTO history (device_id, ts, gateway_id, app_id, service_id, data) VALUES ($1, $2, $3, $4, $5, $6)`

func queueHistory(b *pgx.Batch, recs []store.HistoryRecord) error {
	for _, r := range recs {
		if r.DeviceID == "" {
			return store.ErrNoDevice
		}
		data := []byte(r.Data)
		if data == nil {
			data = []byte("null")
		}
		b.Queue(insertHistory, r.DeviceID, clampNanos(r.Time), r.GatewayID, r.AppID, r.ServiceID, data)
	}
	return nil
}

// Append stores records in one transaction.
func (h *History) Append(recs ...store.HistoryRecord) error {
	b := &pgx.Batch{}
	if err := queueHistory(b, recs); err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil
	}
	ctx := context.Background()
	return h.db.tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
}

// Query returns the matching records of one page, newest first, and the
// number of matches in all.
func (h *History) Query(q store.HistoryQuery) ([]store.HistoryRecord, int, error) {
	if q.DeviceID == "" {
		return nil, 0, store.ErrNoDevice
	}
	if q.PageSize <= 0 {
		q.PageSize = 25
	}
	cond := " FROM history WHERE device_id = $1"
	args := []any{q.DeviceID}
	add := func(c string, v any) {
		args = append(args, v)
		cond += " AND " + c + " $" + strconv.Itoa(len(args))
	}
	if q.GatewayID != "" {
		add("gateway_id =", q.GatewayID)
	}
	if q.ServiceID != "" {
		add("service_id =", q.ServiceID)
	}
	if !q.Since.IsZero() {
		add("ts >=", clampNanos(q.Since))
	}
	if !q.Until.IsZero() {
		add("ts <=", clampNanos(q.Until))
	}
	page := ""
	if q.Page >= 0 {
		page = " LIMIT " + strconv.Itoa(q.PageSize) + " OFFSET " + strconv.FormatInt(int64(q.Page)*int64(q.PageSize), 10)
	}
	ctx := context.Background()
	var out []store.HistoryRecord
	total := 0
	err := pgx.BeginTxFunc(ctx, h.db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT count(*)"+cond, args...).Scan(&total); err != nil {
			return err
		}
		if total == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, "SELECT device_id, gateway_id, app_id, service_id, data, ts"+cond+" ORDER BY ts DESC, seq DESC"+page, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.HistoryRecord, error) {
			var rec store.HistoryRecord
			var data []byte
			var ts int64
			err := r.Scan(&rec.DeviceID, &rec.GatewayID, &rec.AppID, &rec.ServiceID, &data, &ts)
			rec.Data, rec.Time = json.RawMessage(data), time.Unix(0, ts).UTC()
			return rec, err
		})
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// Prune deletes records older than cutoff and returns how many it deleted.
func (h *History) Prune(cutoff time.Time) (int, error) {
	tag, err := h.db.pool.Exec(context.Background(), "DELETE FROM history WHERE ts < $1", clampNanos(cutoff))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// DeleteDevice deletes every record of a device.
func (h *History) DeleteDevice(deviceID string) error {
	_, err := h.db.pool.Exec(context.Background(), "DELETE FROM history WHERE device_id = $1", deviceID)
	return err
}
