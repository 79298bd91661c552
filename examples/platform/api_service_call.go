package main

// The "device service call" (MQT-3, FAQ §7.1): an application calls a
// command of a connected MQTT device and gets the device's answer in the
// HTTP response. The call is an ordinary immediate command of the command
// engine (expireTime 0), so its states, callbacks and history are those of
// any other command; the HTTP handler only waits for it to settle.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/registry"
)

// Service call limits.
const (
	serviceCallDefaultTimeout = 30 * time.Second
	serviceCallMaxTimeout     = 60 * time.Second
	maxServiceCalls           = 1000 // calls waiting at once, over every app
)

// serviceCallRequest is the body of sendCommand.
type serviceCallRequest struct {
	Header struct {
		Mode        string `json:"mode"` // ACK (default): wait for the response; NOACK: for the PUBACK
		Method      string `json:"method"`
		CallbackURL string `json:"callbackURL"`
		Timeout     *int   `json:"timeout"` // ours: seconds to wait, 1..60; default 30
	} `json:"header"`
	Body json.RawMessage `json:"body"`
}

// serviceCallAnswer is the 200 answer.
type serviceCallAnswer struct {
	Status    string          `json:"status"`    // the command's status: SUCCESSFUL, FAILED, or DELIVERED (NOACK)
	Timestamp string          `json:"timestamp"` // when it got there, yyyyMMdd'T'HHmmss'Z'
	RequestID string          `json:"requestId"` // the commandId
	Body      json.RawMessage `json:"body"`      // the device's paras; null when none
}

// serviceCalls lets waiting calls hear of their command's moves.
type serviceCalls struct {
	mu      sync.Mutex
	waiting map[string]chan struct{} // commandId → signal
}

// watch registers a waiter for the command id; false when too many calls
// wait already.
func (s *serviceCalls) watch(id string) (<-chan struct{}, func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) >= maxServiceCalls {
		return nil, nil, false
	}
	if s.waiting == nil {
		s.waiting = map[string]chan struct{}{}
	}
	ch := make(chan struct{}, 1)
	s.waiting[id] = ch
	return ch, func() {
		s.mu.Lock()
		delete(s.waiting, id)
		s.mu.Unlock()
	}, true
}

func (s *serviceCalls) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting) >= maxServiceCalls
}

// changed is told of every command move (from the command listener).
func (s *serviceCalls) changed(c command.Command) {
	s.mu.Lock()
	ch := s.waiting[c.ID]
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default: // a signal is pending already; the waiter reads the store
		}
	}
}

