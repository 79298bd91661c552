package main

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"strings"
)

// route is one operation of the northbound API. The same table registers
// the handlers and is checked against openapi.json by a test.
type route struct {
	method, path string
	public       bool // no token needed
	handle       func(p *Platform, w http.ResponseWriter, r *http.Request) error
}

type ctxKey struct{}

// appOf returns the id of the authenticated app of r.
func appOf(r *http.Request) string { s, _ := r.Context().Value(ctxKey{}).(string); return s }

//go:embed console openapi.json
var assets embed.FS

// Handler returns the HTTP handler of the whole API, the console and the
// OpenAPI document; the metrics are on AdminHandler.
func (p *Platform) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes() {
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			if !rt.public {
				app, status, err := p.auth.Check(r)
				if err != nil {
					code := "unauthorized"
					switch status {
					case http.StatusForbidden:
						code = "forbidden"
					case http.StatusTooManyRequests:
						code = "rate_limited"
					}
					p.metrics.apiCalls.WithLabelValues(code).Inc()
					p.logger.Debug("API call refused", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "err", err)
					writeError(w, &httpError{Status: status, Code: code, Err: err})
					return
				}
				r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, app))
			}
			if routedRoutes[rt.method+" "+rt.path] && p.cluster.forward(w, r, r.PathValue("deviceId"), nil) {
				p.metrics.apiCalls.WithLabelValues("forwarded").Inc()
				return
			}
			p.serveRoute(rt, w, r)
		})
	}
	console, _ := fs.Sub(assets, "console")
	mux.Handle("GET /", http.FileServerFS(console))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		b, _ := assets.ReadFile("openapi.json")
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	return mux
}

// routedRoutes are the routes that need the device's session: on a
// cluster (-nats) a node without it forwards them to the node that has it
// (cluster.go).
var routedRoutes = map[string]bool{
	"GET /doze/v1/devices/{deviceId}/lwm2m/{path...}":                                       true,
	"PUT /doze/v1/devices/{deviceId}/lwm2m/{path...}":                                       true,
	"POST /doze/v1/devices/{deviceId}/lwm2m/{path...}":                                      true,
	"DELETE /doze/v1/devices/{deviceId}/lwm2m/{path...}":                                    true,
	"POST /doze/v1/devices/{deviceId}/lwm2m-composite":                                      true,
	"GET /doze/v1/devices/{deviceId}/lwm2m-registration":                                    true,
	"POST /iocm/app/signaltrans/v1.1.0/devices/{deviceId}/services/{serviceId}/sendCommand": true,
}

// createCommandRoute is forwarded by its handler, for immediate commands
// only (submitCommand).
const createCommandRoute = "POST /iocm/app/cmd/v1.4.0/deviceCommands"

// routedHandler serves the routed routes of calls another node forwarded:
// the application was authenticated there (cluster.go).
func (p *Platform) routedHandler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes() {
		if k := rt.method + " " + rt.path; routedRoutes[k] || k == createCommandRoute {
			mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) { p.serveRoute(rt, w, r) })
		}
	}
	return mux
}

// serveRoute runs rt's handler and answers its error.
func (p *Platform) serveRoute(rt route, w http.ResponseWriter, r *http.Request) {
	if err := rt.handle(p, w, r); err != nil {
		p.metrics.apiCalls.WithLabelValues("error").Inc()
		var he *httpError
		var pe *problemsError
		switch {
		case errors.As(err, &he):
			// The caller's mistake, answered with what was wrong:
			// quiet unless asked for (-log-level debug).
			p.logger.Debug("API call refused", "method", r.Method, "path", r.URL.Path, "app", appOf(r),
				"status", he.Status, "code", he.Code, "err", err)
		case errors.As(err, &pe):
			p.logger.Debug("API call refused", "method", r.Method, "path", r.URL.Path, "app", appOf(r),
				"status", http.StatusBadRequest, "code", pe.Code, "err", err)
		default:
			// A 500 is the platform's fault: the operator hears of
			// it here, the one place it is handled.
			p.logger.Error("API call failed", "method", r.Method, "path", r.URL.Path, "app", appOf(r), "err", err)
		}
		writeError(w, err)
		return
	}
	p.metrics.apiCalls.WithLabelValues("ok").Inc()
}

