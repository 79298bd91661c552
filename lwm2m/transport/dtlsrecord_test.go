package transport

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// helloTable are ClientHellos the router must read, and ones it must refuse
// with a reason.
var helloTable = []struct {
	name   string
	b      []byte
	reason string // "" means valid
}{
	{"plain", testHello{}.bytes(), ""},
	{"cookie", testHello{msgSeq: 1, recSeq: 1, cookie: bytes.Repeat([]byte{7}, 16)}.bytes(), ""},
	{"record 254.0", testHello{recVersion: [2]byte{254, 0}}.bytes(), ""},
	{"TLS record", testHello{recVersion: [2]byte{3, 3}}.bytes(), "not DTLS"},
	{"truncated", testHello{}.bytes()[:40], "exceeds the datagram"},
	{"fragment", func() []byte {
		b := testHello{}.bytes()
		b[recordHeaderLen+11]-- // fragment_length one short
		return b
	}(), "fragmented"},
	{"session id too long", func() []byte {
		b := testHello{}.bytes()
		b[recordHeaderLen+handshakeHeaderLen+34] = 33
		return b
	}(), "session_id of 33"},
	{"odd suites", func() []byte {
		b := testHello{}.bytes()
		b[recordHeaderLen+handshakeHeaderLen+37] = 3
		return b
	}(), "cipher_suites of 3"},
}

func TestParseClientHello(t *testing.T) {
	for _, tc := range helloTable {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseClientHello(tc.b)
			if tc.reason != "" {
				require.Error(t, err, "parseClientHello(% x)", tc.b)
				require.Contains(t, err.Error(), tc.reason)
				return
			}
			require.NoError(t, err)
			require.Equal(t, [2]byte{254, 253}, h.version)
			require.Equal(t, []byte{0xC0, 0xA8}, h.suites)
			require.Equal(t, []byte{0}, h.comp)
		})
	}
}

// The hello pion sees first is the device's without its cookie, as
// message 0, and everything else the same.
func TestAppendInitialHello(t *testing.T) {
	second := testHello{msgSeq: 1, recSeq: 4, random: [32]byte{5}, cookie: bytes.Repeat([]byte{9}, 16)}
	b := second.bytes()
	h, err := parseClientHello(b)
	require.NoError(t, err)
	first := appendInitialHello(nil, b, h, 3)
	want := testHello{recSeq: 3, random: [32]byte{5}}.bytes()
	require.Equal(t, want, first)
}

func TestNormalizeRecordVersions(t *testing.T) {
	b := append(testHello{recVersion: [2]byte{254, 0}}.bytes(), testHello{recVersion: [2]byte{254, 7}}.bytes()...)
	require.True(t, normalizeRecordVersions(b))
	h1 := testHello{}.bytes()
	require.Equal(t, append(h1, h1...), b, "both records at {254,255}")
	require.False(t, normalizeRecordVersions(b), "nothing left to change")
	tls := testHello{recVersion: [2]byte{3, 3}}.bytes()
	require.False(t, normalizeRecordVersions(tls), "a TLS record stays as it is")
}

// FuzzParseClientHello: the router's hello parser never panics, and what
// it accepts it can turn into the hello pion sees first, which parses
// again with the same fields.
func FuzzParseClientHello(f *testing.F) {
	for _, tc := range helloTable {
		f.Add(tc.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		normalizeRecordVersions(append([]byte(nil), b...))
		h, err := parseClientHello(b)
		if err != nil {
			return
		}
		first := appendInitialHello(nil, b, h, 0)
		g, err := parseClientHello(first)
		require.NoError(t, err, "the initial hello of % x", b)
		require.Empty(t, g.cookie)
		require.Equal(t, h.random, g.random)
		require.Equal(t, h.suites, g.suites)
		require.Equal(t, h.comp, g.comp)
	})
}

// Cookies: valid for the address and hello they answered, with the
// current and the previous secret, not after two rotations.
func TestCookieJar(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	h, err := parseClientHello(testHello{random: [32]byte{1}}.bytes())
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		at   time.Time
		addr *net.UDPAddr
		edit func(*clientHello)
		want bool
	}{
		{"same", t0, a, nil, true},
		{"after one rotation", t0.Add(cookieRotation + time.Second), a, nil, true},
		{"other port", t0, &net.UDPAddr{IP: a.IP, Port: 5001}, nil, false},
		{"other ip", t0, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5000}, nil, false},
		{"other random", t0, a, func(h *clientHello) { h.random = bytes.Repeat([]byte{2}, 32) }, false},
		{"other suites", t0, a, func(h *clientHello) { h.suites = []byte{0, 0xAE} }, false},
		{"after two rotations", t0.Add(2*cookieRotation + 2*time.Second), a, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var jj cookieJar
			g := h
			g.cookie = jj.make(t0, a, &h)
			require.Len(t, g.cookie, cookieLen)
			if tc.edit != nil {
				tc.edit(&g)
			}
			if tc.name == "after two rotations" {
				jj.rotate(t0.Add(cookieRotation + time.Second))
			}
			require.Equal(t, tc.want, jj.valid(tc.at, tc.addr, &g))
		})
	}
}

// Log floods: the first event of a kind is logged at once, the next ones
// in the interval become one line with their count.
func TestLogAgg(t *testing.T) {
	lines := &logLines{}
	a := newLogAgg(slog.New(lines), 10*time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		a.warn(t0.Add(time.Duration(i)*time.Millisecond), "refused", "addr", i)
	}
	a.warn(t0, "other kind", "x", 1)
	require.Len(t, lines.matching("refused"), 1, "one line at once")
	a.flush(t0.Add(5 * time.Second))
	require.Len(t, lines.matching("refused"), 1, "nothing more before the interval passed")
	a.flush(t0.Add(10 * time.Second))
	got := lines.matching("refused (aggregated)", "count=999")
	require.Len(t, got, 1, "one line with the count: %v", lines.matching(""))
	require.Contains(t, got[0], "addr=999", "with the last event's details")
	a.flush(t0.Add(30 * time.Second))
	require.Len(t, lines.matching("refused"), 2, "nothing to report, no line")
	a.warn(t0.Add(31*time.Second), "refused", "addr", 1)
	require.Len(t, lines.matching("refused"), 3, "the first after a quiet interval is logged at once")
	require.Len(t, lines.matching("other kind"), 1)
}
