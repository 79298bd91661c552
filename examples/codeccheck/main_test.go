package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/stretchr/testify/require"
)

func TestImports(t *testing.T) { deptest.Check(t) }

const (
	waterMeter = "../../codec/testdata/watermeter.json"
	reading    = "0155FFAB0001E24000960010"
)

// COD-5: hex to JSON, JSON to hex, and every validation problem.
func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings, in order
		stderr   string
		exactOut string
	}{
		{name: "check ok", args: []string{"-codec", waterMeter, "-check"}, code: 0, exactOut: waterMeter + ": ok\n"},
		{name: "check broken", args: []string{"-codec", "../../codec/testdata/broken/mid-position.json", "-check"}, code: 1,
			stdout: []string{"mid-position.json:5:42: message rsp, field mid: [mid-position] mid is field 2 here but field 1 in command \"cmd\""}, stderr: "1 problem(s)"},
		{name: "check lists all", args: []string{"-codec", "testdata/many.json", "-check"}, code: 1,
			stdout: []string{"many.json:6:7: message a, field x: [default-not-hex]", "many.json:9:7: message b, field text: [length-field]",
				"many.json:10:5: message c: [bad-kind]", "many.json:8:7: message b, field id: [duplicate-message-id]"}, stderr: "4 problem(s)"},
		{name: "decode report", args: []string{"-codec", waterMeter, "-hex", "01 55 FF AB 00 01 E2 40 00 96 00 10"}, code: 0,
			stdout: []string{`"msgType": "deviceReq"`, `"serviceId": "Battery"`, `"batteryLevel": 85`, `"signalStrength": -85`, `"totalFlow": 123.456`},
			stderr: "acknowledges this report with 1100"},
		{name: "decode report without ACK", args: []string{"-codec", "../../codec/testdata/lock.json", "-hex", "02500159"}, code: 0,
			stdout: []string{`"batteryVoltage": 3.45`}, stderr: "does not acknowledge this report"},
		{name: "decode response", args: []string{"-codec", waterMeter, "-hex", "0x03001100"}, code: 0,
			stdout: []string{`"msgType": "deviceRsp"`, `"errcode": 0`, `"mid": 17`, `"result": 0`}},
		{name: "decode downlink", args: []string{"-codec", waterMeter, "-hex", "10000700000258", "-downlink"}, code: 0,
			stdout: []string{`"msgType": "cloudReq"`, `"serviceId": "Meter"`, `"cmd": "SET_REPORT_PERIOD"`, `"period": 600`, `"mid": 7`}},
		{name: "decode error", args: []string{"-codec", waterMeter, "-hex", "0155FFAB0001E240009600"}, code: 1,
			stderr: "codeccheck: codec: message meterReading, field pulseCount at byte 10: need 2 bytes, 1 left"},
		{name: "decode PCP", args: []string{"-codec", waterMeter, "-hex", "FFFE0114"}, code: 1, stderr: "PCP"},
		{name: "bad hex", args: []string{"-codec", waterMeter, "-hex", "0G"}, code: 1, stderr: "not hexadecimal"},
		{name: "encode command", args: []string{"-codec", waterMeter, "-json",
			`{"identifier":"0","msgType":"cloudReq","serviceId":"Meter","cmd":"SET_REPORT_PERIOD","paras":{"period":600},"hasMore":0,"mid":7}`},
			code: 0, exactOut: "10000700000258\n"},
		{name: "encode assigns mid", args: []string{"-codec", waterMeter, "-json",
			`{"msgType":"cloudReq","serviceId":"Meter","cmd":"SET_REPORT_PERIOD","paras":{}}`},
			code: 0, exactOut: "10000100000E10\n", stderr: "assigned mid 1"},
		{name: "encode report", args: []string{"-codec", waterMeter, "-json",
			`{"msgType":"deviceReq","data":[{"serviceId":"Battery","serviceData":{"batteryLevel":85}},{"serviceId":"Connectivity","serviceData":{"signalStrength":-85}},{"serviceId":"Meter","serviceData":{"totalFlow":123.456,"flowRate":1.5,"pulseCount":16}}]}`},
			code: 0, exactOut: reading + "\n"},
		{name: "encode ack", args: []string{"-codec", waterMeter, "-json", `{"msgType":"cloudRsp","request":"AVX/qwAB4kAAlgAQ","errcode":0}`},
			code: 0, exactOut: "1100\n"},
		{name: "encode refuses 300 into uint8", args: []string{"-codec", waterMeter, "-json",
			`{"msgType":"deviceReq","data":[{"serviceId":"Battery","serviceData":{"batteryLevel":300}},{"serviceId":"Connectivity","serviceData":{"signalStrength":-85}},{"serviceId":"Meter","serviceData":{"totalFlow":1,"flowRate":1,"pulseCount":1}}]}`},
			code: 1, stderr: "field batteryLevel at byte 1: 300 does not fit uint8 (0…255)"},
		{name: "bad json", args: []string{"-codec", waterMeter, "-json", `{"msgType":"nope"}`}, code: 1, stderr: "msgType \"nope\""},
		{name: "no mode", args: []string{"-codec", waterMeter}, code: 2, stderr: "exactly one of"},
		{name: "two modes", args: []string{"-codec", waterMeter, "-check", "-hex", "00"}, code: 2, stderr: "exactly one of"},
		{name: "no codec", args: []string{"-check"}, code: 2, stderr: "give -codec"},
		{name: "missing file", args: []string{"-codec", "nope.json", "-check"}, code: 1, stderr: "nope.json"},
		{name: "unknown flag", args: []string{"-frobnicate"}, code: 2, stderr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			require.Equal(t, tt.code, code, "run(%q): stdout %q stderr %q", tt.args, out.String(), errOut.String())
			if tt.exactOut != "" {
				require.Equal(t, tt.exactOut, out.String())
			}
			rest := out.String()
			for _, s := range tt.stdout {
				i := strings.Index(rest, s)
				require.GreaterOrEqual(t, i, 0, "stdout lacks %q (in order):\n%s", s, out.String())
				rest = rest[i+len(s):]
			}
			require.Contains(t, errOut.String(), tt.stderr)
		})
	}
}

