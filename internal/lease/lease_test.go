package lease

import (
	"sync"
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	var s Set
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	if s.Holds("a", t0, 0) {
		t.Fatal("an empty set holds a lease")
	}
	s.Add([]string{"a", "b"}, t0, time.Minute)
	for _, c := range []struct {
		at     time.Duration
		margin time.Duration
		want   bool
	}{{0, 30 * time.Second, true}, {29 * time.Second, 30 * time.Second, true}, {30 * time.Second, 30 * time.Second, false},
		{59 * time.Second, 0, true}, {time.Minute, 0, false}} {
		if got := s.Holds("a", t0.Add(c.at), c.margin); got != c.want {
			t.Errorf("Holds at +%v with margin %v = %v, want %v", c.at, c.margin, got, c.want)
		}
	}
	if s.Holds("c", t0, 0) {
		t.Error("a lease never added is held")
	}
	s.Add([]string{"b"}, t0.Add(time.Minute), time.Minute) // renewed
	s.Drop(t0.Add(time.Minute))
	if s.Holds("a", t0, 0) {
		t.Error("a lease that ended is kept after Drop")
	}
	if !s.Holds("b", t0.Add(time.Minute), 0) {
		t.Error("a renewed lease was dropped")
	}
}

func TestSetConcurrent(t *testing.T) {
	var s Set
	var wg sync.WaitGroup
	now := time.Now()
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('a' + i))
			s.Add([]string{id}, now, time.Minute)
			s.Holds(id, now, 0)
			s.Drop(now)
		}()
	}
	wg.Wait()
	for i := range 8 {
		if !s.Holds(string(rune('a'+i)), now, 0) {
			t.Errorf("lease %d lost", i)
		}
	}
}
