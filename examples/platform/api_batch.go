package main

// Batch registration (APP-4, FAQ §2.10): up to maxBatchRows devices in one
// call, a JSON array of registration bodies or a CSV file, one result row
// each in input order. Rows succeed or fail on their own; the call fails
// as a whole only when the body cannot be read as rows at all.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/doze-io/doze/registry"
)

// Batch limits (APP-4; our choice for the body size: 1,000 rows of the
// longest fields the registry allows fit).
const (
	maxBatchRows    = 1000
	maxBatchBody    = 4 << 20 // bytes of the JSON array or the CSV file
	batchWorkers    = 32      // rows registered at once: their store writes share commits
	csvTimeoutLimit = 2147483647
)

// batchColumns are the CSV columns a header row may name (docs/api.md), in
// the documented order. Only nodeId is required.
var batchColumns = []string{"nodeId", "verifyCode", "psk", "timeout", "manufacturerId", "deviceType", "model",
	"protocolType", "name", "mode", "manufacturerName", "security"}

// batchRow is one row of the answer, in input order. Row is 1-based: the
// array index + 1 for JSON, the line of the CSV file (the header is line 1).
type batchRow struct {
	Row        int               `json:"row"`
	NodeID     string            `json:"nodeId"`
	DeviceID   string            `json:"deviceId,omitempty"`
	VerifyCode string            `json:"verifyCode,omitempty"`
	Timeout    *int64            `json:"timeout,omitempty"`
	PSK        string            `json:"psk,omitempty"`
	Security   registry.Security `json:"security,omitempty"`
	Secret     string            `json:"secret,omitempty"`
	ErrorCode  string            `json:"error_code,omitempty"`
	ErrorDesc  string            `json:"error_desc,omitempty"`
}

// batchInput is one parsed row: its registration body, or why it could not
// be read.
type batchInput struct {
	row   int
	where string // "array element 0" or "CSV line 2", for error texts
	body  registrationJSON
	err   error
}

// registerBatch registers every row of a JSON array or a CSV upload and
// answers 200 with one result per row (APP-4). A batch counts as an upload
// (SEC-3): only so many are read and registered at once, in all and per
// app.
func (p *Platform) registerBatch(w http.ResponseWriter, r *http.Request) error {
	rows, err := p.readBatch(w, r)
	if err != nil {
		return err
	}
	release, err := p.uploads.acquire(w, appOf(r))
	if err != nil {
		return err
	}
	defer release()
	results := p.runBatch(r.Context(), appOf(r), rows, batchWorkers)
	ok := 0
	for _, res := range results {
		if res.ErrorCode == "" {
			ok++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(results), "successCount": ok,
		"failCount": len(results) - ok, "results": results})
	return nil
}

// readBatch reads the rows of a batch: a JSON array (application/json),
// a CSV file (text/csv), or a CSV file in the multipart field "file".
func (p *Platform) readBatch(w http.ResponseWriter, r *http.Request) ([]batchInput, error) {
	const usage = `a JSON array of registrations, or a CSV file (text/csv, or the multipart field "file") with a header row`
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		var rows []batchInput
		var have bool
		_, err := p.readUpload(w, r, `the multipart field "file" with a CSV file`, map[string]filePart{
			"file": {limit: maxBatchBody, consume: func(_ string, rd io.Reader) error {
				b, err := io.ReadAll(rd)
				if err != nil {
					return err
				}
				have = true
				rows, err = parseBatchCSV(b)
				return err
			}},
		})
		if err != nil {
			return nil, err
		}
		if !have {
			return nil, badRequest("missing_file", `the multipart field "file" with the CSV file is missing`)
		}
		return rows, nil
	case "text/csv":
		b, err := p.readCapped(w, r, maxBatchBody, "the CSV body")
		if err != nil {
			return nil, err
		}
		return parseBatchCSV(b)
	case "application/json", "":
		b, err := p.readCapped(w, r, maxBatchBody, "the JSON body")
		if err != nil {
			return nil, err
		}
		return parseBatchJSON(b)
	}
	return nil, &httpError{Status: http.StatusUnsupportedMediaType, Code: "bad_content_type",
		Err: fmt.Errorf("Content-Type %q is not taken here; send %s", mt, usage)}
}

