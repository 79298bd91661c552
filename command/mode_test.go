package command

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var base = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

const s = time.Second

// TestDeadline: CMD-3's default timeouts and the device's own timers.
func TestDeadline(t *testing.T) {
	tests := []struct {
		name string
		m    Mode
		want time.Duration
	}{
		{"PSM default 300 s", Mode{Kind: PSM}, 300 * s},
		{"DRX default 300 s", Mode{Kind: DRX}, 300 * s},
		{"eDRX default cycle 81.92 s: 2×cycle+120 s", Mode{Kind: EDRX}, 2*81920*time.Millisecond + 120*s},
		{"eDRX device cycle 20.48 s", Mode{Kind: EDRX, Cycle: 20480 * time.Millisecond}, 40960*time.Millisecond + 120*s},
		{"eDRX device cycle 10485.76 s", Mode{Kind: EDRX, Cycle: 10485760 * time.Millisecond}, 2*10485760*time.Millisecond + 120*s},
		{"explicit timeout wins", Mode{Kind: EDRX, Cycle: time.Hour, Timeout: 42 * s}, 42 * s},
		{"PSM explicit", Mode{Kind: PSM, Timeout: 600 * s}, 600 * s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, base.Add(tc.want), tc.m.Deadline(base))
			require.Equal(t, tc.want, tc.m.TimeoutAfterSend())
		})
	}
}

// TestWindow: windows computed from the device's own PSM active timer and
// eDRX cycle and paging window, anchored on its last uplink (CMD-3, CMD-10).
func TestWindow(t *testing.T) {
	psm := Mode{Kind: PSM, ActiveTime: 10 * s}
	edrx := Mode{Kind: EDRX, ActiveTime: 5 * s, Cycle: 100 * s, PagingWindow: 10 * s}
	lu := base // last uplink
	tests := []struct {
		name       string
		m          Mode
		now, up    time.Time
		start, end time.Time
		ok, reach  bool
		next       time.Time
	}{
		{"PSM no uplink yet: wait", psm, at(0), time.Time{}, time.Time{}, time.Time{}, false, false, time.Time{}},
		{"PSM just after uplink", psm, at(1 * s), lu, lu, at(10 * s), true, true, at(1 * s)},
		{"PSM last instant of T3324", psm, at(10*s - 1), lu, lu, at(10 * s), true, true, at(10*s - 1)},
		{"PSM T3324 over: asleep until next uplink", psm, at(10 * s), lu, time.Time{}, time.Time{}, false, false, time.Time{}},
		{"PSM default T3324 20 s", Mode{}, at(19 * s), lu, lu, at(20 * s), true, true, at(19 * s)},
		{"DRX always", Mode{Kind: DRX}, at(5000 * s), time.Time{}, at(5000 * s), time.Time{}, true, true, at(5000 * s)},
		{"eDRX no uplink known: try now", edrx, at(0), time.Time{}, at(0), time.Time{}, true, true, at(0)},
		{"eDRX awake after uplink", edrx, at(2 * s), lu, lu, at(5 * s), true, true, at(2 * s)},
		{"eDRX after active time: first paging window", edrx, at(6 * s), lu, at(100 * s), at(110 * s), true, false, at(100 * s)},
		{"eDRX inside window 1", edrx, at(105 * s), lu, at(100 * s), at(110 * s), true, true, at(105 * s)},
		{"eDRX end of window 1 is outside", edrx, at(110 * s), lu, at(200 * s), at(210 * s), true, false, at(200 * s)},
		{"eDRX window 7", edrx, at(709 * s), lu, at(700 * s), at(710 * s), true, true, at(709 * s)},
		{"eDRX between 7 and 8", edrx, at(750 * s), lu, at(800 * s), at(810 * s), true, false, at(800 * s)},
		{"eDRX default timers", Mode{Kind: EDRX}, at(30 * s), lu, at(81920 * time.Millisecond), at(92160 * time.Millisecond), true, false, at(81920 * time.Millisecond)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start, end, ok := tc.m.Window(tc.now, tc.up)
			require.Equal(t, tc.ok, ok, "Window ok")
			require.Equal(t, tc.start, start, "Window start")
			require.Equal(t, tc.end, end, "Window end")
			require.Equal(t, tc.reach, tc.m.Reachable(tc.now, tc.up), "Reachable")
			require.Equal(t, tc.next, tc.m.NextTry(tc.now, tc.up), "NextTry")
		})
	}
}

func TestRetransmitGap(t *testing.T) {
	for n, want := range map[int]time.Duration{-1: 10 * s, 0: 10 * s, 1: 20 * s, 2: 40 * s, 3: 80 * s} {
		require.Equal(t, want, RetransmitGap(n), "RetransmitGap(%d)", n)
	}
}

func TestModeValidate(t *testing.T) {
	require.NoError(t, Mode{}.Validate())
	require.NoError(t, Mode{Kind: EDRX, Cycle: 20480 * time.Millisecond, PagingWindow: 2560 * time.Millisecond}.Validate())
	for name, m := range map[string]Mode{
		"mode":         {Kind: 7},
		"activeTime":   {ActiveTime: -s},
		"cycle":        {Kind: EDRX, Cycle: -s},
		"timeout":      {Timeout: -s},
		"pagingWindow": {Kind: EDRX, Cycle: 10 * s, PagingWindow: 20 * s},
	} {
		err := m.Validate()
		var fe *FieldError
		require.ErrorAs(t, err, &fe, "Validate(%+v)", m)
		require.ErrorIs(t, err, ErrBadMode)
		require.Equal(t, name, fe.Field)
	}
	var k Kind
	require.NoError(t, k.UnmarshalText([]byte("eDRX")))
	require.Equal(t, EDRX, k)
	require.ErrorIs(t, k.UnmarshalText([]byte("psm")), ErrBadMode)
}
