package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store/internal/records"
	bolt "go.etcd.io/bbolt"
)

// Registry is the registry.Store on the DB (STO-1). Every write is one
// bbolt transaction shared with concurrent writers (DB.commit, see the
// package doc) and returns after it is on disk.
//
// Layout inside the "registry" bucket, one sub-bucket each:
//
//	dev      deviceId → device record (encodeDevice)
//	node     NodeKey(nodeId) → deviceId          unique nodeId
//	status   status | deviceId → ""              List by status
//	product  manufacturerId | model | deviceId   List by product
//	gateway  gatewayId | deviceId                sub-devices, List by gateway
//	member   groupId | deviceId                  List by group, DeleteGroup
//	due      deadline (8 bytes) | deviceId       Due
//	group    groupId → group record
//	gname    group name → groupId                unique group names
//	owner    appId | deviceId                    List by application (APP-3)
//
// "a | b" is a's length as a uvarint, a's bytes, then b, so that keys with
// one prefix sort by deviceId.
type Registry struct {
	db *DB
}

var _ registry.Store = (*Registry)(nil)

// Registry returns the registry Store kept in db.
func (db *DB) Registry() *Registry { return &Registry{db: db} }

var (
	rbDev     = []byte("dev")
	rbNode    = []byte("node")
	rbStatus  = []byte("status")
	rbProduct = []byte("product")
	rbGateway = []byte("gateway")
	rbMember  = []byte("member")
	rbDue     = []byte("due")
	rbGroup   = []byte("group")
	rbGName   = []byte("gname")
	rbOwner   = []byte("owner")
	rbAll     = [][]byte{rbDev, rbNode, rbStatus, rbProduct, rbGateway, rbMember, rbDue, rbGroup, rbGName, rbOwner}
)

// initRegistry creates the registry's sub-buckets; Open calls it.
func initRegistry(tx *bolt.Tx) error {
	top := tx.Bucket(bucketRegistry)
	for _, name := range rbAll {
		if _, err := top.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// rtx is a transaction's view of the registry buckets, opened on first
// use (a Get needs one of the nine).
type rtx struct {
	top      *bolt.Bucket
	writable bool
	open     [iOwner + 1]*bolt.Bucket
}

// Sub-bucket indexes into rbAll.
const (
	iDev = iota
	iNode
	iStatus
	iProduct
	iGateway
	iMember
	iDue
	iGroup
	iGName
	iOwner
)

func registryBuckets(tx *bolt.Tx) (*rtx, error) {
	top := tx.Bucket(bucketRegistry)
	if top == nil || top.Bucket(rbDev) == nil {
		return nil, errors.New("store: registry buckets missing (file opened read-only before any write)")
	}
	return &rtx{top: top, writable: tx.Writable()}, nil
}

func (b *rtx) bucket(i int) *bolt.Bucket {
	if bk := b.open[i]; bk != nil {
		return bk
	}
	bk := b.top.Bucket(rbAll[i])
	if bk == nil {
		return nil // "owner" in a file older than it, opened read-only
	}
	if b.writable {
		// Keys mostly arrive in order (deviceIds are time-ordered), so
		// pages may be filled well past bbolt's default of half.
		bk.FillPercent = 0.9
	}
	b.open[i] = bk
	return bk
}

func (b *rtx) dev() *bolt.Bucket     { return b.bucket(iDev) }
func (b *rtx) node() *bolt.Bucket    { return b.bucket(iNode) }
func (b *rtx) status() *bolt.Bucket  { return b.bucket(iStatus) }
func (b *rtx) product() *bolt.Bucket { return b.bucket(iProduct) }
func (b *rtx) gateway() *bolt.Bucket { return b.bucket(iGateway) }
func (b *rtx) member() *bolt.Bucket  { return b.bucket(iMember) }
func (b *rtx) due() *bolt.Bucket     { return b.bucket(iDue) }
func (b *rtx) group() *bolt.Bucket   { return b.bucket(iGroup) }
func (b *rtx) gname() *bolt.Bucket   { return b.bucket(iGName) }
func (b *rtx) owner() *bolt.Bucket   { return b.bucket(iOwner) }

func (s *Registry) view(ctx context.Context, fn func(*rtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closed(s.db.bolt.View(func(tx *bolt.Tx) error {
		b, err := registryBuckets(tx)
		if err != nil {
			return err
		}
		return fn(b)
	}))
}

// update runs fn in a write transaction shared with concurrent writers
// (DB.commit: group commit, one fsync for all). fn may run twice.
func (s *Registry) update(ctx context.Context, fn func(*rtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.commit(func(tx *bolt.Tx) error {
		b, err := registryBuckets(tx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// key builds "a | b | … | last": every part but the last is length-prefixed.
func key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + binary.MaxVarintLen32
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i < len(parts)-1 {
			k = binary.AppendUvarint(k, uint64(len(p)))
		}
		k = append(k, p...)
	}
	return k
}

// prefix builds the key prefix for parts (each length-prefixed).
func prefix(parts ...string) []byte { return key(append(parts, "")...) }

func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano())^(1<<63)) // signed order
	return append(k, id...)
}

func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k)^(1<<63)))
}