// AdminHandler returns the handler of the operator endpoints (/metrics,
// /debug/pprof/), served on their own listener, never the public one
// (SEC-5). With
// Config.AdminToken set, every call must carry it as a bearer token.
func (p *Platform) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", p.metrics.handler())
	handleProfiling(mux) // debug.go
	want := p.cfg.AdminToken
	if want == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="doze-admin"`)
			writeError(w, &httpError{Status: http.StatusUnauthorized, Code: "unauthorized",
				Err: errors.New("the admin endpoints need Authorization: Bearer <adminToken> (the adminToken of the platform's config)")})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// routes lists every operation of docs/api.md that the platform serves.
func routes() []route {
	return append([]route{
		// Access (APP-1).
		{"POST", "/iocm/app/sec/v1.1.0/login", true, (*Platform).login},
		{"POST", "/iocm/app/sec/v1.1.0/refreshToken", true, (*Platform).refreshToken},
		{"POST", "/doze/v1/app/resetSecret", false, (*Platform).resetSecret},
		{"PUT", "/doze/v1/app/settings", false, (*Platform).appSettings},
		{"POST", "/doze/v1/app/callbackCAs", false, (*Platform).addCallbackCAs},
		// Applications (APP-3): public to the app tokens, each handler
		// checks the administrator credential.
		{"POST", "/doze/v1/apps", true, (*Platform).createApp},
		{"GET", "/doze/v1/apps", true, (*Platform).listApps},
		{"GET", "/doze/v1/apps/{appId}", true, (*Platform).getApp},
		{"PUT", "/doze/v1/apps/{appId}", true, (*Platform).changeApp},
		{"DELETE", "/doze/v1/apps/{appId}", true, (*Platform).deleteApp},
		{"GET", "/doze/v1/app/callbackCAs", false, (*Platform).listCallbackCAs},
		{"DELETE", "/doze/v1/app/callbackCAs/{id}", false, (*Platform).deleteCallbackCA},

		// Devices.
		{"POST", "/iocm/app/reg/v1.1.0/deviceCredentials", false, (*Platform).registerDevice},
		{"POST", "/iocm/app/reg/v1.1.0/deviceCredentials/batch", false, (*Platform).registerBatch},
		{"GET", "/iocm/app/reg/v1.1.0/deviceCredentials/{deviceId}", false, (*Platform).deviceCredentials},
		{"GET", "/iocm/app/dm/v1.4.0/devices/{deviceId}", false, (*Platform).getDevice},
		{"PUT", "/iocm/app/dm/v1.4.0/devices/{deviceId}", false, (*Platform).updateDevice},
		{"DELETE", "/iocm/app/dm/v1.4.0/devices/{deviceId}", false, (*Platform).deleteDevice},
		{"GET", "/iocm/app/dm/v1.4.0/devices", false, (*Platform).listDevices},
		{"GET", "/iocm/app/data/v1.2.0/deviceDataHistory", false, (*Platform).history},
		{"GET", "/iocm/app/data/v1.1.0/deviceCapabilities", false, (*Platform).capabilities},
		{"PUT", "/iocm/app/shadow/v1.5.0/devices/{deviceId}", false, (*Platform).putShadow},
		{"GET", "/iocm/app/shadow/v1.5.0/devices/{deviceId}", false, (*Platform).getShadow},
		{"POST", "/iocm/app/devgroup/v1.3.0/devGroups", false, (*Platform).createGroup},
		{"GET", "/iocm/app/devgroup/v1.3.0/devGroups", false, (*Platform).listGroups},
		{"GET", "/iocm/app/devgroup/v1.3.0/devGroups/{devGroupId}", false, (*Platform).getGroup},
		{"DELETE", "/iocm/app/devgroup/v1.3.0/devGroups/{devGroupId}", false, (*Platform).deleteGroup},
		{"GET", "/iocm/app/devgroup/v1.3.0/devGroups/{devGroupId}/members", false, (*Platform).groupMembersList},
		{"POST", "/iocm/app/dm/v1.1.0/devices/addDevGroupTagToDevices", false, (*Platform).addToGroup},
		{"POST", "/iocm/app/dm/v1.1.0/devices/deleteDevGroupTagFromDevices", false, (*Platform).removeFromGroup},
		{"GET", "/doze/v1/devices/{deviceId}/log", false, (*Platform).deviceLogAPI},
		{"GET", "/doze/v1/deviceAddresses", false, (*Platform).deviceAddresses},

		// LwM2M management (LWM-11).
		{"GET", "/doze/v1/devices/{deviceId}/lwm2m/{path...}", false, (*Platform).lwm2mCall},
		{"PUT", "/doze/v1/devices/{deviceId}/lwm2m/{path...}", false, (*Platform).lwm2mCall},
		{"POST", "/doze/v1/devices/{deviceId}/lwm2m/{path...}", false, (*Platform).lwm2mCall},
		{"DELETE", "/doze/v1/devices/{deviceId}/lwm2m/{path...}", false, (*Platform).lwm2mCall},
		{"POST", "/doze/v1/devices/{deviceId}/lwm2m-composite", false, (*Platform).lwm2mComposite},
		{"GET", "/doze/v1/devices/{deviceId}/lwm2m-operations", false, (*Platform).listLwM2MOperations},
		{"GET", "/doze/v1/devices/{deviceId}/lwm2m-operations/{operationId}", false, (*Platform).getLwM2MOperation},
		{"DELETE", "/doze/v1/devices/{deviceId}/lwm2m-operations/{operationId}", false, (*Platform).cancelLwM2MOperation},
		{"GET", "/doze/v1/devices/{deviceId}/lwm2m-registration", false, (*Platform).lwm2mRegistration},
		{"PUT", "/doze/v1/bootstrap/{nodeId}", false, (*Platform).putBootstrap},
		{"GET", "/doze/v1/bootstrap/{nodeId}", false, (*Platform).getBootstrap},
		{"DELETE", "/doze/v1/bootstrap/{nodeId}", false, (*Platform).deleteBootstrap},

		// Commands.
		{"POST", "/iocm/app/cmd/v1.4.0/deviceCommands", false, (*Platform).createCommand},
		{"GET", "/iocm/app/cmd/v1.4.0/deviceCommands", false, (*Platform).listCommands},
		{"PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/{commandId}", false, (*Platform).cancelCommand},
		{"POST", "/iocm/app/signaltrans/v1.1.0/devices/{deviceId}/services/{serviceId}/sendCommand", false, (*Platform).serviceCall},
		{"POST", "/iocm/app/cmd/v1.4.0/deviceCommandCancelTasks", false, (*Platform).cancelDeviceCommands},
		{"GET", "/iocm/app/cmd/v1.4.0/deviceCommandCancelTasks", false, (*Platform).listCancelTasks},
		{"POST", "/iocm/app/batchtask/v1.1.0/tasks", false, (*Platform).createBatch},
		{"GET", "/iocm/app/batchtask/v1.1.0/tasks/{taskID}", false, (*Platform).getBatch},
		{"GET", "/iocm/app/batchtask/v1.1.0/taskDetails", false, (*Platform).batchDetails},

		// Subscriptions.
		{"POST", "/iocm/app/sub/v1.2.0/subscriptions", false, (*Platform).subscribe},
		{"GET", "/iocm/app/sub/v1.2.0/subscriptions", false, (*Platform).listSubscriptions},
		{"GET", "/iocm/app/sub/v1.2.0/subscriptions/{subscriptionId}", false, (*Platform).getSubscription},
		{"DELETE", "/iocm/app/sub/v1.2.0/subscriptions/{subscriptionId}", false, (*Platform).deleteSubscription},
		{"DELETE", "/iocm/app/sub/v1.2.0/subscriptions", false, (*Platform).deleteSubscriptions},
		{"POST", "/iodm/app/sub/v1.1.0/subscribe", false, (*Platform).subscribeUpgrade},
		{"GET", "/doze/v1/endpoints", false, (*Platform).endpoints},

		// Products and codecs.
		{"POST", "/doze/v1/products", false, (*Platform).addProduct},
		{"GET", "/doze/v1/products", false, (*Platform).listProducts},
		{"GET", "/doze/v1/products/{manufacturerId}/{model}", false, (*Platform).getProduct},
		{"DELETE", "/doze/v1/products/{manufacturerId}/{model}", false, (*Platform).deleteProduct},
		{"POST", "/doze/v1/codec/decode", false, (*Platform).codecDecode},
		{"POST", "/doze/v1/codec/encode", false, (*Platform).codecEncode},

		// Upgrades.
		{"POST", "/iodm/northbound/v1.5.0/category", false, (*Platform).uploadPackage},
		{"GET", "/iodm/northbound/v1.5.0/category", false, (*Platform).listPackages},
		{"GET", "/iodm/northbound/v1.5.0/category/{fileId}", false, (*Platform).getPackage},
		{"DELETE", "/iodm/northbound/v1.5.0/category/{fileId}", false, (*Platform).deletePackage},
		{"POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade", false, (*Platform).softwareUpgrade},
		{"POST", "/iodm/northbound/v1.5.0/operations/firmwareUpgrade", false, (*Platform).firmwareUpgrade},
		{"GET", "/iodm/northbound/v1.5.0/operations", false, (*Platform).listOperations},
		{"GET", "/iodm/northbound/v1.5.0/operations/{operationId}", false, (*Platform).getOperation},
		{"GET", "/iodm/northbound/v1.5.0/operations/{operationId}/subOperations", false, (*Platform).subOperations},
		{"PUT", "/iodm/northbound/v1.5.0/operations/{operationId}/stop", false, (*Platform).stopOperation},
		{"POST", "/iodm/northbound/v1.5.0/operations/{operationId}/retry", false, (*Platform).retryOperation},
	}, ruleRoutes()...) // rules_api.go
}

// pathValue returns a path parameter, unescaped by ServeMux.
func pathValue(r *http.Request, name string) string { return strings.TrimSpace(r.PathValue(name)) }
