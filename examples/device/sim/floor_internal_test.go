package sim

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestParseProcStatCPU: busy time is user+nice+system+irq+softirq, in
// 1/100 s; idle, iowait and steal are not work done here; a line that is
// not the "cpu" total or has a bad field is refused.
func TestParseProcStatCPU(t *testing.T) {
	busy, ok := parseProcStatCPU("cpu  39247 5 13706 68708 1282 7 1909 216 0 0\n")
	require.True(t, ok)
	require.Equal(t, int64(39247+5+13706+7+1909), busy)
	require.Equal(t, 548*time.Second+740*time.Millisecond, ticksToDuration(busy))
	for _, bad := range []string{
		"cpu0 1 2 3 4 5 6 7 8",                   // one core, not the total
		"cpu  1 2 3 4",                           // too few fields
		"cpu  1 x 3 4 5 6 7 8",                   // not a number
		"cpu  1 2 -3 4 5 6 7 8",                  // negative
		"intr 1 2 3 4 5 6 7 8 9 10 11",           // another line
		"cpu  9223372036854775807 1 1 1 1 1 1 1", // would overflow the sum
	} {
		_, ok := parseProcStatCPU(bad)
		require.False(t, ok, bad)
	}
	if _, ok := machineBusy(); runtime.GOOS == "linux" {
		require.True(t, ok, "/proc/stat is read on Linux")
	}
}

// TestBound: the bound adds the CPU time of the uplink's exchanges (its
// report and each acknowledgement it answers at the bare server's cost)
// to its deliveries' and divides the machine's cores by it; without the
// machine's CPU times it adds the times per item of the two rates.
func TestBound(t *testing.T) {
	c := span{n: 100, took: time.Second, cpu: 2 * time.Second, cpuOK: true}         // 20 ms per exchange, 2 cores busy
	f := span{n: 300, took: time.Second, cpu: 1500 * time.Millisecond, cpuOK: true} // 5 ms per push
	r := LoadResult{Ceiling: 100, PushesPerUplink: 3, DownlinksPerUplink: 1}
	r.bound(c, f)
	require.Equal(t, int64(300), r.FloorN)
	require.InDelta(t, 100, r.Floor, 1e-9, "300 pushes/s at 3 per uplink")
	require.Equal(t, 20*time.Millisecond, r.ExchangeCPU)
	require.Equal(t, 15*time.Millisecond, r.DeliveriesCPU)
	require.InDelta(t, 2, r.CeilingCores, 1e-9)
	require.InDelta(t, 1.5, r.FloorCores, 1e-9)
	want := float64(runtime.NumCPU()) / (2*0.020 + 0.015)
	require.InDelta(t, want, r.Bound, 1e-6)
	require.InDelta(t, want/100, r.BoundRatio, 1e-9)

	c.cpuOK = false
	r = LoadResult{Ceiling: 100, PushesPerUplink: 3, DownlinksPerUplink: 1}
	r.bound(c, f)
	require.Zero(t, r.ExchangeCPU)
	require.InDelta(t, 1/(1/50.0+1/100.0), r.Bound, 1e-9, "exchanges at 50 uplinks/s (two per uplink), deliveries at 100")

	r = LoadResult{Ceiling: 100}
	r.bound(c, f)
	require.Zero(t, r.Bound, "no push in the run: no floor, no bound")
}

// TestDeliveryFloor posts exactly n pushes, the bodies round robin, and
// fails on a push the sink did not take or when there is nothing to post.
func TestDeliveryFloor(t *testing.T) {
	var got atomic.Int64
	var a, b atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		buf := make([]byte, 8)
		n, _ := r.Body.Read(buf)
		switch string(buf[:n]) {
		case "a":
			a.Add(1)
		case "b":
			b.Add(1)
		}
	}))
	defer srv.Close()
	took, err := deliveryFloor(context.Background(), srv.URL, [][]byte{[]byte("a"), []byte("b")}, 101)
	require.NoError(t, err)
	require.Positive(t, took)
	require.Equal(t, int64(101), got.Load())
	require.Equal(t, int64(51), a.Load())
	require.Equal(t, int64(50), b.Load())

	_, err = deliveryFloor(context.Background(), srv.URL, nil, 10)
	require.ErrorContains(t, err, "no push arrived")

	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer refusing.Close()
	_, err = deliveryFloor(context.Background(), refusing.URL, [][]byte{[]byte("a")}, 5)
	require.ErrorContains(t, err, "503")
}

// FuzzParseProcStatCPU: any line is refused or read as busy ticks that are
// not negative (no overflow), the sum of its user, nice, system, irq and
// softirq fields.
func FuzzParseProcStatCPU(f *testing.F) {
	f.Add("cpu  39247 5 13706 68708 1282 7 1909 216 0 0\n")
	f.Add("cpu 1 2 3 4 5 6 7")
	f.Add("cpu0 1 2 3 4 5 6 7 8")
	f.Add("cpu  9223372036854775807 9223372036854775807 1 1 1 1 1 1")
	f.Fuzz(func(t *testing.T, line string) {
		busy, ok := parseProcStatCPU(line)
		if !ok {
			require.Zero(t, busy)
			return
		}
		require.GreaterOrEqual(t, busy, int64(0), "busy ticks of %q", line)
	})
}

// TestFloorIgnoresLatePushes: a platform's pushes that arrive while the
// floor runs (late ones, or repeated: pushes are at least once) are not
// taken for the floor's own posts, which are counted apart; the bodies
// kept for the floor are the platform's.
func TestFloorIgnoresLatePushes(t *testing.T) {
	s, err := startSink("")
	require.NoError(t, err)
	defer s.close()
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	post := func(body string, floor bool) {
		req, err := http.NewRequest(http.MethodPost, s.url, strings.NewReader(body))
		require.NoError(t, err)
		if floor {
			req.Header.Set(floorHeader, "1")
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	meter := `{"notifyType":"deviceDataChanged","deviceId":"d1","service":{"serviceId":"Meter","data":{"pulseCount":%d}}}`
	for i := range 3 {
		post(fmt.Sprintf(meter, i), false)
	}
	s.reset()
	post(fmt.Sprintf(meter, 7), true)
	post(fmt.Sprintf(meter, 8), false) // a late push of the platform
	post(fmt.Sprintf(meter, 9), true)
	require.Equal(t, int64(2), s.floor.Load())
	require.Equal(t, int64(1), s.all.Load())
	require.Len(t, s.bodies, 4, "the three pushes before and the late one, not the floor's")

	// The floor itself, with the late push in the way: exact.
	s.reset()
	post(fmt.Sprintf(meter, 10), false)
	sp, err := (&loadRun[*Device]{}).floor(context.Background(), s)
	require.NoError(t, err)
	require.Equal(t, int64(1), sp.n)
	require.Equal(t, int64(1), s.floor.Load())
}
