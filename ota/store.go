package ota

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
)

// Store keeps packages, tasks and sub-tasks durably. Implementations must
// be safe for concurrent use; the conformance suite is ota/otatest.
// Slices in values passed in or returned must not be shared with the store.
type Store interface {
	// PutPackage creates or replaces a package.
	PutPackage(ctx context.Context, p Package) error
	// Package returns a package or ErrNotFound.
	Package(ctx context.Context, id string) (Package, error)
	// Packages returns every package ordered by id.
	Packages(ctx context.Context) ([]Package, error)
	// DeletePackage removes a package; ErrNotFound when absent.
	DeletePackage(ctx context.Context, id string) error
	// PutTask creates or replaces a task and, in the same transaction,
	// the given sub-tasks (which must belong to it).
	PutTask(ctx context.Context, t Task, subs []SubTask) error
	// Task returns a task or ErrNotFound.
	Task(ctx context.Context, id string) (Task, error)
	// Tasks returns every task ordered by id.
	Tasks(ctx context.Context) ([]Task, error)
	// PutSubTask creates or replaces one sub-task of an existing task
	// (ErrNotFound when the task is absent). Many goroutines call it at
	// once.
	PutSubTask(ctx context.Context, s SubTask) error
	// SubTask returns one sub-task or ErrNotFound.
	SubTask(ctx context.Context, taskID, deviceID string) (SubTask, error)
	// SubTasks returns the sub-tasks of a task ordered by device id;
	// ErrNotFound when the task is absent.
	SubTasks(ctx context.Context, taskID string) ([]SubTask, error)
}

// MemStore is the in-memory Store.
type MemStore struct {
	mu       sync.RWMutex
	packages map[string]Package
	tasks    map[string]Task
	subs     map[string]map[string]SubTask
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore {
	return &MemStore{packages: map[string]Package{}, tasks: map[string]Task{}, subs: map[string]map[string]SubTask{}}
}

var _ Store = (*MemStore)(nil)

func clonePackage(p Package) Package { p.SourceVersions = slices.Clone(p.SourceVersions); return p }
func cloneTask(t Task) Task          { t.Devices = slices.Clone(t.Devices); return t }

// PutPackage implements Store.
func (m *MemStore) PutPackage(_ context.Context, p Package) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.packages[p.ID] = clonePackage(p)
	return nil
}

// Package implements Store.
func (m *MemStore) Package(_ context.Context, id string) (Package, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.packages[id]
	if !ok {
		return Package{}, fmt.Errorf("%w: package %q", ErrNotFound, id)
	}
	return clonePackage(p), nil
}

// Packages implements Store.
func (m *MemStore) Packages(context.Context) ([]Package, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Package, 0, len(m.packages))
	for _, p := range m.packages {
		out = append(out, clonePackage(p))
	}
	slices.SortFunc(out, func(a, b Package) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeletePackage implements Store.
func (m *MemStore) DeletePackage(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.packages[id]; !ok {
		return fmt.Errorf("%w: package %q", ErrNotFound, id)
	}
	delete(m.packages, id)
	return nil
}

// PutTask implements Store.
func (m *MemStore) PutTask(_ context.Context, t Task, subs []SubTask) error {
	for _, s := range subs {
		if s.TaskID != t.ID {
			return fmt.Errorf("%w: sub-task %s does not belong to task %q", ErrInvalid, s.ID(), t.ID)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tasks[t.ID] = cloneTask(t)
	if m.subs[t.ID] == nil {
		m.subs[t.ID] = map[string]SubTask{}
	}
	for _, s := range subs {
		m.subs[t.ID][s.DeviceID] = s
	}
	return nil
}

// Task implements Store.
func (m *MemStore) Task(_ context.Context, id string) (Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.tasks[id]
	if !ok {
		return Task{}, fmt.Errorf("%w: task %q", ErrNotFound, id)
	}
	return cloneTask(t), nil
}

// Tasks implements Store.
func (m *MemStore) Tasks(context.Context) ([]Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Task, 0, len(m.tasks))
	for _, t := range m.tasks {
		out = append(out, cloneTask(t))
	}
	slices.SortFunc(out, func(a, b Task) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// PutSubTask implements Store.
func (m *MemStore) PutSubTask(_ context.Context, s SubTask) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tasks[s.TaskID]; !ok {
		return fmt.Errorf("%w: task %q of sub-task %s", ErrNotFound, s.TaskID, s.ID())
	}
	m.subs[s.TaskID][s.DeviceID] = s
	return nil
}

// SubTask implements Store.
func (m *MemStore) SubTask(_ context.Context, taskID, deviceID string) (SubTask, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.subs[taskID][deviceID]
	if !ok {
		return SubTask{}, fmt.Errorf("%w: sub-task %s/%s", ErrNotFound, taskID, deviceID)
	}
	return s, nil
}

// SubTasks implements Store.
func (m *MemStore) SubTasks(_ context.Context, taskID string) ([]SubTask, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.tasks[taskID]; !ok {
		return nil, fmt.Errorf("%w: task %q", ErrNotFound, taskID)
	}
	out := make([]SubTask, 0, len(m.subs[taskID]))
	for _, s := range m.subs[taskID] {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b SubTask) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
	return out, nil
}
