package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
)

// apiError is the error body of every failed call (docs/api.md "Errors").
type apiError struct {
	Code string `json:"error_code"`
	Desc string `json:"error_desc"`
}

// httpError carries a status and a stable code up to the handler wrapper.
type httpError struct {
	Status int
	Code   string
	Err    error
}

func (e *httpError) Error() string { return e.Code + ": " + e.Err.Error() }
func (e *httpError) Unwrap() error { return e.Err }

func badRequest(code string, format string, args ...any) error {
	return &httpError{Status: http.StatusBadRequest, Code: code, Err: fmt.Errorf(format, args...)}
}

func conflict(code string, format string, args ...any) error {
	return &httpError{Status: http.StatusConflict, Code: code, Err: fmt.Errorf(format, args...)}
}

func notFound(code string, format string, args ...any) error {
	return &httpError{Status: http.StatusNotFound, Code: code, Err: fmt.Errorf(format, args...)}
}

// withStatus wraps err with a status and code unless it already has one.
func withStatus(err error, status int, code string) error {
	var he *httpError
	var pe *problemsError
	if errors.As(err, &he) || errors.As(err, &pe) {
		return err
	}
	return &httpError{Status: status, Code: code, Err: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}

func writeError(w http.ResponseWriter, err error) {
	var pe *problemsError
	if errors.As(err, &pe) {
		writeProblems(w, pe)
		return
	}
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{Status: http.StatusInternalServerError, Code: "internal_error", Err: err}
	}
	writeJSON(w, he.Status, apiError{Code: he.Code, Desc: he.Err.Error()})
}

// maxBody bounds request bodies other than uploads (SEC-3).
const maxBody = 1 << 20

// decodeBody reads a JSON body of at most maxBody bytes into v and says
// where it went wrong; a larger body is answered 413 without being read
// further.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badRequest("bad_body", "reading the request body: %v", err)
	}
	if len(body) > maxBody {
		return &httpError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Err: fmt.Errorf("the JSON body is larger than %d bytes (1 MiB), the most the API takes", maxBody)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badRequest("bad_json", "the body is not valid JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			if te.Field == "" {
				return badRequest("bad_json", "the body must be a JSON %s, not %s", jsonKind(te.Type), te.Value)
			}
			return badRequest("bad_json", "field %q must be a JSON %s, not %s", te.Field, jsonKind(te.Type), te.Value)
		}
		return badRequest("bad_json", "the body is not valid JSON: %v", err)
	}
	return nil
}

// jsonKind names the JSON kind a Go type is decoded from, so that error
// answers say "object" rather than a Go type name.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	if t.Implements(reflect.TypeFor[json.Unmarshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return "value of the documented form"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "value"
}

// queryInt reads an optional integer query parameter; absent gives def and
// present=false.
func queryInt(r *http.Request, name string, def, min, max int) (v int, present bool, err error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, false, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, true, badRequest("bad_query", "query parameter %s=%q must be an integer from %d to %d", name, s, min, max)
	}
	return n, true, nil
}

// jsonUnmarshalObject decodes raw into a map, insisting on a JSON object.
func jsonUnmarshalObject(raw json.RawMessage, m *map[string]any) error {
	if err := json.Unmarshal(raw, m); err != nil {
		return err
	}
	if *m == nil {
		return errors.New("null is not an object")
	}
	return nil
}

// pageOf returns page pageNo of items, pageSize a page, never nil.
func pageOf[T any](items []T, pageNo, pageSize int) []T {
	lo, hi := min(pageNo*pageSize, len(items)), min((pageNo+1)*pageSize, len(items))
	return append([]T{}, items[lo:hi]...)
}
