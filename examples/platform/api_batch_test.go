package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

const batchPath = "/iocm/app/reg/v1.1.0/deviceCredentials/batch"

// batchAnswer is the answer of a batch registration.
type batchAnswer struct {
	TotalCount   int        `json:"totalCount"`
	SuccessCount int        `json:"successCount"`
	FailCount    int        `json:"failCount"`
	Results      []batchRow `json:"results"`
}

// postBatch sends body with contentType to the batch call and returns the
// status, the answer (on 200) and the error body (otherwise).
func (tp *testPlatform) postBatch(t *testing.T, contentType string, body []byte) (int, batchAnswer, apiError) {
	t.Helper()
	resp := tp.appRequest(t, "POST", batchPath, contentType, bytes.NewReader(body))
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var a batchAnswer
	var e apiError
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(raw, &a), "batch answer: %s", raw)
	} else {
		require.NoError(t, json.Unmarshal(raw, &e), "error answers are JSON {error_code, error_desc}: %s", raw)
	}
	return resp.StatusCode, a, e
}

// csvUpload is csv in the multipart field "file".
func csvUpload(t *testing.T, csv string) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", "devices.csv")
	require.NoError(t, err)
	fw.Write([]byte(csv))
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), buf.Bytes()
}

func demoRow(imei string) map[string]any {
	return map[string]any{"nodeId": imei, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
		"deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}}
}

// TestBatchJSONPartialSuccess: a JSON array registers the good rows and
// fails the bad ones, each with its own row in input order (APP-4); a
// registered row's credentials work: the device connects over DTLS with
// the PSK of its row and is bound.
func TestBatchJSONPartialSuccess(t *testing.T) {
	tp := startPlatform(t)
	registerDevice(t, tp, "863000000000009") // already on the platform
	bad := demoRow("863000000000002")
	bad["psk"] = "xyz"
	unknown := demoRow("863000000000003")
	unknown["deviceInfo"].(map[string]any)["model"] = "NoSuchModel"
	rows := []any{demoRow("863000000000001"), bad, unknown, "not an object", demoRow("863000000000009"), demoRow("863000000000004")}
	body, err := json.Marshal(rows)
	require.NoError(t, err)

	status, a, e := tp.postBatch(t, "application/json", body)
	require.Equal(t, http.StatusOK, status, "a batch with bad rows still answers 200: %+v", e)
	require.Equal(t, 6, a.TotalCount)
	require.Equal(t, 2, a.SuccessCount)
	require.Equal(t, 4, a.FailCount)
	require.Len(t, a.Results, 6)
	for i, want := range []string{"", "invalid_psk", "unknown_product", "bad_row", "conflict", ""} {
		res := a.Results[i]
		require.Equal(t, i+1, res.Row, "results come in input order")
		require.Equal(t, want, res.ErrorCode, "row %d: %+v", i+1, res)
		if want == "" {
			require.NotEmpty(t, res.DeviceID, "row %d registered: %+v", i+1, res)
			require.Len(t, res.PSK, 32, "row %d: a 16-byte PSK as hex (REG-1)", i+1)
			require.Equal(t, res.NodeID, res.VerifyCode, "verifyCode defaults to nodeId")
			continue
		}
		require.Empty(t, res.DeviceID, "a failed row has no device")
		require.Contains(t, res.ErrorDesc, fmt.Sprintf("row %d (array element %d)", i+1, i), "the error names its row")
	}
	require.Contains(t, a.Results[1].ErrorDesc, "psk")

	// The failed rows left nothing behind; the good ones are devices.
	for _, imei := range []string{"863000000000002", "863000000000003"} {
		_, err := tp.reg.GetByNodeID(context.Background(), imei)
		require.Error(t, err, "failed row %s registered nothing", imei)
	}
	res := a.Results[0]
	var cred map[string]any
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/reg/v1.1.0/deviceCredentials/"+res.DeviceID, nil, &cred))
	require.Equal(t, false, cred["activated"])

	psk, err := hex.DecodeString(res.PSK)
	require.NoError(t, err)
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: res.NodeID, Key: psk,
		Objects: "</1/0>,</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx), "DTLS with the PSK of the batch row")
	require.NoError(t, c.Register(ctx))
	require.Eventually(t, func() bool {
		tp.call(t, "GET", "/iocm/app/reg/v1.1.0/deviceCredentials/"+res.DeviceID, nil, &cred)
		return cred["activated"] == true
	}, 10*time.Second, 20*time.Millisecond, "the batch-registered device is bound once it connects")
}

// TestBatchCSVDuplicateRow: a CSV upload with a repeated nodeId registers
// the first and fails the repeat with duplicate_row naming both lines;
// columns come in any order, case-insensitive, a BOM is ignored.
func TestBatchCSVDuplicateRow(t *testing.T) {
	tp := startPlatform(t)
	csv := "\xef\xbb\xbfNodeId,model,manufacturerId,deviceType,protocolType,psk,timeout,name\n" +
		fmt.Sprintf("863000000000011,%s,%s,%s,LWM2M,00112233445566778899aabbccddeeff,3600,first\n", demoModel, demoManufacturerID, demoDeviceType) +
		fmt.Sprintf("863000000000012,%s,%s,%s,LWM2M,,,second\n", demoModel, demoManufacturerID, demoDeviceType) +
		fmt.Sprintf("urn:imei:863000000000011,%s,%s,%s,LWM2M,,,again\n", demoModel, demoManufacturerID, demoDeviceType) +
		"863000000000013,short\n" +
		fmt.Sprintf("863000000000014,%s,%s,%s,LWM2M,,-5,negative\n", demoModel, demoManufacturerID, demoDeviceType)
	ct, body := csvUpload(t, csv)
	status, a, e := tp.postBatch(t, ct, body)
	require.Equal(t, http.StatusOK, status, "%+v", e)
	require.Len(t, a.Results, 5)
	require.Equal(t, 2, a.SuccessCount)

	first := a.Results[0]
	require.Equal(t, 2, first.Row, "row numbers are CSV lines; the header is line 1")
	require.Empty(t, first.ErrorCode, "%+v", first)
	require.Equal(t, "00112233445566778899aabbccddeeff", first.PSK, "the PSK of the CSV is kept")
	require.Equal(t, int64(3600), *first.Timeout)
	d, err := tp.reg.Get(context.Background(), first.DeviceID)
	require.NoError(t, err)
	require.Equal(t, "first", d.Info.Name)

	require.Empty(t, a.Results[1].ErrorCode)

	dup := a.Results[2]
	require.Equal(t, "duplicate_row", dup.ErrorCode, "%+v", dup)
	require.Contains(t, dup.ErrorDesc, "row 4 (CSV line 4)")
	require.Contains(t, dup.ErrorDesc, "row 2 of this batch")

	require.Equal(t, "bad_row", a.Results[3].ErrorCode)
	require.Contains(t, a.Results[3].ErrorDesc, "CSV line 5")
	require.Contains(t, a.Results[3].ErrorDesc, "2 fields; the header names 8 columns")

	require.Equal(t, "invalid_timeout", a.Results[4].ErrorCode)
	require.Contains(t, a.Results[4].ErrorDesc, "CSV line 6")

	// The same CSV as a text/csv body: every row is now taken.
	status, a, e = tp.postBatch(t, "text/csv", []byte(csv))
	require.Equal(t, http.StatusOK, status, "%+v", e)
	require.Equal(t, 0, a.SuccessCount)
	require.Equal(t, "conflict", a.Results[0].ErrorCode, "a nodeId registered by an earlier call: 409's code")
}

// TestBatchBounds: over 1,000 rows, over 4 MiB, an empty batch, a bad
// header, broken quoting and a body that is no array are refused whole,
// with the limit named, and register nothing.
func TestBatchBounds(t *testing.T) {
	tp := startPlatform(t)
	rows := make([]any, maxBatchRows+1)
	for i := range rows {
		rows[i] = demoRow(fmt.Sprintf("8640%011d", i))
	}
	tooMany, err := json.Marshal(rows)
	require.NoError(t, err)
	var csvMany strings.Builder
	csvMany.WriteString("nodeId\n")
	for i := range maxBatchRows + 1 {
		fmt.Fprintf(&csvMany, "8650%011d\n", i)
	}
	huge := "[" + strings.Repeat(" ", maxBatchBody) + "]"

	for _, c := range []struct {
		name, ct, body string
		status         int
		code, desc     string
	}{
		{"1001 JSON rows", "application/json", string(tooMany), http.StatusRequestEntityTooLarge, "too_many_rows", "at most 1000"},
		{"1001 CSV rows", "text/csv", csvMany.String(), http.StatusRequestEntityTooLarge, "too_many_rows", "at most 1000"},
		{"over 4 MiB", "application/json", huge, http.StatusRequestEntityTooLarge, "upload_too_large", "4 MiB"},
		{"empty array", "application/json", "[]", http.StatusBadRequest, "empty_batch", "1 to 1000"},
		{"an object", "application/json", `{"nodeId":"1"}`, http.StatusBadRequest, "bad_json", "JSON array"},
		{"empty CSV", "text/csv", "", http.StatusBadRequest, "empty_batch", "name the columns"},
		{"header only", "text/csv", "nodeId\n", http.StatusBadRequest, "empty_batch", "no rows"},
		{"unknown column", "text/csv", "nodeId,colour\n1,red\n", http.StatusBadRequest, "bad_csv", `column 2 is named "colour"`},
		{"no nodeId column", "text/csv", "name\nx\n", http.StatusBadRequest, "bad_csv", "no nodeId column"},
		{"repeated column", "text/csv", "nodeId,NODEID\n1,2\n", http.StatusBadRequest, "bad_csv", "repeats"},
		{"broken quote", "text/csv", "nodeId,name\n1,\"open\n2,x\n", http.StatusBadRequest, "bad_csv", "CSV line"},
		{"XML", "application/xml", "<x/>", http.StatusUnsupportedMediaType, "bad_content_type", "JSON array"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, e := tp.postBatch(t, c.ct, []byte(c.body))
			require.Equal(t, c.status, status, "%+v", e)
			require.Equal(t, c.code, e.Code)
			require.Contains(t, e.Desc, c.desc)
		})
	}
	_, n, err := tp.reg.List(context.Background(), registry.Query{PageSize: 1})
	require.NoError(t, err)
	require.Zero(t, n, "a refused batch registers nothing")
}

