package command

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func popAll(s *sched) []string {
	var out []string
	for {
		id, ok := s.pop()
		if !ok {
			return out
		}
		out = append(out, id)
		s.done(id)
	}
}

// TestSchedWokeFirst: a device that just woke is served before devices
// marked by timers or answers (its PSM active time is short, CMD-3), each
// device once per mark, and one other device after every wokeBurst woken
// ones so that others are not held back for ever.
func TestSchedWokeFirst(t *testing.T) {
	var s sched
	s.init()
	s.mark("a", false)
	s.mark("b", false)
	s.mark("w", true)
	s.mark("b", true) // queued as other, then woke: served once, early
	s.mark("a", false)
	require.Equal(t, []string{"w", "b", "a"}, popAll(&s))

	s.mark("o1", false)
	s.mark("o2", false)
	var want []string
	for i := range wokeBurst + 2 {
		s.mark(fmt.Sprintf("w%d", i), true)
		want = append(want, fmt.Sprintf("w%d", i))
	}
	want = append(want[:wokeBurst:wokeBurst], append([]string{"o1"}, append(want[wokeBurst:], "o2")...)...)
	require.Equal(t, want, popAll(&s), "one other device after every %d woken ones", wokeBurst)

	// A device marked while busy is served again afterwards, among the
	// woken ones when the new mark was a wake-up.
	s.mark("d", false)
	id, ok := s.pop()
	require.True(t, ok)
	require.Equal(t, "d", id)
	s.mark("d", false)
	s.mark("d", true)
	s.mark("z", false)
	_, ok = s.pop() // z
	require.True(t, ok)
	s.done("z")
	s.mark("z", false)
	s.done("d")
	require.Equal(t, []string{"d", "z"}, popAll(&s))
	require.Empty(t, s.state, "nothing left queued or busy")
}
