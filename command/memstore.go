package command

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"
)

// MemStore is a Store in memory: fast, and lost when the process ends. It
// serves tests, benchmarks and platforms that do not need CMD-9.
//
// It keeps each command as a compact record (memRec): the times it returns
// are the instants written, in the Local location and without a monotonic
// reading, as a store on disk would return them.
type MemStore struct {
	mu    sync.Mutex
	byID  map[string]*memEntry
	devs  map[string]*memDevice
	due   dueHeap
	modes map[string]Mode
	tasks map[string]*Task
	ups   map[string]memTime // last uplinks (Uplinks)
}

type memEntry struct {
	r   memRec
	due memTime // Due() when indexed
	idx int     // position in the due heap, -1 when not in it
}

type memDevice struct {
	all     []*memEntry // every command, Seq order
	open    []openRef   // open commands, Seq order
	lastSeq uint64
}

// openRef is an open command in its device's queue, with the Seq and due
// time copied next to the pointer so that Front and the binary searches
// do not read every entry (each is a cache miss in a large store).
type openRef struct {
	seq uint64
	due memTime // Due(); noDue when zero
	e   *memEntry
}

func openBySeq(r openRef, seq uint64) int { return cmp.Compare(r.seq, seq) }

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{
		byID:  map[string]*memEntry{},
		devs:  map[string]*memDevice{},
		modes: map[string]Mode{},
		tasks: map[string]*Task{},
		ups:   map[string]memTime{},
	}
}

var (
	_ Store   = (*MemStore)(nil)
	_ Uplinks = (*MemStore)(nil)
)

func bySeq(e *memEntry, seq uint64) int { return cmp.Compare(e.r.seq, seq) }

// Write implements Store.
func (s *MemStore) Write(ctx context.Context, w Write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range w.Commands {
		if err := CheckRecord(&w.Commands[i]); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range w.Counts {
		if err := CheckCount(n); err != nil {
			return err
		}
		if s.tasks[n.TaskID] == nil {
			return &NotFoundError{What: "task", ID: n.TaskID}
		}
	}
	for _, n := range w.Counts {
		s.tasks[n.TaskID].Count(n.Status)
	}
	for i := range w.Commands {
		s.put(w.Commands[i].Clone())
	}
	return nil
}

func (s *MemStore) put(c Command) {
	d := s.devs[c.DeviceID]
	if d == nil {
		d = &memDevice{}
		s.devs[c.DeviceID] = d
	}
	i, found := slices.BinarySearchFunc(d.all, c.Seq, bySeq)
	var e *memEntry
	if found {
		e = d.all[i]
		if e.r.id != c.ID {
			delete(s.byID, e.r.id)
		}
		e.r = toMemRec(&c)
	} else {
		e = &memEntry{r: toMemRec(&c), idx: -1}
		d.all = slices.Insert(d.all, i, e)
	}
	s.byID[c.ID] = e
	d.lastSeq = max(d.lastSeq, c.Seq)

	due := time.Time{}
	if c.Status.Open() {
		due = c.Due()
	}
	j, inOpen := slices.BinarySearchFunc(d.open, c.Seq, openBySeq)
	switch {
	case c.Status.Open():
		r := openRef{seq: c.Seq, due: noDue, e: e}
		if !due.IsZero() {
			r.due = toMemTime(due)
		}
		if inOpen {
			d.open[j] = r
		} else {
			d.open = slices.Insert(d.open, j, r)
		}
	case inOpen:
		d.open = slices.Delete(d.open, j, j+1)
	}
	switch {
	case due.IsZero() && e.idx >= 0:
		heap.Remove(&s.due, e.idx)
	case !due.IsZero() && e.idx >= 0:
		e.due = toMemTime(due)
		heap.Fix(&s.due, e.idx)
	case !due.IsZero():
		e.due = toMemTime(due)
		heap.Push(&s.due, e)
	}
}

// Get implements Store.
func (s *MemStore) Get(ctx context.Context, id string) (Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil {
		return Command{}, &NotFoundError{What: "command", ID: id}
	}
	return e.r.command(), nil
}

// LastSeq implements Store.
func (s *MemStore) LastSeq(ctx context.Context, deviceID string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devs[deviceID]; d != nil {
		return d.lastSeq, nil
	}
	return 0, nil
}

// Queue implements Store.
func (s *MemStore) Queue(ctx context.Context, deviceID string) ([]Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devs[deviceID]
	if d == nil {
		return nil, nil
	}
	out := make([]Command, len(d.open))
	for i, r := range d.open {
		out[i] = r.e.r.command()
	}
	return out, nil
}

// Front implements Store. It copies only the commands it returns.
func (s *MemStore) Front(ctx context.Context, deviceID string, n int, t time.Time) ([]Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devs[deviceID]
	if d == nil {
		return nil, nil
	}
	n = min(max(n, 0), len(d.open))
	due := func(r openRef) bool { return false }
	if !t.IsZero() {
		tm := toMemTime(t)
		due = func(r openRef) bool { return r.due.compare(tm) <= 0 }
	}
	extra := 0
	for _, r := range d.open[n:] {
		if due(r) {
			extra++
		}
	}
	if n+extra == 0 {
		return nil, nil
	}
	out := make([]Command, n, n+extra)
	for i, r := range d.open[:n] {
		out[i] = r.e.r.command()
	}
	for _, r := range d.open[n:] {
		if due(r) {
			out = append(out, r.e.r.command())
		}
	}
	return out, nil
}

// List implements Store.
func (s *MemStore) List(ctx context.Context, deviceID string, after uint64, limit int) ([]Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devs[deviceID]
	if d == nil || limit <= 0 {
		return nil, nil
	}
	i, found := slices.BinarySearchFunc(d.all, after, bySeq)
	if found {
		i++
	}
	var out []Command
	for ; i < len(d.all) && len(out) < limit; i++ {
		out = append(out, d.all[i].r.command())
	}
	return out, nil
}

// Due implements Store. It walks the heap best-first, so it costs
// O(limit·log limit) whatever the number of commands.
func (s *MemStore) Due(ctx context.Context, t time.Time, limit int) ([]Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Command
	if len(s.due) == 0 || limit <= 0 {
		return nil, nil
	}
	tm := toMemTime(t)
	cand := candHeap{h: s.due}
	heap.Push(&cand, 0)
	for len(cand.pos) > 0 && len(out) < limit {
		i := heap.Pop(&cand).(int)
		e := s.due[i]
		if e.due.compare(tm) > 0 {
			break
		}
		out = append(out, e.r.command())
		for _, ch := range []int{2*i + 1, 2*i + 2} {
			if ch < len(s.due) {
				heap.Push(&cand, ch)
			}
		}
	}
	return out, nil
}

// NextDue implements Store.
func (s *MemStore) NextDue(ctx context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.due) == 0 {
		return time.Time{}, nil
	}
	return s.due[0].due.time(), nil
}

