package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/examples/device/sim"
)

// TestPowerReachable checks the reachability rules of the three modes as a
// table of instants (pure timing, no clock).
func TestPowerReachable(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	psm := sim.Power{Mode: sim.PSM, ActiveTime: 20 * time.Second}
	edrx := sim.Power{Mode: sim.EDRX, ActiveTime: 5 * time.Second, Cycle: 20 * time.Second, PagingWindow: 2 * time.Second}
	for _, tc := range []struct {
		name       string
		p          sim.Power
		last, now  time.Time
		reach      bool
		nextChange time.Time
	}{
		{"drx always", sim.Power{Mode: sim.DRX}, t0, at(48 * time.Hour), true, time.Time{}},
		{"psm at the uplink", psm, t0, t0, true, at(20 * time.Second)},
		{"psm inside active time", psm, t0, at(19 * time.Second), true, at(20 * time.Second)},
		{"psm asleep at the end of active time", psm, t0, at(20 * time.Second), false, time.Time{}},
		{"psm asleep two days later", psm, t0, at(48 * time.Hour), false, time.Time{}},
		{"psm default active time 30s", sim.Power{}, t0, at(29 * time.Second), true, at(30 * time.Second)},
		{"psm never reported", psm, time.Time{}, t0, false, time.Time{}},
		{"edrx active after uplink", edrx, at(30 * time.Second), at(33 * time.Second), true, at(35 * time.Second)},
		{"edrx asleep between windows", edrx, t0, at(10 * time.Second), false, at(20 * time.Second)},
		{"edrx in a paging window", edrx, t0, at(41 * time.Second), true, at(42 * time.Second)},
		{"edrx window end", edrx, t0, at(42 * time.Second), false, at(60 * time.Second)},
		{"edrx active time runs into a window", edrx, at(17 * time.Second), at(18 * time.Second), true, at(22 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.reach, tc.p.Reachable(t0, tc.last, tc.now), "Reachable(anchor %v, last %v, now %v)", t0, tc.last, tc.now)
			require.Equal(t, tc.nextChange, tc.p.NextChange(t0, tc.last, tc.now), "NextChange")
		})
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]sim.Mode{"psm": sim.PSM, "DRX": sim.DRX, "eDRX": sim.EDRX} {
		m, err := sim.ParseMode(s)
		require.NoError(t, err)
		require.Equal(t, want, m)
		require.Equal(t, want, must(sim.ParseMode(m.String())))
	}
	_, err := sim.ParseMode("sleepy")
	require.ErrorIs(t, err, sim.ErrConfig)
	require.EqualError(t, err, `sim: Mode "sleepy": allowed: psm, drx, edrx`)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestFirmwareVersionOf: the version an image installs.
func TestFirmwareVersionOf(t *testing.T) {
	require.Equal(t, "FW2.0", sim.FirmwareVersionOf([]byte("DOZEFW FW2.0\nrest")))
	require.Equal(t, "FW-E3B0C442", sim.FirmwareVersionOf(nil))
	require.Equal(t, "FW-E3B0C442", sim.FirmwareVersionOf([]byte{}))
	require.Regexp(t, `^FW-[0-9A-F]{8}$`, sim.FirmwareVersionOf([]byte("DOZEFW no newline")))
}

func FuzzFirmwareVersionOf(f *testing.F) {
	for _, s := range []string{"DOZEFW FW2.0\n", "DOZEFW \n", "", "DOZEFW x", "DOZEFW  \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v := sim.FirmwareVersionOf(b); v == "" {
			t.Fatalf("empty version for %q", b)
		}
	})
}

func TestNewConfigErrors(t *testing.T) {
	_, err := sim.New(sim.Config{})
	require.ErrorIs(t, err, sim.ErrConfig)
	require.ErrorContains(t, err, "IMEI")
	_, err = sim.New(sim.Config{IMEI: "1", Protocol: "mqtt"})
	require.EqualError(t, err, `sim: Protocol "mqtt": allowed: lwm2m, tup`)
	d, err := sim.New(sim.Config{IMEI: "1"})
	require.NoError(t, err)
	require.ErrorIs(t, d.Report(t.Context()), sim.ErrNotRunning)
	require.Equal(t, time.Hour, d.ReportPeriod())
	require.Equal(t, "1.0.0", d.SoftwareVersion())
}
