package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store/internal/records"
	"github.com/jackc/pgx/v5"
)

// Registry is the registry.Store on PostgreSQL: one row per device in
// "devices" (columns for every field; groups as a sorted text[] with a GIN
// index), groups in "device_groups". Uniqueness of ids, node keys and
// group names is the database's (unique constraints), and so is the
// gateway reference (a foreign key), so two nodes writing at once cannot
// break them. Update locks the device's row (SELECT … FOR UPDATE).
type Registry struct{ db *DB }

var (
	_ registry.Store  = (*Registry)(nil)
	_ registry.Leaser = (*Registry)(nil)
)

// Registry returns the registry Store kept in db.
func (db *DB) Registry() *Registry { return &Registry{db: db} }

const deviceColumns = `id, node_key, node_id, verify_code, psk, no_security,
	manufacturer_id, manufacturer_name, device_type, model, protocol_type, name, sw_version, fw_version, mode,
	gateway_id, node_type, groups, status, timeout_ns, bound, connected,
	created_at, last_modified, last_seen, disconnected_at, deadline, secret_hash, app_id`

// deviceColumnCount is how many columns deviceColumns names.
const deviceColumnCount = 29

func deviceArgs(d *registry.Device) []any {
	var gw any
	if d.GatewayID != "" {
		gw = d.GatewayID
	}
	var psk []byte
	if d.PSK != nil {
		psk = []byte(d.PSK)
	}
	// A non-NULL secret_hash marks a SecuritySecret (MQTT) device.
	var secret []byte
	if d.Security == registry.SecuritySecret {
		secret = append([]byte{}, d.SecretHash...)
	}
	groups := d.Groups
	if groups == nil {
		groups = []string{}
	}
	return []any{d.ID, registry.NodeKey(d.NodeID), d.NodeID, d.VerifyCode, psk, d.Security == registry.SecurityNone,
		d.Info.ManufacturerID, d.Info.ManufacturerName, d.Info.DeviceType, d.Info.Model, d.Info.ProtocolType,
		d.Info.Name, d.Info.SWVersion, d.Info.FWVersion, d.Info.Mode,
		gw, string(d.NodeType), groups, string(d.Status), int64(d.Timeout), d.Bound, d.Connected,
		nanos(d.CreatedAt), nanos(d.LastModified), nanos(d.LastSeen), nanos(d.DisconnectedAt), nanos(d.Deadline), secret, d.AppID}
}

func scanDevice(row pgx.Row) (registry.Device, error) {
	var d registry.Device
	var nodeKey string
	var psk []byte
	var noSec bool
	var gw *string
	var nodeType, status string
	var timeout int64
	var created, modified, seen, disc, deadline *int64
	var secret []byte
	err := row.Scan(&d.ID, &nodeKey, &d.NodeID, &d.VerifyCode, &psk, &noSec,
		&d.Info.ManufacturerID, &d.Info.ManufacturerName, &d.Info.DeviceType, &d.Info.Model, &d.Info.ProtocolType,
		&d.Info.Name, &d.Info.SWVersion, &d.Info.FWVersion, &d.Info.Mode,
		&gw, &nodeType, &d.Groups, &status, &timeout, &d.Bound, &d.Connected,
		&created, &modified, &seen, &disc, &deadline, &secret, &d.AppID)
	if err != nil {
		return registry.Device{}, err
	}
	if len(psk) > 0 {
		d.PSK = registry.PSK(psk)
	}
	d.Security = registry.SecurityPSK
	if noSec {
		d.Security = registry.SecurityNone
	}
	if secret != nil {
		d.Security, d.SecretHash = registry.SecuritySecret, registry.SecretHash(secret)
	}
	if gw != nil {
		d.GatewayID = *gw
	}
	if len(d.Groups) == 0 {
		d.Groups = nil
	}
	d.NodeType, d.Status, d.Timeout = registry.NodeType(nodeType), registry.Status(status), time.Duration(timeout)
	d.CreatedAt, d.LastModified, d.LastSeen = fromNanos(created), fromNanos(modified), fromNanos(seen)
	d.DisconnectedAt, d.Deadline = fromNanos(disc), fromNanos(deadline)
	return d, nil
}

func sortedGroups(g []string) []string { return slices.Compact(slices.Sorted(slices.Values(g))) }

// checkRefs checks d's gateway and groups, taking a key-share lock on each
// so that a concurrent Delete or DeleteGroup waits for this transaction.
func checkRefs(ctx context.Context, tx pgx.Tx, d *registry.Device) error {
	if d.GatewayID != "" {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM devices WHERE id = $1 AND id <> $2 FOR KEY SHARE", d.GatewayID, d.ID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store/postgres: gatewayId %q: %w", d.GatewayID, registry.ErrGatewayNotFound)
		}
		if err != nil {
			return err
		}
	}
	if len(d.Groups) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, "SELECT id FROM device_groups WHERE id = ANY($1) FOR KEY SHARE", d.Groups)
	if err != nil {
		return err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, g := range d.Groups {
		if !slices.Contains(found, g) {
			return fmt.Errorf("store/postgres: group %q: %w", g, registry.ErrGroupNotFound)
		}
	}
	return nil
}