// indexEntry is one key of one index bucket.
type indexEntry struct {
	b   *bolt.Bucket
	key string
}

func (b *rtx) indexes(d *registry.Device) []indexEntry {
	out := []indexEntry{
		{b.status(), string(key(string(d.Status), d.ID))},
		{b.product(), string(key(d.Info.ManufacturerID, d.Info.Model, d.ID))},
	}
	if d.GatewayID != "" {
		out = append(out, indexEntry{b.gateway(), string(key(d.GatewayID, d.ID))})
	}
	if d.AppID != "" {
		out = append(out, indexEntry{b.owner(), string(key(d.AppID, d.ID))})
	}
	for _, g := range d.Groups {
		out = append(out, indexEntry{b.member(), string(key(g, d.ID))})
	}
	if !d.Deadline.IsZero() {
		out = append(out, indexEntry{b.due(), string(timeKey(d.Deadline, d.ID))})
	}
	return out
}

// reindex moves d's index entries from old to d (old nil: none yet).
func (b *rtx) reindex(old, d *registry.Device) error {
	var before, after []indexEntry
	if old != nil {
		before = b.indexes(old)
	}
	if d != nil {
		after = b.indexes(d)
	}
	for _, e := range before {
		if !slices.Contains(after, e) {
			if err := e.b.Delete([]byte(e.key)); err != nil {
				return err
			}
		}
	}
	for _, e := range after {
		if !slices.Contains(before, e) {
			if err := e.b.Put([]byte(e.key), nil); err != nil {
				return err
			}
		}
	}
	if old == nil || d == nil || registry.NodeKey(old.NodeID) != registry.NodeKey(d.NodeID) {
		if old != nil {
			if err := b.node().Delete([]byte(registry.NodeKey(old.NodeID))); err != nil {
				return err
			}
		}
		if d != nil {
			if err := b.node().Put([]byte(registry.NodeKey(d.NodeID)), []byte(d.ID)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *rtx) get(id string) (registry.Device, error) {
	v := b.dev().Get([]byte(id))
	if v == nil {
		return registry.Device{}, registry.ErrNotFound
	}
	return decodeDevice(v)
}

func (b *rtx) put(d *registry.Device) error {
	return b.dev().Put([]byte(d.ID), appendDevice(nil, d))
}

// checkRefs checks that d's gateway and groups exist.
func (b *rtx) checkRefs(d *registry.Device) error {
	if d.GatewayID != "" && (d.GatewayID == d.ID || b.dev().Get([]byte(d.GatewayID)) == nil) {
		return fmt.Errorf("store: gatewayId %q: %w", d.GatewayID, registry.ErrGatewayNotFound)
	}
	for _, g := range d.Groups {
		if b.group().Get([]byte(g)) == nil {
			return fmt.Errorf("store: group %q: %w", g, registry.ErrGroupNotFound)
		}
	}
	return nil
}

// Create implements registry.Store.
func (s *Registry) Create(ctx context.Context, d registry.Device) error {
	d.Groups = slices.Compact(slices.Sorted(slices.Values(d.Groups)))
	return s.update(ctx, func(b *rtx) error {
		if b.dev().Get([]byte(d.ID)) != nil {
			return fmt.Errorf("store: deviceId %q: %w", d.ID, registry.ErrExists)
		}
		if b.node().Get([]byte(registry.NodeKey(d.NodeID))) != nil {
			return fmt.Errorf("store: nodeId %q: %w", d.NodeID, registry.ErrNodeIDTaken)
		}
		if err := b.checkRefs(&d); err != nil {
			return err
		}
		if err := b.reindex(nil, &d); err != nil {
			return err
		}
		return b.put(&d)
	})
}

// Get implements registry.Store.
func (s *Registry) Get(ctx context.Context, id string) (registry.Device, error) {
	var d registry.Device
	err := s.view(ctx, func(b *rtx) (err error) {
		d, err = b.get(id)
		return err
	})
	return d, err
}

// IDByNodeKey implements registry.IDLookup.
func (s *Registry) IDByNodeKey(ctx context.Context, nodeKey string) (string, error) {
	var id string
	err := s.view(ctx, func(b *rtx) error {
		v := b.node().Get([]byte(nodeKey))
		if v == nil {
			return registry.ErrNotFound
		}
		id = string(v)
		return nil
	})
	return id, err
}

// GetByNodeKey implements registry.Store.
func (s *Registry) GetByNodeKey(ctx context.Context, nodeKey string) (registry.Device, error) {
	var d registry.Device
	err := s.view(ctx, func(b *rtx) (err error) {
		id := b.node().Get([]byte(nodeKey))
		if id == nil {
			return registry.ErrNotFound
		}
		d, err = b.get(string(id))
		return err
	})
	return d, err
}

// Update implements registry.Store.
func (s *Registry) Update(ctx context.Context, id string, fn func(*registry.Device) error) (registry.Device, error) {
	var out registry.Device
	err := s.update(ctx, func(b *rtx) error {
		old, err := b.get(id)
		if err != nil {
			return err
		}
		d, err := records.UpdateDevice("store", id, old, fn)
		if err != nil {
			return err
		}
		if k := registry.NodeKey(d.NodeID); k != registry.NodeKey(old.NodeID) && b.node().Get([]byte(k)) != nil {
			return fmt.Errorf("store: nodeId %q: %w", d.NodeID, registry.ErrNodeIDTaken)
		}
		if err := b.checkRefs(&d); err != nil {
			return err
		}
		if err := b.reindex(&old, &d); err != nil {
			return err
		}
		out = d
		return b.put(&d)
	})
	if err != nil {
		return registry.Device{}, err
	}
	return out, nil
}

// Delete implements registry.Store.
func (s *Registry) Delete(ctx context.Context, id string, check func(registry.Device) error) (registry.Device, error) {
	var out registry.Device
	err := s.update(ctx, func(b *rtx) error {
		d, err := b.get(id)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(d.Clone()); err != nil {
				return err
			}
		}
		if k, _ := b.gateway().Cursor().Seek(prefix(id)); k != nil && bytes.HasPrefix(k, prefix(id)) {
			return fmt.Errorf("store: deviceId %q: %w", id, registry.ErrHasSubDevices)
		}
		if err := b.reindex(&d, nil); err != nil {
			return err
		}
		out = d
		return b.dev().Delete([]byte(id))
	})
	if err != nil {
		return registry.Device{}, err
	}
	return out, nil
}

// List implements registry.Store. It walks the most selective index that
// applies (group, gateway, product, status; else every device) and
// decodes a device only when another filter needs it or it is on the page.
func (s *Registry) List(ctx context.Context, q registry.Query) ([]registry.Device, int, error) {
	var out []registry.Device
	total := 0
	err := s.view(ctx, func(b *rtx) error {
		out, total = nil, 0
		rest := q // filters the index does not answer
		var bucket *bolt.Bucket
		var pre []byte
		switch {
		case q.GroupID != "":
			bucket, pre, rest.GroupID = b.member(), prefix(q.GroupID), ""
		case q.GatewayID != "":
			bucket, pre, rest.GatewayID = b.gateway(), prefix(q.GatewayID), ""
		case q.ManufacturerID != "" && q.Model != "":
			bucket, pre, rest.ManufacturerID, rest.Model = b.product(), prefix(q.ManufacturerID, q.Model), "", ""
		case q.AppID != "" && b.owner() == nil:
			return nil // a file older than owners, opened read-only: no device has one
		case q.AppID != "":
			bucket, pre, rest.AppID = b.owner(), prefix(q.AppID), ""
		case q.Status != "":
			bucket, pre, rest.Status = b.status(), prefix(string(q.Status)), ""
		default:
			bucket = b.dev()
		}
		needAll := rest.Status != "" || rest.ManufacturerID != "" || rest.Model != "" || rest.DeviceType != "" ||
			rest.GatewayID != "" || rest.GroupID != "" || rest.NodeType != "" || rest.AppID != "" || !rest.From.IsZero() || !rest.To.IsZero()
		var lo, hi int = 0, math.MaxInt
		if q.PageSize > 0 {
			if q.PageNo < 0 || q.PageNo > math.MaxInt/q.PageSize-1 {
				lo = math.MaxInt
			} else {
				lo, hi = q.PageNo*q.PageSize, (q.PageNo+1)*q.PageSize
			}
		}
		c := bucket.Cursor()
		first := func() ([]byte, []byte) {
			if len(pre) == 0 {
				return c.First()
			}
			return c.Seek(pre)
		}
		for k, v := first(); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			id := k[len(pre):]
			if bucket == b.dev() {
				id = k
			}
			inPage := total >= lo && total < hi
			if !needAll && !inPage {
				total++
				continue
			}
			if bucket != b.dev() {
				v = b.dev().Get(id)
				if v == nil {
					return fmt.Errorf("store: registry index %s names missing device %q", pre, id)
				}
			}
			d, err := decodeDevice(v)
			if err != nil {
				return err
			}
			if needAll && !rest.Match(&d) {
				continue
			}
			if total >= lo && total < hi {
				out = append(out, d)
			}
			total++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// Due implements registry.Store.
func (s *Registry) Due(ctx context.Context, t time.Time, limit int) ([]registry.Device, error) {
	var out []registry.Device
	end := t.UnixNano()
	if t.After(time.Unix(0, math.MaxInt64)) {
		end = math.MaxInt64
	}
	err := s.view(ctx, func(b *rtx) error {
		out = nil
		c := b.due().Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 8 || keyTime(k).UnixNano() > end {
				break
			}
			d, err := b.get(string(k[8:]))
			if err != nil {
				return fmt.Errorf("store: registry due index names device %q: %w", k[8:], err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// CreateGroup implements registry.Store.
func (s *Registry) CreateGroup(ctx context.Context, g registry.Group) error {
	return s.update(ctx, func(b *rtx) error {
		if b.group().Get([]byte(g.ID)) != nil {
			return fmt.Errorf("store: group id %q: %w", g.ID, registry.ErrGroupExists)
		}
		if b.gname().Get([]byte(g.Name)) != nil {
			return fmt.Errorf("store: group name %q: %w", g.Name, registry.ErrGroupExists)
		}
		if err := b.gname().Put([]byte(g.Name), []byte(g.ID)); err != nil {
			return err
		}
		return b.group().Put([]byte(g.ID), appendGroup(nil, &g))
	})
}

// Group implements registry.Store.
func (s *Registry) Group(ctx context.Context, id string) (registry.Group, error) {
	var g registry.Group
	err := s.view(ctx, func(b *rtx) (err error) {
		v := b.group().Get([]byte(id))
		if v == nil {
			return registry.ErrGroupNotFound
		}
		g, err = decodeGroup(v)
		return err
	})
	return g, err
}

// Groups implements registry.Store.
func (s *Registry) Groups(ctx context.Context) ([]registry.Group, error) {
	var out []registry.Group
	err := s.view(ctx, func(b *rtx) error {
		out = nil
		return b.group().ForEach(func(_, v []byte) error {
			g, err := decodeGroup(v)
			out = append(out, g)
			return err
		})
	})
	return out, err
}

// DeleteGroup implements registry.Store.
func (s *Registry) DeleteGroup(ctx context.Context, id string) error {
	return s.update(ctx, func(b *rtx) error {
		v := b.group().Get([]byte(id))
		if v == nil {
			return registry.ErrGroupNotFound
		}
		g, err := decodeGroup(v)
		if err != nil {
			return err
		}
		pre := prefix(id)
		var members [][]byte
		c := b.member().Cursor()
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			members = append(members, slices.Clone(k[len(pre):]))
		}
		for _, m := range members {
			d, err := b.get(string(m))
			if err != nil {
				return err
			}
			old := d.Clone()
			d.Groups = slices.DeleteFunc(d.Groups, func(g string) bool { return g == id })
			if err := b.reindex(&old, &d); err != nil {
				return err
			}
			if err := b.put(&d); err != nil {
				return err
			}
		}
		if err := b.gname().Delete([]byte(g.Name)); err != nil {
			return err
		}
		return b.group().Delete([]byte(id))
	})
}