// TestBatchThousand: exactly 1,000 rows are taken in one call, every one
// registered.
func TestBatchThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 1,000 devices")
	}
	tp := startPlatform(t)
	var b strings.Builder
	b.WriteString("nodeId,manufacturerId,deviceType,model,protocolType\n")
	for i := range maxBatchRows {
		fmt.Fprintf(&b, "8660%011d,%s,%s,%s,LWM2M\n", i, demoManufacturerID, demoDeviceType, demoModel)
	}
	ct, body := csvUpload(t, b.String())
	start := time.Now()
	status, a, e := tp.postBatch(t, ct, body)
	took := time.Since(start)
	require.Equal(t, http.StatusOK, status, "%+v", e)
	require.Equal(t, maxBatchRows, a.SuccessCount, "first failure: %+v", firstFailure(a))
	_, n, err := tp.reg.List(context.Background(), registry.Query{PageSize: 1})
	require.NoError(t, err)
	require.Equal(t, maxBatchRows, n)
	t.Logf("1,000 devices registered in one call in %v", took)
}

func firstFailure(a batchAnswer) batchRow {
	for _, r := range a.Results {
		if r.ErrorCode != "" {
			return r
		}
	}
	return batchRow{}
}

// fuzzBatch feeds seeds and arbitrary bodies to parse: no panic; the body
// is refused with an httpError, or parses into 1 to maxBatchRows rows,
// each passing check (i is its index).
func fuzzBatch(f *testing.F, parse func([]byte) ([]batchInput, error), seeds []string, check func(t *testing.T, i int, r batchInput)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := parse(b)
		if err != nil {
			var he *httpError
			require.ErrorAs(t, err, &he)
			return
		}
		require.NotEmpty(t, rows)
		require.LessOrEqual(t, len(rows), maxBatchRows)
		for i, r := range rows {
			check(t, i, r)
		}
	})
}