// readCapped reads r's body of at most limit bytes, under an upload slot;
// a larger one is 413.
func (p *Platform) readCapped(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, error) {
	release, err := p.uploads.acquire(w, appOf(r))
	if err != nil {
		return nil, err
	}
	defer release()
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if isMaxBytes(err) {
		return nil, tooLarge(what, limit)
	}
	if err != nil {
		return nil, badRequest("bad_body", "reading the request body: %v", err)
	}
	return b, nil
}

// tooManyRows is the refusal of a batch over maxBatchRows.
func tooManyRows(n string) error {
	return &httpError{Status: http.StatusRequestEntityTooLarge, Code: "too_many_rows",
		Err: fmt.Errorf("the batch has %s rows; at most %d devices are registered in one call, split it", n, maxBatchRows)}
}

// parseBatchJSON reads a JSON array of registration bodies. An element
// that is not a registration object fails its own row only.
func parseBatchJSON(b []byte) ([]batchInput, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, badRequest("bad_json", "the body is not valid JSON at byte %d: %v", se.Offset, err)
		}
		return nil, badRequest("bad_json", "the body must be a JSON array of registrations: %v", err)
	}
	if len(elems) == 0 {
		return nil, badRequest("empty_batch", "the batch has no rows; send 1 to %d registrations", maxBatchRows)
	}
	if len(elems) > maxBatchRows {
		return nil, tooManyRows(strconv.Itoa(len(elems)))
	}
	rows := make([]batchInput, len(elems))
	for i, e := range elems {
		rows[i].row, rows[i].where = i+1, fmt.Sprintf("array element %d", i)
		dec := json.NewDecoder(bytes.NewReader(e))
		if err := dec.Decode(&rows[i].body); err != nil || !bytes.HasPrefix(bytes.TrimSpace(e), []byte("{")) {
			why := "it is not a JSON object"
			if err != nil {
				why = err.Error()
			}
			rows[i].err = badRequest("bad_row", "not a registration object: %s", why)
		}
	}
	return rows, nil
}

// parseBatchCSV reads a CSV file whose header row names the columns (any
// order, names as in batchColumns, case-insensitive). A line with the
// wrong number of fields fails its own row; a bad header fails the call.
func parseBatchCSV(b []byte) ([]batchInput, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a BOM, as spreadsheet programs write
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = -1 // checked per row below, so that a short line fails only itself
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, badRequest("empty_batch", "the CSV file is empty; its first line must name the columns (%s)", strings.Join(batchColumns, ", "))
	}
	if err != nil {
		return nil, badRequest("bad_csv", "the CSV header line: %v", err)
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		for _, c := range batchColumns {
			if strings.EqualFold(h, c) {
				cols[i] = c
			}
		}
		switch {
		case cols[i] == "":
			return nil, badRequest("bad_csv", "CSV column %d is named %q; the columns a header may name are %s", i+1, h, strings.Join(batchColumns, ", "))
		case seen[cols[i]]:
			return nil, badRequest("bad_csv", "CSV column %d repeats the column %q", i+1, h)
		}
		seen[cols[i]] = true
	}
	if !seen["nodeId"] {
		return nil, badRequest("bad_csv", "the CSV header names no nodeId column; it names %q", header)
	}
	var rows []batchInput
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// Quoting broken: the reader cannot tell where rows start again.
			return nil, badRequest("bad_csv", "CSV line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
		}
		if err != nil {
			return nil, badRequest("bad_csv", "reading the CSV file: %v", err)
		}
		if len(rows) == maxBatchRows {
			return nil, tooManyRows("more than " + strconv.Itoa(maxBatchRows))
		}
		line, _ := cr.FieldPos(0)
		in := batchInput{row: line, where: fmt.Sprintf("CSV line %d", line)}
		if len(rec) != len(cols) {
			in.err = badRequest("bad_row", "%d fields; the header names %d columns", len(rec), len(cols))
		} else {
			in.body, in.err = csvRegistration(cols, rec)
		}
		rows = append(rows, in)
	}
	if len(rows) == 0 {
		return nil, badRequest("empty_batch", "the CSV file has a header but no rows; send 1 to %d devices", maxBatchRows)
	}
	return rows, nil
}

