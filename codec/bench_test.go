package codec_test

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/doze-io/doze/codec"
)

// meterPayload is the 12-byte, 6-field meterReading report of
// testdata/watermeter.json: messageId 01, batteryLevel 85, signalStrength
// -85, totalFlow 123.456 (uint32, scale 0.001), flowRate 1.5 (uint16, scale
// 0.01), pulseCount 16.
var meterPayload = []byte{0x01, 0x55, 0xFF, 0xAB, 0x00, 0x01, 0xE2, 0x40, 0x00, 0x96, 0x00, 0x10}

// handReading is what a hand-written decoder of meterReading fills.
type handReading struct {
	batteryLevel   uint8
	signalStrength int16
	totalFlow      float64
	flowRate       float64
	pulseCount     uint16
}

var errHand = errors.New("bad meterReading")

// decodeByHand is the baseline: a decoder written for this one message, with
// the same checks (messageId, exact length) and the same scaling. It is kept
// out of line, as a hand-written codec called through the Codec interface
// would be; inlined into the benchmark loop it takes about 2 ns.
//
//go:noinline
func decodeByHand(p []byte, r *handReading) error {
	if len(p) != 12 || p[0] != 0x01 {
		return errHand
	}
	r.batteryLevel = p[1]
	r.signalStrength = int16(binary.BigEndian.Uint16(p[2:]))
	r.totalFlow = float64(binary.BigEndian.Uint32(p[4:])) / 1000
	r.flowRate = float64(binary.BigEndian.Uint16(p[8:])) / 100
	r.pulseCount = binary.BigEndian.Uint16(p[10:])
	return nil
}

var sink float64

// readRecord reads the five values of a decoded meterReading the way
// decodeByHand produces them, so that both benchmarks do the same work.
func readRecord(r *codec.Record) float64 {
	return float64(r.Int(1)+r.Int(2)+r.Int(5)) + r.Float(3) + r.Float(4)
}

func readHand(h *handReading) float64 {
	return float64(int64(h.batteryLevel)+int64(h.signalStrength)+int64(h.pulseCount)) + h.totalFlow + h.flowRate
}

// TestDecodeRecordAllocs checks the zero-allocation claim of DecodeRecord:
// decoding into a reused Record and reading its values allocates nothing.
func TestDecodeRecordAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	d := load(t, "watermeter.json", nil)
	var rec codec.Record
	if err := d.DecodeRecord(meterPayload, &rec); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.DecodeRecord(meterPayload, &rec); err != nil {
			t.Fatal(err)
		}
		sink = readRecord(&rec)
	})
	if allocs != 0 {
		t.Fatalf("DecodeRecord + reading values: %v allocations per run, want 0", allocs)
	}
	var h handReading
	if err := decodeByHand(meterPayload, &h); err != nil {
		t.Fatal(err)
	}
	want := readHand(&h)
	if got := readRecord(&rec); got != want {
		t.Fatalf("record reads %v, hand-written decoder %v", got, want)
	}
}

// cpuNanos returns the CPU time (user + system) the process has used. On a
// shared, oversubscribed machine wall-clock ns/op counts the time other
// processes held the cores; cpu-ns/op, reported next to it, does not.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// reportCPU adds the cpu-ns/op metric for a b.Loop benchmark started at
// start.
func reportCPU(b *testing.B, start int64) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuNanos()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkDecode compares, on the same 12-byte report: the hand-written
// decoder, DecodeRecord into a reused Record (plus reading the values), and
// Decode to the JSON-shaped *Report. Figures are quoted in doc.go.
func BenchmarkDecode(b *testing.B) {
	d := load(b, "watermeter.json", nil)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuNanos())
		var h handReading
		for b.Loop() {
			if err := decodeByHand(meterPayload, &h); err != nil {
				b.Fatal(err)
			}
			sink = readHand(&h)
		}
	})
	b.Run("record", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuNanos())
		var rec codec.Record
		for b.Loop() {
			if err := d.DecodeRecord(meterPayload, &rec); err != nil {
				b.Fatal(err)
			}
			sink = readRecord(&rec)
		}
	})
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuNanos())
		for b.Loop() {
			m, err := d.Decode(meterPayload)
			if err != nil {
				b.Fatal(err)
			}
			sink = float64(len(m.(*codec.Report).Data))
		}
	})
}

// BenchmarkEncode measures encoding a command and the report back, for the
// figures in doc.go.
func BenchmarkEncode(b *testing.B) {
	d := load(b, "watermeter.json", nil)
	m, err := d.Decode(meterPayload)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 64)
	b.Run("report", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuNanos())
		for b.Loop() {
			if _, err := d.Append(buf[:0], m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("command", func(b *testing.B) {
		b.ReportAllocs()
		c := &codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": 3600}, Mid: 9}
		defer reportCPU(b, cpuNanos())
		for b.Loop() {
			if _, err := d.Append(buf[:0], c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAppendAllocs checks the 0 allocs of the BenchmarkEncode figures in
// doc.go: appending a *Report or a *Command (mid given) to a buffer with room
// allocates nothing.
func TestAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	d := load(t, "watermeter.json", nil)
	m, err := d.Decode(meterPayload)
	if err != nil {
		t.Fatal(err)
	}
	c := &codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": 3600}, Mid: 9}
	buf := make([]byte, 0, 64)
	for _, msg := range []codec.Message{m, c} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := d.Append(buf[:0], msg); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("Append(%s): %v allocations per run, want 0", msg.Type(), allocs)
		}
	}
}
