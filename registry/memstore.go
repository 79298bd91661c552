package registry

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemStore is the in-memory Store: for tests, examples and platforms that
// keep devices elsewhere. It loses everything when the process ends.
// List is O(matches·log matches) per call; Due is O(log n) per due device.
type MemStore struct {
	mu         sync.RWMutex
	devs       map[string]*Device
	nodes      map[string]string // NodeKey → ID
	byStatus   map[Status]set
	byProduct  map[product]set
	byGateway  map[string]set
	byGroup    map[string]set
	byApp      map[string]set
	groups     map[string]Group
	groupNames map[string]string // name → ID
	due        dueHeap
	deadlines  int // devices with a non-zero Deadline
}

type set = map[string]struct{}

type product struct{ manufacturerID, model string }

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{
		devs:       make(map[string]*Device),
		nodes:      make(map[string]string),
		byStatus:   make(map[Status]set),
		byProduct:  make(map[product]set),
		byGateway:  make(map[string]set),
		byGroup:    make(map[string]set),
		byApp:      make(map[string]set),
		groups:     make(map[string]Group),
		groupNames: make(map[string]string),
	}
}

func add[K comparable](m map[K]set, k K, id string) {
	s := m[k]
	if s == nil {
		s = make(set)
		m[k] = s
	}
	s[id] = struct{}{}
}

func del[K comparable](m map[K]set, k K, id string) {
	if s := m[k]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

func (m *MemStore) index(d *Device) {
	m.nodes[NodeKey(d.NodeID)] = d.ID
	add(m.byStatus, d.Status, d.ID)
	add(m.byProduct, product{d.Info.ManufacturerID, d.Info.Model}, d.ID)
	add(m.byApp, d.AppID, d.ID)
	if d.GatewayID != "" {
		add(m.byGateway, d.GatewayID, d.ID)
	}
	for _, g := range d.Groups {
		add(m.byGroup, g, d.ID)
	}
	if !d.Deadline.IsZero() {
		m.deadlines++
	}
}

func (m *MemStore) unindex(d *Device) {
	delete(m.nodes, NodeKey(d.NodeID))
	del(m.byStatus, d.Status, d.ID)
	del(m.byProduct, product{d.Info.ManufacturerID, d.Info.Model}, d.ID)
	del(m.byApp, d.AppID, d.ID)
	if d.GatewayID != "" {
		del(m.byGateway, d.GatewayID, d.ID)
	}
	for _, g := range d.Groups {
		del(m.byGroup, g, d.ID)
	}
	if !d.Deadline.IsZero() {
		m.deadlines-- // its heap entry goes stale; Due drops it
	}
}

// checkRefs checks what a device refers to: its gateway and groups.
func (m *MemStore) checkRefs(d *Device) error {
	if d.GatewayID != "" {
		if _, ok := m.devs[d.GatewayID]; !ok {
			return fmt.Errorf("gatewayId %q: %w", d.GatewayID, ErrGatewayNotFound)
		}
	}
	for _, g := range d.Groups {
		if _, ok := m.groups[g]; !ok {
			return fmt.Errorf("group %q: %w", g, ErrGroupNotFound)
		}
	}
	return nil
}

// Create implements Store.
func (m *MemStore) Create(ctx context.Context, d Device) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := d.Clone() // outside the lock
	c.Groups = slices.Compact(slices.Sorted(slices.Values(c.Groups)))
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.devs[c.ID]; ok {
		return fmt.Errorf("deviceId %q: %w", c.ID, ErrExists)
	}
	if _, ok := m.nodes[NodeKey(c.NodeID)]; ok {
		return fmt.Errorf("nodeId %q: %w", c.NodeID, ErrNodeIDTaken)
	}
	if err := m.checkRefs(&c); err != nil {
		return err
	}
	m.devs[c.ID] = &c
	m.index(&c)
	if !c.Deadline.IsZero() {
		heap.Push(&m.due, dueEntry{c.Deadline, c.ID})
	}
	return nil
}

