package sim

// The paced mode of a load run and its device-to-push latency: uplinks
// spread evenly in time over all devices (open loop), the time each one
// was sent, matched to the time its webhook push arrived.

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Latency is the distribution of device-to-push latencies of a load run:
// from the moment a device began sending an uplink to the moment the
// webhook sink received the push carrying it (the first push, when the
// platform delivered one twice).
type Latency struct {
	N                  int64         // uplinks whose push was matched to their send
	Unmatched          int64         // Meter pushes the sink could not match to a send (no deviceId or pulseCount, unknown device)
	P50, P90, P99, Max time.Duration // nearest-rank percentiles
}

// latencyOf returns the nearest-rank percentiles of ds (sorted in place).
func latencyOf(ds []time.Duration) Latency {
	l := Latency{N: int64(len(ds))}
	if len(ds) == 0 {
		return l
	}
	slices.Sort(ds)
	l.P50, l.P90, l.P99 = percentile(ds, 0.50), percentile(ds, 0.90), percentile(ds, 0.99)
	l.Max = ds[len(ds)-1]
	return l
}

// percentile is the nearest-rank p-th percentile of sorted (0 < p ≤ 1):
// the smallest value with at least p of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// checkRate checks a load run's Rate and PaceOfMax.
func checkRate(rate, paceOfMax float64) error {
	switch {
	case math.IsNaN(rate) || math.IsInf(rate, 0) || rate < 0:
		return &ConfigError{Field: "Rate", Value: strconv.FormatFloat(rate, 'g', -1, 64),
			Problem: "allowed: 0 (unpaced: Workers devices send as fast as they are acknowledged) or a positive number of uplinks per second"}
	case math.IsNaN(paceOfMax) || paceOfMax < 0 || paceOfMax > 1:
		return &ConfigError{Field: "PaceOfMax", Value: strconv.FormatFloat(paceOfMax, 'g', -1, 64),
			Problem: "allowed: 0 (off) or a fraction of the measured maximum rate above 0 and at most 1 (0.5: half)"}
	case rate > 0 && paceOfMax > 0:
		return &ConfigError{Field: "PaceOfMax", Value: strconv.FormatFloat(paceOfMax, 'g', -1, 64),
			Problem: fmt.Sprintf("Rate is %g: give a fixed rate or a fraction of the measured maximum, not both", rate)}
	}
	return nil
}

// sendTimes records when each device began sending each of its uplinks,
// by device index and uplink number (1 for its first report in the run,
// counting across the run's phases: the number a device's report carries
// as its pulseCount).
type sendTimes struct {
	mu sync.Mutex
	at [][]time.Time // at[i][k-1]: device i's k-th uplink
}

func newSendTimes(n int) *sendTimes { return &sendTimes{at: make([][]time.Time, n)} }

// next records that device i begins its next uplink now.
func (s *sendTimes) next(i int, now time.Time) {
	s.mu.Lock()
	s.at[i] = append(s.at[i], now)
	s.mu.Unlock()
}

// get returns when device i began its k-th uplink.
func (s *sendTimes) get(i int, k int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.at) || k < 1 || k > int64(len(s.at[i])) {
		return time.Time{}, false
	}
	return s.at[i][k-1], true
}

// arrival is one Meter push as the sink received it.
type arrival struct {
	deviceID string
	pulse    int64 // the Meter service's pulseCount; -1 when absent
	at       time.Time
}

// pulseModulo is where a simulated meter's pulseCount wraps (Device's
// counter is 16 bits).
const pulseModulo = 65536

