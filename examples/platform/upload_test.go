package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pattern is an endless, cheap, non-repeating-looking byte stream: the
// client side of an upload costs no memory either.
type pattern struct{ n uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		p.n++
		b[i] = byte(p.n ^ p.n>>8 ^ p.n>>17)
	}
	return len(b), nil
}

// streamUpload posts a package of size bytes generated on the fly, the
// file part first and the fields after it. It returns the status, the
// decoded answer and the answer's Retry-After. hold, when not nil, is
// waited on before the body ends.
func (tp *testPlatform) streamUpload(t *testing.T, size int64, hold <-chan struct{}) (int, map[string]any, string) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", "big.bin")
		if err == nil {
			_, err = io.Copy(fw, io.LimitReader(&pattern{}, size))
		}
		if hold != nil {
			<-hold
		}
		for k, v := range map[string]string{"fileType": "firmwarePackage", "version": "9.9." + fmt.Sprint(size),
			"deviceType": demoDeviceType, "manufacturerName": "DozeLabs", "model": demoModel, "protocolType": "LWM2M"} {
			if err == nil {
				err = mw.WriteField(k, v)
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	resp := tp.appRequest(t, "POST", "/iodm/northbound/v1.5.0/category", mw.FormDataContentType(), pr)
	defer resp.Body.Close()
	pr.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out, resp.Header.Get("Retry-After")
}

// TestUploadStreams: a 24 MiB package goes to disk without the process
// allocating anything near its size (SEC-3; before, the whole body was
// parsed into memory: 8 × 30 MiB cost +730 MB RSS). TotalAlloc counts
// every byte allocated by the whole process, client side included, so it
// catches any buffering, even if GC ran since.
func TestUploadStreams(t *testing.T) {
	tp := startPlatform(t)
	const size = 24 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	status, pkg, _ := tp.streamUpload(t, size, nil)
	runtime.ReadMemStats(&after)
	require.Equal(t, http.StatusCreated, status, "answer %v", pkg)
	require.EqualValues(t, size, pkg["size"])
	sum := sha256.New()
	io.Copy(sum, io.LimitReader(&pattern{}, size))
	require.Equal(t, hex.EncodeToString(sum.Sum(nil)), pkg["digest"], "the stored file is the uploaded one")
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("uploading %d MiB allocated %.2f MiB in the whole process (%.3f of the upload)", size>>20, float64(alloc)/(1<<20), float64(alloc)/size)
	require.Less(t, alloc, uint64(size/4), "allocated %d bytes for a %d-byte upload: it is buffered", alloc, size)
}

// TestUploadConcurrencyCap: uploads beyond the per-app cap get 429 and
// beyond the platform's cap 503, each with Retry-After and the limit in
// words; once the running ones end, uploads are taken again (SEC-3).
func TestUploadConcurrencyCap(t *testing.T) {
	tp := startPlatform(t, func(c *Config) { c.MaxUploads = 2 })
	hold := make(chan struct{})
	done := make(chan int, 2)
	for range 2 {
		go func() {
			status, _, _ := tp.streamUpload(t, 64<<10, hold)
			done <- status
		}()
	}
	require.Eventually(t, func() bool { return tp.uploads.inFlight() == 2 }, 10*time.Second, 5*time.Millisecond)

	status, ans, retry := tp.streamUpload(t, 1<<10, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "answer %v", ans)
	require.Equal(t, "too_many_uploads", ans["error_code"])
	require.Contains(t, ans["error_desc"], "2 uploads are in progress")
	require.Equal(t, "5", retry)

	// Per app: with room in the platform, one app still has its own cap.
	tp.uploads.max = 10
	status, ans, retry = tp.streamUpload(t, 1<<10, nil)
	require.Equal(t, http.StatusTooManyRequests, status, "answer %v", ans)
	require.Contains(t, ans["error_desc"], "this app has 2 uploads in progress")
	require.Equal(t, "5", retry)

	close(hold)
	for range 2 {
		require.Equal(t, http.StatusCreated, <-done)
	}
	require.Zero(t, tp.uploads.inFlight())
	status, ans, _ = tp.streamUpload(t, 1<<10, nil)
	require.Equal(t, http.StatusCreated, status, "answer %v", ans)
}

// TestJSONBodyTooLarge: a JSON body over 1 MiB gets 413 naming the limit.
func TestJSONBodyTooLarge(t *testing.T) {
	tp := startPlatform(t)
	var e apiError
	status := tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions", map[string]any{"pad": string(make([]byte, maxBody))}, &e)
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Equal(t, "body_too_large", e.Code)
	require.Contains(t, e.Desc, "1048576 bytes")
}