// The built binary does what run does (COD-5).
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tool")
	}
	bin := filepath.Join(t.TempDir(), "codeccheck")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "go build")

	out, err := exec.Command(bin, "-codec", waterMeter, "-hex", reading).Output()
	require.NoError(t, err)
	require.Contains(t, string(out), `"totalFlow": 123.456`)

	cmd := exec.Command(bin, "-codec", "../../codec/testdata/broken/duplicate-message-id.json", "-check")
	out, err = cmd.Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, string(out), "[duplicate-message-id]")
}

// COD-3 through the tool: the testdata codecs fit the products of the
// profile package's testdata, as a zip, a directory and a JSON model; a
// codec checked against the wrong product lists every field it cannot map.
func TestRunProfile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "WaterMeter_DozeLabs_WM100")
	unzip(t, "testdata/WaterMeter_DozeLabs_WM100.zip", dir)
	lock := "../../codec/testdata/lock.json"
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"water meter zip", []string{"-codec", waterMeter, "-profile", "testdata/WaterMeter_DozeLabs_WM100.zip", "-check"}, 0, []string{": ok"}, ""},
		{"water meter dir", []string{"-codec", waterMeter, "-profile", dir, "-check"}, 0, []string{": ok"}, ""},
		{"water meter JSON model", []string{"-codec", waterMeter, "-profile", "testdata/WaterMeter_DozeLabs_WM100.json", "-check"}, 0, []string{": ok"}, ""},
		{"lock zip", []string{"-codec", lock, "-profile", "testdata/SmartLock_DozeLabs_SL2.zip", "-check"}, 0, []string{": ok"}, ""},
		{"decode with profile", []string{"-codec", waterMeter, "-profile", "testdata/WaterMeter_DozeLabs_WM100.zip", "-hex", reading}, 0,
			[]string{`"totalFlow": 123.456`}, ""},
		{"lock against water meter", []string{"-codec", lock, "-profile", "testdata/WaterMeter_DozeLabs_WM100.zip", "-check"}, 1,
			[]string{"message lockEvent, field doorOpen: [unknown-property] the product model has no property doorOpen of service Lock",
				"message unlock, field holdSeconds: [unknown-property]", "message unlockResult, field lockState: [unknown-property] the product model has no response para lockState of command UNLOCK"},
			"problem(s)"},
		{"water meter against lock", []string{"-codec", waterMeter, "-profile", "testdata/SmartLock_DozeLabs_SL2.zip", "-check"}, 1,
			[]string{"message meterReading, field signalStrength: [unknown-property]"}, ""},
		{"not a profile", []string{"-codec", waterMeter, "-profile", "testdata/many.json", "-check"}, 1, nil, "codeccheck: profile testdata/many.json: profile:"},
		{"no such profile", []string{"-codec", waterMeter, "-profile", "testdata/nope.zip", "-check"}, 1, nil, "nope.zip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			require.Equal(t, tt.code, code, "run(%q): stdout %q stderr %q", tt.args, out.String(), errOut.String())
			rest := out.String()
			for _, s := range tt.stdout {
				i := strings.Index(rest, s)
				require.GreaterOrEqual(t, i, 0, "stdout lacks %q (in order):\n%s", s, out.String())
				rest = rest[i+len(s):]
			}
			require.Contains(t, errOut.String(), tt.stderr)
		})
	}
}

func unzip(t *testing.T, name, dir string) {
	t.Helper()
	zr, err := zip.OpenReader(name)
	require.NoError(t, err)
	defer zr.Close()
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		r, err := f.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(r)
		r.Close()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, data, 0o644))
	}
}
