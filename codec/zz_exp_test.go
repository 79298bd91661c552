package codec_test

import (
	"testing"

	"github.com/doze-io/doze/codec"
)

func BenchmarkExp(b *testing.B) {
	d := load(b, "watermeter.json", nil)
	b.Run("decodeonly", func(b *testing.B) {
		defer reportCPU(b, cpuNanos())
		var rec codec.Record
		for b.Loop() {
			if err := d.DecodeRecord(meterPayload, &rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ints", func(b *testing.B) {
		defer reportCPU(b, cpuNanos())
		var rec codec.Record
		for b.Loop() {
			if err := d.DecodeRecord(meterPayload, &rec); err != nil {
				b.Fatal(err)
			}
			sink = float64(rec.Int(1) + rec.Int(2) + rec.Int(5) + rec.Int(3) + rec.Int(4))
		}
	})
	b.Run("readonly", func(b *testing.B) {
		defer reportCPU(b, cpuNanos())
		var rec codec.Record
		d.DecodeRecord(meterPayload, &rec)
		for b.Loop() {
			sink = readRecord(&rec)
		}
	})
	b.Run("handdecodeonly", func(b *testing.B) {
		defer reportCPU(b, cpuNanos())
		var h handReading
		for b.Loop() {
			if err := decodeByHand(meterPayload, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
