package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// reportGoldenPayloads are demo-meter uplinks whose effects the golden
// file pins: the codec's documented reading, extreme and tiny values,
// status reports with strings, and strings that JSON escapes (quotes,
// backslash, HTML characters, control bytes, bytes above 0x7F).
var reportGoldenPayloads = []struct{ name, hex string }{
	{"reading of the codec documentation", "0155FFAB0001E24000960010"},
	{"reading at the extremes", "01FF8000FFFFFFFFFFFFFFFF"},
	{"reading of tiny values", "01000000000000010001" + "0000"},
	{"status", "020154C40A0B0C0D01F401" + "00000E10" + hex.EncodeToString([]byte("20260102T030405Z")) + "04" + hex.EncodeToString([]byte("LEAK"))},
	{"status with escaped strings", "02FFFF80FFFFFFFFFFFFFF" + "FFFFFFFF" + hex.EncodeToString([]byte("<&>\"\\\x01\x08\x0c\n\r\t\x7f\x80\xe9\xff\x00")) +
		"06" + hex.EncodeToString([]byte("TA\x00MP\u2028"[:6]))},
}

// TestReportGolden pins what a report leaves in history, in the shadow and
// in the push bodies of deviceDataChanged and deviceDatasChanged, byte for
// byte (testdata/report.golden; go test -update rewrites it). Each report
// is encoded once; these bytes must stay what the platform wrote when it
// encoded maps with encoding/json.
func TestReportGolden(t *testing.T) {
	tp := startPlatform(t)
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer hook.Close()
	for _, nt := range []string{"deviceDataChanged", "deviceDatasChanged"} {
		require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
			map[string]any{"notifyType": nt, "callbackUrl": hook.URL + "/" + nt}, nil))
	}
	const imei = "868333030000071"
	id, _ := registerDevice(t, tp, imei)
	ctx := context.Background()
	d, err := tp.reg.GetByNodeID(ctx, imei)
	require.NoError(t, err)
	anon := strings.NewReplacer(id, "<deviceId>", tp.app.ID, "<appId>").Replace

	var out bytes.Buffer
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pushed := 0
	for i, c := range reportGoldenPayloads {
		payload, err := hex.DecodeString(c.hex)
		require.NoError(t, err, c.name)
		at := at.Add(time.Duration(i) * time.Minute)
		require.NoError(t, tp.uplink(ctx, d, imei, payload, at, &effects{}), c.name)
		recs, _, err := tp.db.History().Query(store.HistoryQuery{DeviceID: id, Since: at, Until: at, Page: -1})
		require.NoError(t, err, c.name)
		slices.SortFunc(recs, func(a, b store.HistoryRecord) int { return strings.Compare(a.ServiceID, b.ServiceID) })
		shadow, err := tp.db.Shadow().Get(id)
		require.NoError(t, err, c.name)
		// The store adds a report's new services in map order.
		slices.SortFunc(shadow, func(a, b store.ServiceShadow) int { return strings.Compare(a.ServiceID, b.ServiceID) })
		if len(recs) > 0 {
			pushed += len(recs) + 1 // one deviceDataChanged per service, one deviceDatasChanged
		}
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(bodies) == pushed
		}, 10*time.Second, 5*time.Millisecond, "%s: %d pushes delivered", c.name, pushed)
		mu.Lock()
		got := slices.Clone(bodies[pushed-len(recs)-min(len(recs), 1):])
		mu.Unlock()
		slices.SortFunc(got, bytes.Compare)

		out.WriteString("== " + c.name + " " + c.hex + "\n-- history\n")
		for _, r := range recs {
			b, err := json.Marshal(r)
			require.NoError(t, err)
			out.WriteString(anon(string(b)) + "\n")
		}
		b, err := json.Marshal(shadow)
		require.NoError(t, err)
		out.WriteString("-- shadow\n" + anon(string(b)) + "\n-- pushes\n")
		for _, b := range got {
			out.WriteString(anon(string(b)) + "\n")
		}
	}
	golden := filepath.Join("testdata", "report.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -run TestReportGolden -update to write it")
	require.Equal(t, string(want), out.String(), "history, shadow and push bodies of the golden reports")
}

// mapsOnly hides the declarative codec's record path: it decodes into
// maps, as a hand-written codec does.
type mapsOnly struct{ codec.Codec }

// TestDecodeUplinkPaths: a report decoded through the codec's record path
// gives the services, JSON bytes and shadow values that decoding into maps
// and encoding them with encoding/json gives.
func TestDecodeUplinkPaths(t *testing.T) {
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	var _ recordDecoder = cd
	for _, c := range reportGoldenPayloads {
		payload, err := hex.DecodeString(c.hex)
		require.NoError(t, err)
		rec, err := decodeUplink(cd, payload)
		require.NoError(t, err, c.name)
		maps, err := decodeUplink(mapsOnly{cd}, payload)
		require.NoError(t, err, c.name)
		require.True(t, rec.report && maps.report, c.name)
		require.Len(t, rec.services, len(maps.services), c.name)
		for i, want := range maps.services {
			got := rec.services[i]
			require.Equal(t, want.id, got.id, c.name)
			require.Equal(t, string(want.data), string(got.data), "%s: JSON of service %s", c.name, want.id)
			require.Equal(t, want.values, got.values, "%s: values of service %s", c.name, want.id)
			ws, _ := json.Marshal(want.shadow)
			gs, _ := json.Marshal(got.shadow)
			require.Equal(t, string(ws), string(gs), "%s: shadow of service %s", c.name, want.id)
		}
	}
	rsp, err := decodeUplink(cd, []byte{0x03, 0x00, 0x07, 0x00})
	require.NoError(t, err)
	require.False(t, rsp.report)
	require.Equal(t, &codec.Response{Identifier: "0", MsgType: codec.MsgResponse, Mid: 7, Body: map[string]any{"result": int64(0)}}, rsp.msg)
}

// BenchmarkReportDecode is the decode, check and encode stages of one
// demo-meter reading (three services) on the platform, both ways in one
// run: maps (Decode, then encoding/json and back for the shadow) against
// the codec's record path.
func BenchmarkReportDecode(b *testing.B) {
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(b, err)
	cat, _, err := profile.LoadZip(bytes.NewReader(demoProfile), int64(len(demoProfile)), demoProfileName, nil)
	require.NoError(b, err)
	payload, _ := hex.DecodeString(reportGoldenPayloads[0].hex)
	for _, c := range []struct {
		name string
		cd   codec.Codec
	}{{"maps", mapsOnly{cd}}, {"record", cd}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				u, err := decodeUplink(c.cd, payload)
				if err != nil || len(u.services) != 3 {
					b.Fatalf("decodeUplink = %+v, %v", u, err)
				}
				for _, sv := range u.services {
					if err := cat.CheckReport(sv.id, sv.values); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
