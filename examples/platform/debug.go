package main

import (
	"net/http"
	"net/http/pprof"
)

// handleProfiling serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/ on the operator listener only, behind its admin token like
// /metrics (SEC-5): CPU, heap, goroutine, block and mutex profiles of a
// running platform, e.g.
//
//	go tool pprof http://127.0.0.1:8744/debug/pprof/profile?seconds=20
//
// which is how the per-stage CPU of the uplink pipeline in doc.go was
// taken. Never on the public API listener.
func handleProfiling(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