// FuzzBatchCSV: any file parses without panic into at most 1,000 rows,
// each with a line number, or is refused with an httpError.
func FuzzBatchCSV(f *testing.F) {
	fuzzBatch(f, parseBatchCSV, []string{"nodeId\n1\n", "\xef\xbb\xbfnodeId,timeout,psk\n1,5,00\n2,x\n", "nodeId,name\n1,\"a\"\"b\"\n",
		"nodeId,name\n1,\"open\n", "name\n", "", "nodeId,nodeid\n", "nodeId,timeout\n1,99999999999\n"},
		func(t *testing.T, _ int, r batchInput) {
			require.Greater(t, r.row, 1, "data rows start after the header line")
		})
}

// FuzzBatchJSON: any body parses without panic into 1 to 1,000 rows
// numbered 1, 2, …, or is refused with an httpError.
func FuzzBatchJSON(f *testing.F) {
	fuzzBatch(f, parseBatchJSON, []string{`[{"nodeId":"1"}]`, `[1,"x",null,{}]`, `{}`, `[]`, `[{"timeout":-1}]`, `[{"deviceInfo":[]}]`},
		func(t *testing.T, i int, r batchInput) {
			require.Equal(t, i+1, r.row)
		})
}

// BenchmarkBatchRegister registers 1,000 devices per op, one row at a time
// and batchWorkers at a time: concurrent rows share the store's commits
// (one disk sync for many).
func BenchmarkBatchRegister(b *testing.B) {
	for _, workers := range []int{1, batchWorkers} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			tp := startPlatform(b)
			n := 0
			for b.Loop() {
				rows := make([]batchInput, maxBatchRows)
				for i := range rows {
					rows[i] = batchInput{row: i + 1, body: registrationJSON{NodeID: fmt.Sprintf("867%012d", n),
						DeviceInfo: deviceInfoJSON{ManufacturerID: demoManufacturerID, DeviceType: demoDeviceType, Model: demoModel, ProtocolType: "LWM2M"}}}
					n++
				}
				for _, r := range tp.runBatch(context.Background(), tp.app.ID, rows, workers) {
					if r.ErrorCode != "" {
						b.Fatalf("row %d: %s", r.Row, r.ErrorDesc)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/1000rows")
		})
	}
}
