package pcp

import (
	"bufio"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type vector struct {
	name string
	hex  string
}

// loadVectors reads the PCP test vectors in testdata/pcp-vectors.txt.
func loadVectors(t testing.TB) []vector {
	path := filepath.Join("testdata", "pcp-vectors.txt")
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		require.Len(t, fields, 2, "line %q of %s", line, path)
		vs = append(vs, vector{fields[0], fields[1]})
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, vs)
	return vs
}

func TestCRC16Table(t *testing.T) {
	require.Equal(t, uint16(0x1021), crcTable[1])
	require.Equal(t, uint16(0x1EF0), crcTable[255])
}

// The message each vector decodes to, by vector name (OTA-6).
var vectorMessages = map[string]struct {
	dir Direction
	msg Message
}{
	"query-version":              {Downlink, QueryVersion{}},
	"query-version-answer-ok":    {Uplink, QueryVersionAnswer{ResultOK, "V1.0"}},
	"notify-v1.0-500x1":          {Downlink, Notify{Version: "V1.0", BlockSize: 500, BlockCount: 1}},
	"notify-answer-ok":           {Uplink, NotifyAnswer{ResultOK}},
	"request-block-0":            {Uplink, BlockRequest{Version: "V1.0", Block: 0}},
	"block-0-answer-hello":       {Downlink, BlockAnswer{Result: ResultOK, Block: 0, Data: []byte("hello")}},
	"block-7-answer-no-such":     {Downlink, BlockAnswer{Result: ResultNoSuchBlock, Block: 7, Data: []byte{}}},
	"report-download-ok":         {Uplink, DownloadResult{ResultOK}},
	"execute-upgrade":            {Downlink, Execute{}},
	"report-upgrade-ok-v1.0":     {Uplink, UpgradeResult{ResultOK, "V1.0"}},
	"report-upgrade-failed-v0.9": {Uplink, UpgradeResult{ResultInstallFailed, "V0.9"}},
}

// TestVectors checks every frame of pcp-vectors.txt: the check code, the
// decoded message, and that encoding the message gives the frame back
// (OTA-6).
func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			b, err := hex.DecodeString(v.hex)
			require.NoError(t, err)
			f, err := ParseFrame(b)
			require.NoError(t, err, "ParseFrame(%s)", v.hex)
			require.Equal(t, b, AppendFrame(nil, f.Code, f.Data), "AppendFrame recomputes the check code")
			want, ok := vectorMessages[v.name]
			require.True(t, ok, "vector %s has no expected message in vectorMessages", v.name)
			m, err := DecodeMessage(b, want.dir)
			require.NoError(t, err)
			if ba, ok := m.(BlockAnswer); ok && len(ba.Data) == 0 {
				ba.Data = []byte{}
				m = ba
			}
			require.Equal(t, want.msg, m)
			require.Equal(t, strings.ToUpper(v.hex), strings.ToUpper(hex.EncodeToString(Encode(m))))
		})
	}
	require.Len(t, vectorMessages, len(loadVectors(t)), "every expected message has a vector")
}

func TestAppendBlockAnswerMatchesMessage(t *testing.T) {
	data := []byte("some block bytes")
	require.Equal(t, Encode(BlockAnswer{Result: ResultOK, Block: 513, Data: data}), AppendBlockAnswer(nil, ResultOK, 513, data))
}

// TestAppendFrameLengthLimit: the 16-bit length field cannot be made to
// wrap (OTA-6): the largest data fits, one byte more panics.
func TestAppendFrameLengthLimit(t *testing.T) {
	f, err := ParseFrame(AppendFrame(nil, CodeBlock, make([]byte, MaxFrameData)))
	require.NoError(t, err)
	require.Len(t, f.Data, MaxFrameData)
	require.Panics(t, func() { AppendFrame(nil, CodeBlock, make([]byte, MaxFrameData+1)) })
	f, err = ParseFrame(AppendBlockAnswer(nil, ResultOK, 1, make([]byte, MaxFrameData-3)))
	require.NoError(t, err)
	require.Len(t, f.Data, MaxFrameData)
	require.Panics(t, func() { AppendBlockAnswer(nil, ResultOK, 1, make([]byte, MaxFrameData-2)) })
}

func TestAppendBlockAnswerAllocs(t *testing.T) {
	buf := make([]byte, 0, 600)
	data := make([]byte, 500)
	n := testing.AllocsPerRun(100, func() { buf = AppendBlockAnswer(buf[:0], ResultOK, 1, data) })
	require.Zero(t, n, "AppendBlockAnswer into a large enough buffer allocates")
}