// serviceCall handles POST …/devices/{deviceId}/services/{serviceId}/sendCommand.
func (p *Platform) serviceCall(w http.ResponseWriter, r *http.Request) error {
	var req serviceCallRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	deviceID, serviceID := pathValue(r, "deviceId"), pathValue(r, "serviceId")
	ack := true
	switch req.Header.Mode {
	case "", "ACK":
	case "NOACK":
		ack = false
	default:
		return badRequest("invalid_mode", `header.mode is %q; allowed: "ACK" (wait for the device's response, the default) or "NOACK" (wait for its acknowledgement)`, req.Header.Mode)
	}
	if req.Header.Method == "" {
		return badRequest("missing_method", "header.method is required: the command of service %s to call", serviceID)
	}
	timeout := serviceCallDefaultTimeout
	if t := req.Header.Timeout; t != nil {
		if *t < 1 || time.Duration(*t)*time.Second > serviceCallMaxTimeout {
			return badRequest("invalid_timeout", "header.timeout is %d; allowed: 1..%d seconds", *t, int(serviceCallMaxTimeout/time.Second))
		}
		timeout = time.Duration(*t) * time.Second
	}
	paras := req.Body
	if len(paras) == 0 || string(paras) == "null" {
		paras = json.RawMessage("{}")
	}
	var params map[string]any
	if err := jsonUnmarshalObject(paras, &params); err != nil {
		return badRequest("invalid_command_paras", "body must be a JSON object of the command's paras: %v", err)
	}

	d, err := p.ownedDevice(r.Context(), appOf(r), "deviceId", deviceID)
	if err != nil {
		return err
	}
	if !p.viaMQTT(r.Context(), d) {
		return conflict("not_mqtt_device", "device %s does not connect over MQTT (protocolType %s): the synchronous call is for MQTT devices; use POST /iocm/app/cmd/v1.4.0/deviceCommands", d.ID, d.Info.ProtocolType)
	}
	if link := mqttLink(d); !p.mq.Connected(link) {
		return conflict("device_not_connected", "MQTT device %s is not connected (through %s): it cannot answer now", d.ID, link)
	}
	if offlineBehindGateway(d) {
		return conflict("device_not_connected", "sub-device %s is OFFLINE (its gateway %s said so): it cannot answer now", d.ID, d.GatewayID)
	}
	prod, err := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
	if err != nil {
		return badRequest("product_not_found", "the device's product %s/%s is not in the catalog", d.Info.ManufacturerID, d.Info.Model)
	}
	if err := prod.CheckCommand(serviceID, req.Header.Method, params); err != nil {
		return withStatus(err, http.StatusBadRequest, "command_mismatch")
	}
	if p.calls.busy() {
		return &httpError{Status: http.StatusTooManyRequests, Code: "too_many_service_calls",
			Err: fmt.Errorf("%d service calls are waiting already; try again when one ended", maxServiceCalls)}
	}
	immediate := int64(0)
	c, err := p.cmds.Submit(r.Context(), command.Request{AppID: appOf(r), DeviceID: d.ID, CallbackURL: req.Header.CallbackURL,
		ExpireTime: &immediate, Command: command.Body{ServiceID: serviceID, Method: req.Header.Method, Paras: paras}})
	if errors.Is(err, command.ErrUnreachable) {
		return conflict("device_not_reachable", "command %s could not go out now: %v", c.ID, err)
	}
	if err != nil {
		return apiErr(err)
	}
	p.callbacks.add(appOf(r), req.Header.CallbackURL)

	c, err = p.awaitCall(r.Context(), c.ID, ack, timeout)
	if err != nil {
		return err
	}
	at := c.ExecuteTime
	if !ack {
		at = c.DeliveredTime
	}
	body := c.Result
	if len(body) == 0 {
		body = json.RawMessage("null")
	}
	writeJSON(w, http.StatusOK, serviceCallAnswer{Status: c.Status.String(), Timestamp: apiTime(at), RequestID: c.ID, Body: body})
	return nil
}

// awaitCall waits until command id ended (ack) or reached the device
// (!ack), for timeout at most. A command that ends otherwise (TIMEOUT,
// CANCELED, or FAILED before the device answered), the timeout or a ctx
// that ends first is a 504/409 with the command's state.
func (p *Platform) awaitCall(ctx context.Context, id string, ack bool, timeout time.Duration) (command.Command, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	signal, stop, ok := p.calls.watch(id)
	if !ok {
		return command.Command{}, &httpError{Status: http.StatusTooManyRequests, Code: "too_many_service_calls",
			Err: fmt.Errorf("%d service calls are waiting already; command %s stays queued as an ordinary command", maxServiceCalls, id)}
	}
	defer stop()
	for {
		// The store, not the signal, is the truth: a move made before
		// watch was registered is seen here too.
		c, err := p.cmds.Get(context.WithoutCancel(ctx), id)
		if err != nil {
			return c, apiErr(err)
		}
		answered := c.Status == command.Successful || c.Status == command.Failed && c.ErrCode != 0
		if answered || !ack && c.Status == command.Delivered {
			return c, nil
		}
		if c.Status == command.Timeout {
			return c, &httpError{Status: http.StatusGatewayTimeout, Code: "device_call_timeout",
				Err: fmt.Errorf("command %s ended TIMEOUT: the device acknowledged it but sent no response in time", id)}
		}
		if c.Status.Final() {
			return c, conflict("device_call_ended",
				"command %s ended %s before the device answered: %s", id, c.Status, reasonOr(c.Reason, "no reason recorded"))
		}
		select {
		case <-signal:
		case <-ctx.Done():
			return c, &httpError{Status: http.StatusGatewayTimeout, Code: "device_call_timeout",
				Err: fmt.Errorf("device %s did not answer command %s in time; the command stays %s and the engine ends it (GET /iocm/app/cmd/v1.4.0/deviceCommands?deviceId=%s follows it)", c.DeviceID, id, c.Status, c.DeviceID)}
		}
	}
}

func reasonOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// mqttLink is the MQTT device whose connection carries d's traffic: d
// itself, or its gateway (MQT-5).
func mqttLink(d registry.Device) string {
	if d.GatewayID != "" {
		return d.GatewayID
	}
	return d.ID
}