// deviceWriteError turns constraint violations into the registry's errors.
func deviceWriteError(err error, d *registry.Device) error {
	switch code, constraint := pgCode(err); {
	case code == codeUniqueViolation && constraint == "devices_pkey":
		return fmt.Errorf("store/postgres: deviceId %q: %w", d.ID, registry.ErrExists)
	case code == codeUniqueViolation && constraint == "devices_node_key_key":
		return fmt.Errorf("store/postgres: nodeId %q: %w", d.NodeID, registry.ErrNodeIDTaken)
	case code == codeForeignKeyViolation && constraint == "devices_gateway_fkey":
		if d.GatewayID != "" {
			return fmt.Errorf("store/postgres: gatewayId %q: %w", d.GatewayID, registry.ErrGatewayNotFound)
		}
		return fmt.Errorf("store/postgres: deviceId %q: %w", d.ID, registry.ErrHasSubDevices)
	}
	return err
}

// checkText refuses strings PostgreSQL text cannot hold (a NUL byte,
// invalid UTF-8) with registry.ErrInvalid, naming the field, before the
// server refuses them with a less helpful error.
func checkText(d *registry.Device) error {
	fields := []struct{ name, v string }{
		{"deviceId", d.ID}, {"nodeId", d.NodeID}, {"verifyCode", d.VerifyCode},
		{"manufacturerId", d.Info.ManufacturerID}, {"manufacturerName", d.Info.ManufacturerName},
		{"deviceType", d.Info.DeviceType}, {"model", d.Info.Model}, {"protocolType", d.Info.ProtocolType},
		{"name", d.Info.Name}, {"swVersion", d.Info.SWVersion}, {"fwVersion", d.Info.FWVersion}, {"mode", d.Info.Mode},
		{"gatewayId", d.GatewayID}, {"nodeType", string(d.NodeType)}, {"status", string(d.Status)},
	}
	for _, g := range d.Groups {
		fields = append(fields, struct{ name, v string }{"groups", g})
	}
	for _, f := range fields {
		if strings.IndexByte(f.v, 0) >= 0 || !utf8.ValidString(f.v) {
			return fmt.Errorf("store/postgres: %s %q: %w: a NUL byte or invalid UTF-8; allowed: UTF-8 text without NUL", f.name, f.v, registry.ErrInvalid)
		}
	}
	return nil
}

// Create implements registry.Store.
func (s *Registry) Create(ctx context.Context, d registry.Device) error {
	d.Groups = sortedGroups(d.Groups)
	if err := checkText(&d); err != nil {
		return err
	}
	return s.db.tx(ctx, func(tx pgx.Tx) error {
		if err := checkRefs(ctx, tx, &d); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO devices ("+deviceColumns+") VALUES ("+placeholders(deviceColumnCount)+")", deviceArgs(&d)...)
		return deviceWriteError(err, &d)
	})
}

func placeholders(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i))
	}
	return b.String()
}

func getDevice(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, where string, arg any) (registry.Device, error) {
	d, err := scanDevice(q.QueryRow(ctx, "SELECT "+deviceColumns+" FROM devices WHERE "+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.Device{}, registry.ErrNotFound
	}
	return d, err
}

// Get implements registry.Store.
func (s *Registry) Get(ctx context.Context, id string) (registry.Device, error) {
	return getDevice(ctx, s.db.pool, "id = $1", id)
}

// GetByNodeKey implements registry.Store.
func (s *Registry) GetByNodeKey(ctx context.Context, key string) (registry.Device, error) {
	return getDevice(ctx, s.db.pool, "node_key = $1", key)
}

// Update implements registry.Store. The device's row stays locked from
// the read to the write, so fn runs once per call.
func (s *Registry) Update(ctx context.Context, id string, fn func(*registry.Device) error) (registry.Device, error) {
	var out registry.Device
	err := s.db.tx(ctx, func(tx pgx.Tx) error {
		old, err := getDevice(ctx, tx, "id = $1 FOR UPDATE", id)
		if err != nil {
			return err
		}
		d, err := records.UpdateDevice("store/postgres", id, old, fn)
		if err != nil {
			return err
		}
		if err := checkText(&d); err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, &d); err != nil {
			return err
		}
		args := deviceArgs(&d)
		_, err = tx.Exec(ctx, "UPDATE devices SET ("+deviceColumns+") = ("+placeholders(deviceColumnCount)+") WHERE id = $1", args...)
		if err != nil {
			return deviceWriteError(err, &d)
		}
		out = d
		return nil
	})
	if err != nil {
		return registry.Device{}, err
	}
	return out, nil
}