// csvRegistration makes a registration body of one CSV record; empty
// fields are absent.
func csvRegistration(cols, rec []string) (registrationJSON, error) {
	var body registrationJSON
	info := &body.DeviceInfo
	for i, c := range cols {
		v := strings.TrimSpace(rec[i])
		if v == "" {
			continue
		}
		switch c {
		case "nodeId":
			body.NodeID = v
		case "verifyCode":
			body.VerifyCode = v
		case "psk":
			body.PSK = v
		case "security":
			body.Security = v
		case "timeout":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > csvTimeoutLimit {
				return body, badRequest("invalid_timeout", "timeout %q must be a whole number of seconds from 0 (never expires) to %d", v, csvTimeoutLimit)
			}
			body.Timeout = &n
		case "manufacturerId":
			info.ManufacturerID = v
		case "manufacturerName":
			info.ManufacturerName = v
		case "deviceType":
			info.DeviceType = v
		case "model":
			info.Model = v
		case "protocolType":
			info.ProtocolType = v
		case "name":
			info.Name = v
		case "mode":
			info.Mode = v
		}
	}
	return body, nil
}

// runBatch registers the rows, workers at a time (their store writes share
// commits), and returns one result per row in input order. A later
// row with the nodeId of an earlier one is refused as a duplicate before
// anything runs, so the first one wins however the workers interleave.
func (p *Platform) runBatch(ctx context.Context, app string, rows []batchInput, workers int) []batchRow {
	out := make([]batchRow, len(rows))
	first := map[string]int{} // NodeKey → row
	for i, in := range rows {
		out[i] = batchRow{Row: in.row, NodeID: in.body.NodeID}
		if in.err != nil {
			continue
		}
		key := registry.NodeKey(strings.TrimSpace(in.body.NodeID))
		if key == "" {
			continue // the registry names the missing nodeId
		}
		if at, dup := first[key]; dup {
			rows[i].err = conflict("duplicate_row", "nodeId %q is also in row %d of this batch, which registers it", in.body.NodeID, at)
			continue
		}
		first[key] = in.row
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(rows)) {
		wg.Go(func() {
			for i := range next {
				out[i] = p.batchOne(ctx, app, rows[i], out[i])
			}
		})
	}
	for i := range rows {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// batchOne registers one row and fills its result.
func (p *Platform) batchOne(ctx context.Context, app string, in batchInput, res batchRow) batchRow {
	err := in.err
	if err == nil {
		if err = ctx.Err(); err != nil {
			err = &httpError{Status: http.StatusServiceUnavailable, Code: "not_attempted",
				Err: fmt.Errorf("the call ended (%v) before this row was registered", err)}
		}
	}
	if err == nil {
		var a registrationAnswer
		if a, err = p.register(ctx, app, in.body); err == nil {
			res.DeviceID, res.VerifyCode, res.PSK, res.Security, res.Secret = a.DeviceID, a.VerifyCode, a.PSK, a.Security, a.Secret
			res.Timeout = &a.Timeout
			return res
		}
	}
	var he *httpError
	var pe *problemsError
	switch {
	case errors.As(err, &he):
		res.ErrorCode, res.ErrorDesc = he.Code, he.Err.Error()
	case errors.As(err, &pe):
		res.ErrorCode, res.ErrorDesc = pe.Code, pe.Error()
	default:
		// The platform's fault: the operator hears of it once per row.
		p.logger.Error("batch registration row failed", "app", app, "row", in.row, "err", err)
		res.ErrorCode, res.ErrorDesc = "internal_error", err.Error()
	}
	res.ErrorDesc = fmt.Sprintf("row %d (%s): %s", in.row, in.where, res.ErrorDesc)
	return res
}
