package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ShadowEntry is one side (reported or desired) of one service's shadow.
type ShadowEntry struct {
	Data      map[string]any `json:"data"`
	EventTime time.Time      `json:"eventTime"`
}

// ServiceShadow is the shadow of one service of a device (STO-3).
type ServiceShadow struct {
	ServiceID string       `json:"serviceId"`
	Reported  *ShadowEntry `json:"reported,omitempty"`
	Desired   *ShadowEntry `json:"desired,omitempty"`
}

// Shadow is the shadow view of a DB: per device, the latest reported value
// of each property and the desired values set by the application. A device's
// shadow is one JSON value under its deviceId.
type Shadow struct{ db *DB }

// Shadow returns the shadow view of db.
func (db *DB) Shadow() *Shadow { return &Shadow{db: db} }

// Get returns the device's shadow, services in the order first seen.
func (s *Shadow) Get(deviceID string) ([]ServiceShadow, error) {
	var out []ServiceShadow
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		out, err = getShadow(tx, deviceID)
		return err
	})
	return out, err
}

// Desired returns the device's shadow when some service has desired
// values, and nil otherwise. It is Get for the uplink path: a device's
// every wake-up asks, and a shadow without desired values (the common
// case) is answered without decoding it.
func (s *Shadow) Desired(deviceID string) ([]ServiceShadow, error) {
	var out []ServiceShadow
	err := s.db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketShadow).Get([]byte(deviceID))
		// "desired" appears unescaped only as a key: a ServiceShadow's
		// Desired (omitted when nil) or a property of that name, which
		// costs a decode and finds nothing.
		if !bytes.Contains(v, []byte(`"desired":`)) {
			return nil
		}
		var err error
		out, err = getShadow(tx, deviceID)
		return err
	})
	for _, ss := range out {
		if ss.Desired != nil {
			return out, err
		}
	}
	return nil, err
}

func getShadow(tx *bolt.Tx, deviceID string) ([]ServiceShadow, error) {
	v := tx.Bucket(bucketShadow).Get([]byte(deviceID))
	if v == nil {
		return nil, nil
	}
	var out []ServiceShadow
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("store: shadow of %s: %w", deviceID, err)
	}
	return out, nil
}

// Report merges reported values into the device's shadow: each property
// takes the new value, properties not reported keep theirs.
func (s *Shadow) Report(deviceID, serviceID string, data map[string]any, at time.Time) error {
	return s.db.SaveReport(deviceID, nil, map[string]map[string]any{serviceID: data}, at)
}

// Desire merges desired values into the device's shadow.
func (s *Shadow) Desire(deviceID, serviceID string, data map[string]any, at time.Time) error {
	return s.update(deviceID, serviceID, func(ss *ServiceShadow) {
		if ss.Desired == nil {
			ss.Desired = &ShadowEntry{Data: map[string]any{}}
		}
		for k, v := range data {
			ss.Desired.Data[k] = v
		}
		ss.Desired.EventTime = at.UTC()
	})
}

// ClearDesired removes desired values that were delivered to the device.
func (s *Shadow) ClearDesired(deviceID, serviceID string) error {
	return s.update(deviceID, serviceID, func(ss *ServiceShadow) { ss.Desired = nil })
}

// Delete removes the device's shadow.
func (s *Shadow) Delete(deviceID string) error {
	return s.db.commit(func(tx *bolt.Tx) error { return tx.Bucket(bucketShadow).Delete([]byte(deviceID)) })
}

func (s *Shadow) update(deviceID, serviceID string, f func(*ServiceShadow)) error {
	return s.db.commit(func(tx *bolt.Tx) error {
		all, err := getShadow(tx, deviceID)
		if err != nil {
			return err
		}
		i := 0
		for i < len(all) && all[i].ServiceID != serviceID {
			i++
		}
		if i == len(all) {
			all = append(all, ServiceShadow{ServiceID: serviceID})
		}
		f(&all[i])
		v, err := json.Marshal(all)
		if err != nil {
			return fmt.Errorf("store: shadow of %s: %w", deviceID, err)
		}
		return tx.Bucket(bucketShadow).Put([]byte(deviceID), v)
	})
}

// SaveReport stores one device report in a single commit: its history
// records (when hist is not empty) and the reported values of each service
// in the shadow (STO-2, STO-3). A report costs one write, not one per
// service.
func (db *DB) SaveReport(deviceID string, hist []HistoryRecord, reported map[string]map[string]any, at time.Time) error {
	return db.SaveUplink(Uplink{DeviceID: deviceID, History: hist, Reported: reported, Time: at})
}

// reportShadow merges reported values into the device's shadow in tx.
func reportShadow(tx *bolt.Tx, deviceID string, reported map[string]map[string]any, at time.Time) error {
	if len(reported) == 0 {
		return nil
	}
	all, err := getShadow(tx, deviceID)
	if err != nil {
		return err
	}
	// Services new to the shadow are added in name order: a report's
	// services come as a map, which has no order of its own.
	for _, service := range slices.Sorted(maps.Keys(reported)) {
		data := reported[service]
		i := 0
		for i < len(all) && all[i].ServiceID != service {
			i++
		}
		if i == len(all) {
			all = append(all, ServiceShadow{ServiceID: service})
		}
		ss := &all[i]
		if ss.Reported == nil {
			ss.Reported = &ShadowEntry{Data: map[string]any{}}
		}
		for k, v := range data {
			ss.Reported.Data[k] = v
		}
		ss.Reported.EventTime = at.UTC()
	}
	v, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("store: shadow of %s: %w", deviceID, err)
	}
	return tx.Bucket(bucketShadow).Put([]byte(deviceID), v)
}