func TestFrameErrors(t *testing.T) {
	good := Encode(QueryVersionAnswer{ResultOK, "V1.0"})
	badCRC := append([]byte(nil), good...)
	badCRC[5] ^= 1
	tests := []struct {
		name   string
		frame  []byte
		dir    Direction
		offset int
		msg    string
	}{
		{"short", []byte{0xFF, 0xFE, 1}, Uplink, 0, "header"},
		{"start", []byte{0xFF, 0xFF, 1, 19, 0, 0, 0, 0}, Uplink, 0, "want FFFE"},
		{"version", []byte{0xFF, 0xFE, 2, 19, 0, 0, 0, 0}, Uplink, 2, "protocol version"},
		{"length", []byte{0xFF, 0xFE, 1, 19, 0, 0, 0, 5, 1}, Uplink, 6, "data length 5"},
		{"crc", badCRC, Uplink, 4, "check code"},
		{"trailing", append(append([]byte(nil), good...), 0), Uplink, len(good), "after the end"},
		{"code", AppendFrame(nil, 18, nil), Uplink, 3, "allowed 19..24"},
		{"query answer size", AppendFrame(nil, 19, []byte{0}), Uplink, 6, "want 17"},
		{"notify size", AppendFrame(nil, 20, make([]byte, 21)), Downlink, 6, "want 22"},
		{"block answer size", AppendFrame(nil, 21, []byte{0, 1}), Downlink, 6, "at least 3"},
		{"version padding", AppendFrame(nil, 19, append([]byte{0, 'V', 0, 'x'}, make([]byte, 13)...)), Uplink, 11, "after its zero padding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMessage(tt.frame, tt.dir)
			require.ErrorIs(t, err, ErrBadFrame)
			var fe *FrameError
			require.True(t, errors.As(err, &fe))
			require.Equal(t, tt.offset, fe.Offset, "offset of %v", err)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestIsPCP(t *testing.T) {
	require.True(t, IsPCP([]byte{0xFF, 0xFE}))
	require.False(t, IsPCP([]byte{0xFF}))
	require.False(t, IsPCP([]byte{0x01, 0xFE, 0x00}))
}

// TestParseBlockRequest: the allocation-free decoder of block requests
// agrees with Frame.Message and refuses what it refuses.
func TestParseBlockRequest(t *testing.T) {
	f, err := ParseFrame(Encode(BlockRequest{Version: "V1.0", Block: 513}))
	require.NoError(t, err)
	v, n, err := ParseBlockRequest(f.Data)
	require.NoError(t, err)
	require.Equal(t, "V1.0", string(v))
	require.Equal(t, uint16(513), n)
	require.Zero(t, testing.AllocsPerRun(100, func() { ParseBlockRequest(f.Data) }))
	bad := append([]byte(nil), f.Data...)
	bad[6] = 'x' // after the zero padding
	_, _, err = ParseBlockRequest(bad)
	require.ErrorIs(t, err, ErrBadFrame)
	_, err = Frame{Code: CodeBlock, Data: bad}.Message(Uplink)
	require.ErrorIs(t, err, ErrBadFrame)
	_, _, err = ParseBlockRequest(f.Data[1:])
	require.ErrorIs(t, err, ErrBadFrame)
}

func TestValidateVersion(t *testing.T) {
	require.NoError(t, ValidateVersion("V1.0.0-rc.1"))
	require.ErrorIs(t, ValidateVersion(""), ErrBadVersion)
	require.ErrorIs(t, ValidateVersion("12345678901234567"), ErrBadVersion)
	require.ErrorIs(t, ValidateVersion("V1\x00"), ErrBadVersion)
}

// FuzzDecodeMessage: the frame decoder never panics, and whatever decodes
// encodes back to the same frame.
func FuzzDecodeMessage(f *testing.F) {
	for _, v := range loadVectors(f) {
		b, _ := hex.DecodeString(v.hex)
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add(AppendFrame(nil, 18, nil), true)
	f.Fuzz(func(t *testing.T, b []byte, down bool) {
		dir := Uplink
		if down {
			dir = Downlink
		}
		m, err := DecodeMessage(b, dir)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("DecodeMessage(%x) error %v does not wrap ErrBadFrame", b, err)
			}
			return
		}
		if got := Encode(m); string(got) != string(b) {
			t.Fatalf("DecodeMessage(%x) = %#v, which encodes to %x", b, m, got)
		}
	})
}

// TestCRC16Slicing: the slicing-by-8 update equals the byte-wise one for
// every length and start value.
func TestCRC16Slicing(t *testing.T) {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*131 + 7)
	}
	for n := range len(b) {
		for _, init := range []uint16{0, 0x1234, 0xFFFF} {
			require.Equal(t, crc16Bytewise(init, b[:n]), CRC16(init, b[:n]), "length %d, start %04X", n, init)
		}
	}
}

func FuzzCRC16(f *testing.F) {
	f.Add([]byte("hello, world"), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, init uint16) {
		if got, want := CRC16(init, b), crc16Bytewise(init, b); got != want {
			t.Fatalf("CRC16(%04X, %x) = %04X, byte-wise %04X", init, b, got, want)
		}
	})
}

func BenchmarkCRC16(b *testing.B) {
	data := make([]byte, 511)
	b.Run("bytewise", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			crc16Bytewise(0, data)
		}
	})
	b.Run("slicing-by-8", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			CRC16(0, data)
		}
	})
}
