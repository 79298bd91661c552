package main

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
)

// Uploads (SEC-3): multipart bodies are read part by part as they arrive;
// a file part goes straight to its consumer (a file on disk for upgrade
// packages), never whole into memory, and stops at its size cap. Only so
// many uploads run at once, in all and per app.

// Upload limits (SEC-3, our choice). Config.MaxUpload and
// Config.MaxUploads change the first two.
const (
	defaultMaxUpload   = 32 << 20 // bytes of one package file
	defaultMaxUploads  = 4        // uploads in progress, all apps together
	maxUploadsPerApp   = 2        // uploads in progress of one app
	maxProfileUpload   = 4 << 20  // bytes of a profile zip (held in memory to be stored)
	maxCodecUpload     = 2 << 20  // bytes of a codec JSON (held in memory to be compiled)
	maxFormField       = 4 << 10  // bytes of one text field
	maxFormFields      = 32       // text fields of one upload
	uploadRetrySeconds = 5        // Retry-After of a refused upload
)

// uploadSlots counts uploads in progress.
type uploadSlots struct {
	max, perApp int

	mu    sync.Mutex
	total int
	byApp map[string]int
}

// acquire takes a slot for app, or answers 503 (all slots busy) or 429
// (the app's slots busy), naming the limit and when to retry.
func (u *uploadSlots) acquire(w http.ResponseWriter, app string) (release func(), err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.total >= u.max:
		w.Header().Set("Retry-After", strconv.Itoa(uploadRetrySeconds))
		return nil, &httpError{Status: http.StatusServiceUnavailable, Code: "too_many_uploads",
			Err: fmt.Errorf("%d uploads are in progress, the most the platform takes at once; retry in %d s", u.max, uploadRetrySeconds)}
	case u.byApp[app] >= u.perApp:
		w.Header().Set("Retry-After", strconv.Itoa(uploadRetrySeconds))
		return nil, &httpError{Status: http.StatusTooManyRequests, Code: "too_many_uploads",
			Err: fmt.Errorf("this app has %d uploads in progress, the most one app may have at once; retry when one is done", u.perApp)}
	}
	if u.byApp == nil {
		u.byApp = map[string]int{}
	}
	u.total++
	u.byApp[app]++
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.total--
			if u.byApp[app]--; u.byApp[app] == 0 {
				delete(u.byApp, app)
			}
		})
	}, nil
}

// inFlight returns how many uploads are in progress.
func (u *uploadSlots) inFlight() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.total
}

// tooLarge is the 413 of an upload part or body over its cap.
func tooLarge(what string, limit int64) error {
	return &httpError{Status: http.StatusRequestEntityTooLarge, Code: "upload_too_large",
		Err: fmt.Errorf("%s is larger than %d bytes (%s), the most the platform takes", what, limit, sizeText(limit))}
}

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// capReader reads at most limit bytes from r; one more is an error that
// the upload answers with 413.
type capReader struct {
	r     io.Reader
	n     int64 // bytes read so far
	limit int64
}

var errOverCap = errors.New("upload part over its size cap")

func (c *capReader) Read(b []byte) (int, error) {
	if c.n > c.limit {
		return 0, errOverCap
	}
	if max := c.limit + 1 - c.n; int64(len(b)) > max {
		b = b[:max]
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	if c.n > c.limit {
		return n, errOverCap
	}
	return n, err
}

// filePart consumes one file part of an upload (or a text field that
// carries a file, such as codec JSON): r fails after limit bytes. name is
// the part's file name, "" for a text field.
type filePart struct {
	limit   int64
	consume func(name string, r io.Reader) error
}

// readUpload reads a multipart/form-data body of the calling app part by
// part, under an upload slot. A part named in files goes to its consumer
// as it arrives; other parts are text fields (at most maxFormFields of
// maxFormField bytes), returned. Errors are httpErrors (400, 413, 429,
// 503) or the consumer's.
func (p *Platform) readUpload(w http.ResponseWriter, r *http.Request, usage string, files map[string]filePart) (map[string]string, error) {
	release, err := p.uploads.acquire(w, appOf(r))
	if err != nil {
		return nil, err
	}
	defer release()
	var total int64 = maxFormFields * maxFormField
	for _, f := range files {
		total += f.limit
	}
	total += 64 << 10 // multipart headers and boundaries
	r.Body = http.MaxBytesReader(w, r.Body, total)

	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, badRequest("bad_form", "send multipart/form-data with %s", usage)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("bad_form", "send multipart/form-data with %s: %v", usage, err)
	}
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, nil
		}
		if err != nil {
			return nil, uploadReadErr(err, usage, total)
		}
		name := part.FormName()
		if f, ok := files[name]; ok {
			cr := &capReader{r: part, limit: f.limit}
			if err := f.consume(part.FileName(), cr); err != nil {
				switch {
				case errors.Is(err, errOverCap):
					return nil, tooLarge(fmt.Sprintf("the %q part", name), f.limit)
				case isMaxBytes(err):
					return nil, tooLarge("the upload", total)
				}
				return nil, err
			}
			continue
		}
		if len(fields) >= maxFormFields {
			return nil, badRequest("bad_form", "more than %d form fields; send %s", maxFormFields, usage)
		}
		b, err := io.ReadAll(&capReader{r: part, limit: maxFormField})
		if errors.Is(err, errOverCap) {
			return nil, tooLarge(fmt.Sprintf("form field %q", name), maxFormField)
		}
		if err != nil {
			return nil, uploadReadErr(err, usage, total)
		}
		fields[name] = string(b)
	}
}

func isMaxBytes(err error) bool {
	var me *http.MaxBytesError
	return errors.As(err, &me)
}

func uploadReadErr(err error, usage string, total int64) error {
	if isMaxBytes(err) {
		return tooLarge("the upload", total)
	}
	return badRequest("bad_form", "reading the multipart body (send %s): %v", usage, err)
}