// Get implements Store.
func (m *MemStore) Get(ctx context.Context, id string) (Device, error) {
	if err := ctx.Err(); err != nil {
		return Device{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	d, ok := m.devs[id]
	if !ok {
		return Device{}, ErrNotFound
	}
	return d.Clone(), nil
}

// IDByNodeKey implements IDLookup.
func (m *MemStore) IDByNodeKey(ctx context.Context, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.nodes[key]
	if !ok {
		return "", ErrNotFound
	}
	return id, nil
}

// GetByNodeKey implements Store.
func (m *MemStore) GetByNodeKey(ctx context.Context, key string) (Device, error) {
	if err := ctx.Err(); err != nil {
		return Device{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.nodes[key]
	if !ok {
		return Device{}, ErrNotFound
	}
	return m.devs[id].Clone(), nil
}

// Update implements Store.
func (m *MemStore) Update(ctx context.Context, id string, fn func(*Device) error) (Device, error) {
	if err := ctx.Err(); err != nil {
		return Device{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.devs[id]
	if !ok {
		return Device{}, ErrNotFound
	}
	d := old.Clone()
	if err := fn(&d); err != nil {
		return Device{}, err
	}
	if d.ID != id {
		return Device{}, fmt.Errorf("registry: Update changed deviceId %q to %q: %w", id, d.ID, ErrInvalid)
	}
	slices.Sort(d.Groups)
	d.Groups = slices.Compact(d.Groups)
	if k := NodeKey(d.NodeID); k != NodeKey(old.NodeID) {
		if _, taken := m.nodes[k]; taken {
			return Device{}, fmt.Errorf("nodeId %q: %w", d.NodeID, ErrNodeIDTaken)
		}
	}
	if err := m.checkRefs(&d); err != nil {
		return Device{}, err
	}
	if d.GatewayID == id {
		return Device{}, fmt.Errorf("gatewayId %q is the device itself: %w", id, ErrGatewayNotFound)
	}
	m.unindex(old)
	m.devs[id] = &d
	m.index(&d)
	if !d.Deadline.IsZero() && !d.Deadline.Equal(old.Deadline) {
		heap.Push(&m.due, dueEntry{d.Deadline, d.ID})
	}
	return d.Clone(), nil
}

// Delete implements Store.
func (m *MemStore) Delete(ctx context.Context, id string, check func(Device) error) (Device, error) {
	if err := ctx.Err(); err != nil {
		return Device{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devs[id]
	if !ok {
		return Device{}, ErrNotFound
	}
	if check != nil {
		if err := check(d.Clone()); err != nil {
			return Device{}, err
		}
	}
	if len(m.byGateway[id]) > 0 {
		return Device{}, fmt.Errorf("deviceId %q: %w", id, ErrHasSubDevices)
	}
	m.unindex(d)
	delete(m.devs, id)
	return *d, nil
}

// List implements Store.
func (m *MemStore) List(ctx context.Context, q Query) ([]Device, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	// Start from the smallest index set that applies.
	var cand set
	consider := func(s set, applies bool) {
		if applies && (cand == nil || len(s) < len(cand)) {
			if s == nil {
				s = set{}
			}
			cand = s
		}
	}
	consider(m.byStatus[q.Status], q.Status != "")
	consider(m.byGateway[q.GatewayID], q.GatewayID != "")
	consider(m.byGroup[q.GroupID], q.GroupID != "")
	consider(m.byApp[q.AppID], q.AppID != "")
	if q.ManufacturerID != "" && q.Model != "" {
		consider(m.byProduct[product{q.ManufacturerID, q.Model}], true)
	}
	var ids []string
	visit := func(id string) {
		if q.Match(m.devs[id]) {
			ids = append(ids, id)
		}
	}
	if cand != nil {
		for id := range cand {
			visit(id)
		}
	} else {
		for id := range m.devs {
			visit(id)
		}
	}
	slices.Sort(ids)
	lo, hi := q.Window(len(ids))
	out := make([]Device, 0, hi-lo)
	for _, id := range ids[lo:hi] {
		out = append(out, m.devs[id].Clone())
	}
	return out, len(ids), nil
}

// Due implements Store.
func (m *MemStore) Due(ctx context.Context, t time.Time, limit int) ([]Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.due) > 2*m.deadlines+1024 {
		m.rebuildDue()
	}
	var out []Device
	var keep []dueEntry
	seen := make(map[string]bool)
	for len(m.due) > 0 && len(out) < limit && !m.due[0].at.After(t) {
		e := heap.Pop(&m.due).(dueEntry)
		d, ok := m.devs[e.id]
		if !ok || !d.Deadline.Equal(e.at) || seen[e.id] {
			continue // stale
		}
		seen[e.id] = true
		keep = append(keep, e)
		out = append(out, d.Clone())
	}
	for _, e := range keep {
		heap.Push(&m.due, e)
	}
	slices.SortFunc(out, func(a, b Device) int {
		return cmp.Or(a.Deadline.Compare(b.Deadline), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (m *MemStore) rebuildDue() {
	m.due = m.due[:0]
	for id, d := range m.devs {
		if !d.Deadline.IsZero() {
			m.due = append(m.due, dueEntry{d.Deadline, id})
		}
	}
	heap.Init(&m.due)
}

// CreateGroup implements Store.
func (m *MemStore) CreateGroup(ctx context.Context, g Group) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[g.ID]; ok {
		return fmt.Errorf("group id %q: %w", g.ID, ErrGroupExists)
	}
	if _, ok := m.groupNames[g.Name]; ok {
		return fmt.Errorf("group name %q: %w", g.Name, ErrGroupExists)
	}
	m.groups[g.ID] = g
	m.groupNames[g.Name] = g.ID
	return nil
}

// Group implements Store.
func (m *MemStore) Group(ctx context.Context, id string) (Group, error) {
	if err := ctx.Err(); err != nil {
		return Group{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	g, ok := m.groups[id]
	if !ok {
		return Group{}, ErrGroupNotFound
	}
	return g, nil
}

// Groups implements Store.
func (m *MemStore) Groups(ctx context.Context) ([]Group, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Group, 0, len(m.groups))
	for _, g := range m.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Group) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteGroup implements Store.
func (m *MemStore) DeleteGroup(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return ErrGroupNotFound
	}
	for member := range m.byGroup[id] {
		d := m.devs[member]
		if i, ok := slices.BinarySearch(d.Groups, id); ok {
			d.Groups = slices.Delete(slices.Clone(d.Groups), i, i+1)
		}
	}
	delete(m.byGroup, id)
	delete(m.groups, id)
	delete(m.groupNames, g.Name)
	return nil
}

type dueEntry struct {
	at time.Time
	id string
}

// dueHeap orders deadlines for Due (container/heap); entries go stale
// when a device's deadline moves and are dropped lazily.
type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
