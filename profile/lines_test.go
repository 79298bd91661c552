package profile

import (
	"bytes"
	"fmt"
	"testing"
	"unicode/utf8"
)

// naiveLineCol is the definition lines.lineCol implements: 1 + newlines
// before off, and 1 + characters between the line's start and off.
func naiveLineCol(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	before := data[:off]
	ls := bytes.LastIndexByte(before, '\n') + 1
	return 1 + bytes.Count(before, []byte{'\n'}), 1 + utf8.RuneCount(before[ls:])
}

// FuzzLineCol checks the line index against the definition for valid
// UTF-8 (JSON text), at every character start of short inputs and at both ends and
// around every 256-byte step of long ones.
func FuzzLineCol(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("{\n  \"a\": \"ü\",\n\n  \"b\": 1\n}\n"))
	f.Add(bytes.Repeat([]byte("é\n"), 300))
	f.Add(bytes.Repeat([]byte("日本"), 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return
		}
		l := newLines(data)
		offs := []int{-1, 0, len(data), len(data) + 5}
		if len(data) <= 600 {
			for i := range data {
				offs = append(offs, i)
			}
		} else {
			for k := 0; k <= len(data); k += charStep {
				offs = append(offs, k-1, k, k+1)
			}
		}
		for _, off := range offs {
			if off > 0 && off < len(data) && !utf8.RuneStart(data[off]) {
				continue // problems sit at tokens, which start characters
			}
			gl, gc := l.lineCol(off)
			wl, wc := naiveLineCol(data, off)
			if gl != wl || gc != wc {
				t.Fatalf("offset %d of %q: got %d:%d, want %d:%d", off, data, gl, gc, wl, wc)
			}
		}
	})
}

// BenchmarkLineCol locates n problems spread over a 1 MiB one-line file:
// index=once builds the index once and searches it per problem (ns/problem
// flat in n); index=none is the former way, a scan from the file's start
// per problem (ns/problem grows with the file).
func BenchmarkLineCol(b *testing.B) {
	data := bytes.Repeat([]byte(`{"property_name":"ü","data_type":"bogus"},`), (1<<20)/44)
	for _, n := range []int{100, 1000, 10000} {
		offs := make([]int, n)
		for i := range offs {
			offs[i] = i * (len(data) / n)
		}
		b.Run("index=once/problems="+itoa(n), func(b *testing.B) {
			for b.Loop() {
				l := newLines(data)
				for _, off := range offs {
					l.lineCol(off)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/problem")
		})
		if n > 1000 {
			continue // the former way takes seconds there
		}
		b.Run("index=none/problems="+itoa(n), func(b *testing.B) {
			for b.Loop() {
				for _, off := range offs {
					naiveLineCol(data, off)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/problem")
		})
	}
}

func itoa(n int) string { return string(fmt.Appendf(nil, "%d", n)) }
