package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doze-io/doze/store"
	"github.com/jackc/pgx/v5"
)

// Shadow is the shadow view of a DB (STO-3): per device, one row of
// "shadows" holding the JSON of its services. Changes lock the row (SELECT
// … FOR UPDATE), so reports of one device handled by two nodes merge.
type Shadow struct{ db *DB }

// Shadow returns the shadow view of db.
func (db *DB) Shadow() *Shadow { return &Shadow{db: db} }

// Get returns the device's shadow, services in the order first seen.
func (s *Shadow) Get(deviceID string) ([]store.ServiceShadow, error) {
	var b []byte
	err := s.db.pool.QueryRow(context.Background(), "SELECT rec FROM shadows WHERE device_id = $1", deviceID).Scan(&b)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []store.ServiceShadow
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("store/postgres: shadow of %s: %w", deviceID, err)
	}
	return out, nil
}

// Desired returns the device's shadow when some service has desired
// values, and nil otherwise, as store.Shadow.Desired does: the uplink
// path asks on every wake-up.
func (s *Shadow) Desired(deviceID string) ([]store.ServiceShadow, error) {
	all, err := s.Get(deviceID)
	for _, ss := range all {
		if ss.Desired != nil {
			return all, err
		}
	}
	return nil, err
}

// Report merges reported values into the device's shadow: each property
// takes the new value, properties not reported keep theirs.
func (s *Shadow) Report(deviceID, serviceID string, data map[string]any, at time.Time) error {
	return s.db.SaveReport(deviceID, nil, map[string]map[string]any{serviceID: data}, at)
}

// Desire merges desired values into the device's shadow.
func (s *Shadow) Desire(deviceID, serviceID string, data map[string]any, at time.Time) error {
	ctx := context.Background()
	return s.db.tx(ctx, func(tx pgx.Tx) error {
		return updateShadow(ctx, tx, deviceID, func(all []store.ServiceShadow) []store.ServiceShadow {
			all, ss := service(all, serviceID)
			if ss.Desired == nil {
				ss.Desired = &store.ShadowEntry{Data: map[string]any{}}
			}
			for k, v := range data {
				ss.Desired.Data[k] = v
			}
			ss.Desired.EventTime = at.UTC()
			return all
		})
	})
}

// ClearDesired removes desired values that were delivered to the device.
func (s *Shadow) ClearDesired(deviceID, serviceID string) error {
	ctx := context.Background()
	return s.db.tx(ctx, func(tx pgx.Tx) error {
		return updateShadow(ctx, tx, deviceID, func(all []store.ServiceShadow) []store.ServiceShadow {
			all, ss := service(all, serviceID)
			ss.Desired = nil
			return all
		})
	})
}

// Delete removes the device's shadow.
func (s *Shadow) Delete(deviceID string) error {
	_, err := s.db.pool.Exec(context.Background(), "DELETE FROM shadows WHERE device_id = $1", deviceID)
	return err
}

// service returns all with serviceID's entry (appended when new) and a
// pointer to that entry.
func service(all []store.ServiceShadow, serviceID string) ([]store.ServiceShadow, *store.ServiceShadow) {
	for i := range all {
		if all[i].ServiceID == serviceID {
			return all, &all[i]
		}
	}
	all = append(all, store.ServiceShadow{ServiceID: serviceID})
	return all, &all[len(all)-1]
}

// updateShadow reads the device's shadow with its row locked (creating
// the row first, so that two first reports do not race), lets f change
// it and writes it back.
func updateShadow(ctx context.Context, tx pgx.Tx, deviceID string, f func([]store.ServiceShadow) []store.ServiceShadow) error {
	if _, err := tx.Exec(ctx, "INSERT INTO shadows (device_id, rec) VALUES ($1, '[]') ON CONFLICT (device_id) DO NOTHING", deviceID); err != nil {
		return err
	}
	var b []byte
	if err := tx.QueryRow(ctx, "SELECT rec FROM shadows WHERE device_id = $1 FOR UPDATE", deviceID).Scan(&b); err != nil {
		return err
	}
	var all []store.ServiceShadow
	if err := json.Unmarshal(b, &all); err != nil {
		return fmt.Errorf("store/postgres: shadow of %s: %w", deviceID, err)
	}
	all = f(all)
	b, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("store/postgres: shadow of %s: %w", deviceID, err)
	}
	_, err = tx.Exec(ctx, "UPDATE shadows SET rec = $2 WHERE device_id = $1", deviceID, b)
	return err
}

// SaveReport stores one device report in one transaction: its history
// records (when hist is not empty) and the reported values of each service
// in the shadow (STO-2, STO-3).
func (db *DB) SaveReport(deviceID string, hist []store.HistoryRecord, reported map[string]map[string]any, at time.Time) error {
	return db.SaveUplink(store.Uplink{DeviceID: deviceID, History: hist, Reported: reported, Time: at})
}

// SaveUplink writes everything one uplink causes in one transaction: its
// history records, its reported values merged into the shadow, its pushes
// in the push outbox, its forwarding messages in the forwarding outbox
// (Forward) and the removal of its inbox entry (the bbolt store's
// DB.SaveUplink). An error means nothing of u was written.
func (db *DB) SaveUplink(u store.Uplink) error {
	b := &pgx.Batch{}
	if err := queueHistory(b, u.History); err != nil {
		return err
	}
	if err := pushOutbox.queue(b, u.Messages); err != nil {
		return err
	}
	if err := forwardOutbox.queue(b, u.Forward); err != nil {
		return err
	}
	if u.Inbox != 0 && u.Inbox <= 1<<63-1 {
		b.Queue("DELETE FROM inbox WHERE seq = $1", int64(u.Inbox))
	}
	ctx := context.Background()
	return db.tx(ctx, func(tx pgx.Tx) error {
		if b.Len() > 0 {
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		if len(u.Reported) == 0 {
			return nil
		}
		return updateShadow(ctx, tx, u.DeviceID, func(all []store.ServiceShadow) []store.ServiceShadow {
			for svc, data := range u.Reported {
				var ss *store.ServiceShadow
				all, ss = service(all, svc)
				if ss.Reported == nil {
					ss.Reported = &store.ShadowEntry{Data: map[string]any{}}
				}
				for k, v := range data {
					ss.Reported.Data[k] = v
				}
				ss.Reported.EventTime = u.Time.UTC()
			}
			return all
		})
	})
}