// latencies matches arrivals to sends: index gives a push's device index
// by its deviceId (false when unknown), and a push carries its uplink's
// number as pulseCount (modulo pulseModulo). Only the first push of each
// uplink counts.
func latencies(arr []arrival, sends *sendTimes, index func(deviceID string) (int, bool)) Latency {
	type key struct {
		i int
		k int64
	}
	seen := make(map[key]bool, len(arr))
	var ds []time.Duration
	var unmatched int64
	for _, a := range arr {
		i, ok := index(a.deviceID)
		if !ok || a.pulse < 0 {
			unmatched++
			continue
		}
		// The k-th uplink carries k mod 65536: look for the latest
		// uplink of the device with that residue.
		sends.mu.Lock()
		sent := int64(len(sends.at[i]))
		sends.mu.Unlock()
		k := sent - ((sent-a.pulse)%pulseModulo+pulseModulo)%pulseModulo
		at, ok := sends.get(i, k)
		if !ok {
			unmatched++
			continue
		}
		if seen[key{i, k}] {
			continue
		}
		seen[key{i, k}] = true
		ds = append(ds, a.at.Sub(at))
	}
	l := latencyOf(ds)
	l.Unmatched = unmatched
	return l
}

// sendPaced is the open-loop sender: uplinks reports from every device of
// devs that is not nil, uplink j of the run (counting round the devices,
// j = k·live + position) due at start + j/rate, so that the devices
// together send rate uplinks per second, evenly spread. Each device sends
// its own uplinks in order on its own goroutine: a send that falls behind
// (its device still waiting for the previous acknowledgement) goes at once,
// late, and is never skipped, and it delays no other device. A device stops
// at its first error (given to fail). It returns the reports sent, when
// the first was due, and how late the sends began (begin − due, one per
// send).
func sendPaced[D comparable](devs []D, uplinks int, rate float64, send func(i int, d D) error, fail func(error)) (int64, time.Time, []time.Duration) {
	var none D
	var live []int
	for i, d := range devs {
		if d != none {
			live = append(live, i)
		}
	}
	var sent atomic.Int64
	lags := make([][]time.Duration, len(live))
	interval := float64(time.Second) / rate
	start := time.Now()
	var wg sync.WaitGroup
	for pos, i := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range uplinks {
				j := k*len(live) + pos
				due := start.Add(time.Duration(float64(j) * interval))
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				lags[pos] = append(lags[pos], time.Since(due))
				if err := send(i, devs[i]); err != nil {
					fail(err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lags {
		all = append(all, l...)
	}
	return sent.Load(), start, all
}

// deviceIndex maps the platform's deviceIds to the devices of a run.
type deviceIndex struct {
	mu   sync.Mutex
	byID map[string]int
}

func (x *deviceIndex) get(id string) (int, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.byID[id]
	return i, ok
}

// resolveByNodeID fills x with the deviceIds of the app's devices whose
// nodeId is one of imeis (GET /iocm/app/dm/v1.4.0/devices, 500 a page),
// stopping once every id of want is known or the list ends.
func resolveByNodeID(ctx context.Context, api *API, imeis []string, want map[string]bool, x *deviceIndex) error {
	byIMEI := make(map[string]int, len(imeis))
	for i, imei := range imeis {
		byIMEI[imei] = i
	}
	missing := func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		for id := range want {
			if _, ok := x.byID[id]; !ok {
				return true
			}
		}
		return false
	}
	const pageSize = 500
	for page := 0; missing(); page++ {
		var out struct {
			TotalCount int `json:"totalCount"`
			Devices    []struct {
				DeviceID   string `json:"deviceId"`
				DeviceInfo struct {
					NodeID string `json:"nodeId"`
				} `json:"deviceInfo"`
			} `json:"devices"`
		}
		q := url.Values{"pageNo": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(pageSize)}}
		if err := api.call(ctx, "GET", "/iocm/app/dm/v1.4.0/devices?"+q.Encode(), nil, &out); err != nil {
			return fmt.Errorf("sim: matching pushes to devices: %w", err)
		}
		x.mu.Lock()
		for _, d := range out.Devices {
			if i, ok := byIMEI[strings.TrimPrefix(d.DeviceInfo.NodeID, "urn:imei:")]; ok {
				x.byID[d.DeviceID] = i
			}
		}
		x.mu.Unlock()
		if len(out.Devices) < pageSize || (page+1)*pageSize >= out.TotalCount {
			return nil
		}
	}
	return nil
}
