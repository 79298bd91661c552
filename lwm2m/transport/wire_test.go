package transport

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// RFC 7252 §3: well-formed messages pass checkFormat; each malformed form
// is a format error that names where, with the header still read so that
// a confirmable one can be reset.
func TestCheckFormat(t *testing.T) {
	good := [][]byte{
		{0x40, 0x00, 0x12, 0x34},                      // ping
		{0x48, 0x01, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8},    // TKL 8, no options
		{0x40, 0x02, 0, 1, 0xb2, 'r', 'd', 0xff, 'x'}, // option, marker, payload
		{0x40, 0x01, 0, 1, 0xd1, 0x00, 'a'},           // extended delta 13
		{0x40, 0x01, 0, 1, 0xe0, 0xfe, 0xf2},          // extended delta 14: option 65535
		{0x40, 0x01, 0, 1, 0xbd, 0x00, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm'}, // extended length 13
	}
	for _, b := range good {
		h, ok, err := checkFormat(b)
		require.True(t, ok)
		require.NoError(t, err, "% x", b)
		require.Equal(t, uint8(1), h.version)
	}
	for _, tc := range malformedForms {
		b := withType(tc.b, message.Confirmable, 0xabcd)
		h, ok, err := checkFormat(b)
		require.True(t, ok, tc.name)
		require.Error(t, err, tc.name)
		require.Contains(t, err.Error(), "at byte", tc.name)
		require.Equal(t, uint16(0xabcd), h.mid, tc.name)
		require.Equal(t, message.Confirmable, h.typ, tc.name)
	}
	_, err := decodeMsg(withType(malformedForms[0].b, message.Confirmable, 1))
	require.Error(t, err, "go-coap agrees on TKL 9")
	_, ok, _ := checkFormat([]byte{0x40, 0x01, 0})
	require.False(t, ok, "shorter than a header: nothing to answer")
	_, _, err = checkFormat([]byte{0x40, 0x01, 0, 1, 0xe0, 0xff, 0xff})
	require.ErrorContains(t, err, "above 65535")
	require.Equal(t, []byte{0x70, 0, 0xab, 0xcd}, resetFor(0xabcd))
}

// FuzzCheckFormat: checkFormat never panics; what it accepts and go-coap
// decodes survives re-encoding; what go-coap decodes it accepts (but for
// Empty messages with bytes after the header, which go-coap lets through
// and RFC 7252 §4.1 does not), so that no well-formed message is reset.
func FuzzCheckFormat(f *testing.F) {
	fuzzSeeds(f)
	for _, tc := range malformedForms {
		f.Add(withType(tc.b, message.Confirmable, 1))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok, err := checkFormat(b)
		if !ok || h.version != 1 {
			return
		}
		m, derr := decodeMsg(b)
		if derr == nil && err != nil && h.code != codes.Empty { // go-coap does not check §4.1
			t.Fatalf("go-coap decodes % x but checkFormat says %v", b, err)
		}
		if err != nil || derr != nil {
			return
		}
		out, eerr := encodeMsg(m)
		if eerr != nil {
			return // go-coap keeps options it cannot encode again (a bad length)
		}
		if _, _, err := checkFormat(out); err != nil {
			t.Fatalf("re-encoded % x → % x fails: %v", b, out, err)
		}
	})
}

// SEC-2: a flood of events a peer can cause writes one line with the
// details, then one line with the count per interval — not one a packet.
func TestFloodLogAggregates(t *testing.T) {
	var mu sync.Mutex
	var lines []slog.Record
	h := recordHandler(func(r slog.Record) { mu.Lock(); lines = append(lines, r); mu.Unlock() })
	f := newFloodLog(slog.New(h), time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100_000 {
		f.noteAt(t0.Add(time.Duration(i)*time.Microsecond), "refused", "lwm2m: refused", "n", i)
	}
	f.noteAt(t0, "malformed", "lwm2m: malformed")
	require.Len(t, lines, 2, "the first of each kind")
	f.flush(t0.Add(30 * time.Second))
	require.Len(t, lines, 2, "the interval has not passed")
	f.flush(t0.Add(time.Minute))
	require.Len(t, lines, 3, "one summary; the single malformed event needs none")
	var count int64
	lines[2].Attrs(func(a slog.Attr) bool {
		if a.Key == "count" {
			count = a.Value.Int64()
		}
		return true
	})
	require.Equal(t, int64(99_999), count)
	f.noteAt(t0.Add(2*time.Minute), "refused", "lwm2m: refused")
	require.Len(t, lines, 4, "a new interval logs its first event again")
}

type recordHandler func(slog.Record)

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h(r)
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// A Server's refusals reach its Logger aggregated: 300 refused plain-CoAP
// registrations write one line.
func TestRefusalsLoggedAggregated(t *testing.T) {
	var mu sync.Mutex
	n := 0
	h := recordHandler(func(r slog.Record) {
		if bytes.Contains([]byte(r.Message), []byte("refused by the endpoint policy")) {
			mu.Lock()
			n++
			mu.Unlock()
		}
	})
	// A high request rate: this test is about the log, not the per-session
	// limit a burst of 300 from one address would otherwise reach.
	s, _ := startServer(t, Config{DisableDTLS: true, Logger: slog.New(h), RequestRate: 100000, RequestBurst: 1000}, nil)
	p := newRawPeer(t, s.UDPAddr())
	for range 300 {
		r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=x"}, cfLink, nil))
		require.Equal(t, codes.Unauthorized, r.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, n)
}
