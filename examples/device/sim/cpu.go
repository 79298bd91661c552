package sim

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/stat's times: 1/100 s on every Linux
// architecture (USER_HZ of the kernel's user ABI).
const userHZ = 100

// machineBusy is the CPU time all cores of the machine spent working (user,
// nice, system, irq and softirq; not idle, I/O wait or steal) since boot,
// in USER_HZ ticks, from /proc/stat; ok is false where there is no
// /proc/stat. (Ticks, not a time.Duration: a machine of many cores passes
// the 292 years a Duration holds.)
func machineBusy() (ticks int64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return 0, false
	}
	return parseProcStatCPU(line)
}

// parseProcStatCPU reads the "cpu" line of /proc/stat: user nice system
// idle iowait irq softirq steal …, in USER_HZ ticks, and returns the sum of
// the busy ones.
func parseProcStatCPU(line string) (int64, bool) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/8 {
			return 0, false
		}
		ticks += n // five fields of at most MaxInt64/8: no overflow
	}
	return ticks, true
}

// ticksToDuration converts a span of USER_HZ ticks.
func ticksToDuration(ticks int64) time.Duration {
	return time.Duration(ticks) * (time.Second / userHZ)
}

// cpuMeter measures the machine's busy CPU time over a span.
type cpuMeter struct {
	start int64 // ticks
	t0    time.Time
	ok    bool
}

func startCPU() cpuMeter {
	b, ok := machineBusy()
	return cpuMeter{start: b, t0: time.Now(), ok: ok}
}

// stop returns the busy CPU time since start and the cores busy on
// average (busy / wall time); ok is false without /proc/stat.
func (m cpuMeter) stop() (busy time.Duration, cores float64, ok bool) {
	b, ok := machineBusy()
	if !ok || !m.ok {
		return 0, 0, false
	}
	busy = ticksToDuration(b - m.start)
	if wall := time.Since(m.t0); wall > 0 {
		cores = busy.Seconds() / wall.Seconds()
	}
	return busy, cores, true
}

// span is a measured stretch of work: n items in took, with the machine's
// busy CPU time over it (cpuOK false without /proc/stat).
type span struct {
	n     int64
	took  time.Duration
	cpu   time.Duration
	cpuOK bool
}

// measureSend is sendAll with its span measured.
func measureSend[D comparable](devs []D, workers, uplinks int, send func(D) error, fail func(error)) span {
	m := startCPU()
	sent, start := sendAll(devs, workers, uplinks, send, fail)
	took := time.Since(start)
	busy, _, ok := m.stop()
	return span{n: sent, took: took, cpu: busy, cpuOK: ok}
}