// PutMode implements Store.
func (s *MemStore) PutMode(ctx context.Context, deviceID string, m Mode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.modes[deviceID] = m
	return nil
}

// Mode implements Store.
func (s *MemStore) Mode(ctx context.Context, deviceID string) (Mode, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.modes[deviceID]
	return m, ok, nil
}

// PutUplinks implements Uplinks.
func (s *MemStore) PutUplinks(ctx context.Context, last map[string]time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range last {
		s.ups[id] = toMemTime(t)
	}
	return nil
}

// Uplink implements Uplinks.
func (s *MemStore) Uplink(ctx context.Context, deviceID string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.ups[deviceID]; ok {
		return t.time(), nil
	}
	return time.Time{}, nil
}

// PutTask implements Store.
func (s *MemStore) PutTask(ctx context.Context, t Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[t.ID] = &t
	return nil
}

// Task implements Store.
func (s *MemStore) Task(ctx context.Context, id string) (Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return Task{}, &NotFoundError{What: "task", ID: id}
	}
	return *t, nil
}

// dueHeap is a min-heap of entries by due time, then DeviceID and Seq.
type dueHeap []*memEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h.less(h[i], h[j]) }
func (dueHeap) less(a, b *memEntry) bool {
	if c := a.due.compare(b.due); c != 0 {
		return c < 0
	}
	if a.r.deviceID != b.r.deviceID {
		return a.r.deviceID < b.r.deviceID
	}
	return a.r.seq < b.r.seq
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *dueHeap) Push(x any) {
	e := x.(*memEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

// candHeap orders positions of a dueHeap by their entries, for Due's
// best-first walk; it leaves the dueHeap untouched.
type candHeap struct {
	h   dueHeap
	pos []int
}

func (c candHeap) Len() int           { return len(c.pos) }
func (c candHeap) Less(i, j int) bool { return c.h.less(c.h[c.pos[i]], c.h[c.pos[j]]) }
func (c candHeap) Swap(i, j int)      { c.pos[i], c.pos[j] = c.pos[j], c.pos[i] }
func (c *candHeap) Push(x any)        { c.pos = append(c.pos, x.(int)) }
func (c *candHeap) Pop() any {
	v := c.pos[len(c.pos)-1]
	c.pos = c.pos[:len(c.pos)-1]
	return v
}

var _ Pruner = (*MemStore)(nil)

// Prune implements Pruner. It walks every command, so it costs O(total).
func (s *MemStore) Prune(ctx context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	tm := toMemTime(before)
	for _, d := range s.devs {
		if n >= limit {
			break
		}
		d.all = slices.DeleteFunc(d.all, func(e *memEntry) bool {
			if n < limit && e.r.status.Final() && e.r.time(tExecute).compare(tm) < 0 {
				delete(s.byID, e.r.id)
				n++
				return true
			}
			return false
		})
	}
	return n, ctx.Err()
}