// Delete implements registry.Store.
func (s *Registry) Delete(ctx context.Context, id string, check func(registry.Device) error) (registry.Device, error) {
	var out registry.Device
	err := s.db.tx(ctx, func(tx pgx.Tx) error {
		d, err := getDevice(ctx, tx, "id = $1 FOR UPDATE", id)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(d.Clone()); err != nil {
				return err
			}
		}
		var subs bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM devices WHERE gateway_id = $1)", id).Scan(&subs); err != nil {
			return err
		}
		if subs {
			return fmt.Errorf("store/postgres: deviceId %q: %w", id, registry.ErrHasSubDevices)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM devices WHERE id = $1", id); err != nil {
			return deviceWriteError(err, &registry.Device{ID: id})
		}
		out = d
		return nil
	})
	if err != nil {
		return registry.Device{}, err
	}
	return out, nil
}

// List implements registry.Store: one query for the page, one for the
// count, in one REPEATABLE READ snapshot.
func (s *Registry) List(ctx context.Context, q registry.Query) ([]registry.Device, int, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if q.Status != "" {
		add("status = ?", string(q.Status))
	}
	if q.ManufacturerID != "" {
		add("manufacturer_id = ?", q.ManufacturerID)
	}
	if q.Model != "" {
		add("model = ?", q.Model)
	}
	if q.DeviceType != "" {
		add("device_type = ?", q.DeviceType)
	}
	if q.GatewayID != "" {
		add("gateway_id = ?", q.GatewayID)
	}
	if q.GroupID != "" {
		add("groups @> ARRAY[?::text]", q.GroupID)
	}
	if q.NodeType != "" {
		add("node_type = ?", string(q.NodeType))
	}
	if q.AppID != "" {
		add("app_id = ?", q.AppID)
	}
	if !q.From.IsZero() {
		add("created_at >= ?", clampNanos(q.From))
	}
	if !q.To.IsZero() {
		add("created_at < ?", clampNanos(q.To))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	page := ""
	empty := false
	if q.PageSize > 0 {
		if q.PageNo < 0 || q.PageNo > math.MaxInt/q.PageSize-1 {
			empty = true
		}
		page = fmt.Sprintf(" LIMIT %d OFFSET %d", q.PageSize, q.PageNo*q.PageSize)
	}
	var out []registry.Device
	total := 0
	err := pgx.BeginTxFunc(ctx, s.db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM devices"+cond, args...).Scan(&total); err != nil {
			return err
		}
		if empty || total == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, "SELECT "+deviceColumns+" FROM devices"+cond+" ORDER BY id"+page, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (registry.Device, error) { return scanDevice(r) })
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// Due implements registry.Store.
func (s *Registry) Due(ctx context.Context, t time.Time, limit int) ([]registry.Device, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.pool.Query(ctx, "SELECT "+deviceColumns+" FROM devices WHERE deadline <= $1 ORDER BY deadline LIMIT $2",
		clampNanos(t), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (registry.Device, error) { return scanDevice(r) })
}

// CreateGroup implements registry.Store.
func (s *Registry) CreateGroup(ctx context.Context, g registry.Group) error {
	_, err := s.db.pool.Exec(ctx, "INSERT INTO device_groups (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
		g.ID, g.Name, g.Description, nanos(g.CreatedAt))
	switch code, constraint := pgCode(err); {
	case code == codeUniqueViolation && constraint == "device_groups_pkey":
		return fmt.Errorf("store/postgres: group id %q: %w", g.ID, registry.ErrGroupExists)
	case code == codeUniqueViolation:
		return fmt.Errorf("store/postgres: group name %q: %w", g.Name, registry.ErrGroupExists)
	}
	return err
}

func scanGroup(r pgx.Row) (registry.Group, error) {
	var g registry.Group
	var created *int64
	err := r.Scan(&g.ID, &g.Name, &g.Description, &created)
	g.CreatedAt = fromNanos(created)
	return g, err
}

// Group implements registry.Store.
func (s *Registry) Group(ctx context.Context, id string) (registry.Group, error) {
	g, err := scanGroup(s.db.pool.QueryRow(ctx, "SELECT id, name, description, created_at FROM device_groups WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.Group{}, registry.ErrGroupNotFound
	}
	return g, err
}

// Groups implements registry.Store.
func (s *Registry) Groups(ctx context.Context) ([]registry.Group, error) {
	rows, err := s.db.pool.Query(ctx, "SELECT id, name, description, created_at FROM device_groups ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (registry.Group, error) { return scanGroup(r) })
}

// DeleteGroup implements registry.Store. The group's row goes first: a
// Create naming the group holds a key-share lock on it, so the delete
// waits for that Create, and the member update that follows sees it.
func (s *Registry) DeleteGroup(ctx context.Context, id string) error {
	return s.db.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM device_groups WHERE id = $1", id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return registry.ErrGroupNotFound
		}
		_, err = tx.Exec(ctx, "UPDATE devices SET groups = array_remove(groups, $1) WHERE groups @> ARRAY[$1::text]", id)
		return err
	})
}
