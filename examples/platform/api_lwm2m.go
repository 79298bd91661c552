package main

// LwM2M device management through the API (LWM-11): every operation of
// LwM2M on any path of a registered device, the way Leshan's REST API
// offers them, and beyond it: an operation on a device that is asleep
// (queue mode, outside its awake window) is not refused but queued, and
// performed at the device's next wake-up.
//
// The queue is the command package's: a second command.Engine over its own
// bucket (store.DB.LwM2MOps), so an operation follows the command
// discipline of CMD-1 … CMD-9 — one at a time per device, in order, sent
// when the device wakes (PSM with the lwm2m awake window as its active
// time), expiry (expireTime, 48 h by default), a device's 4.xx ends it
// FAILED with the code, a lost answer is tried again at the next wake-up,
// and everything is stored before it happens, so queued operations survive
// a restart. An operation is a command.Command whose Body is
// {serviceId: "lwm2m", method: <op>, paras: <lwm2mOp>}; its Result is the
// device's answer in Leshan's shape. Each end state is pushed as
// lwm2mOperationResult.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
)

// The operations of LWM-11 (lwm2mOp.Op, and Method of the queued command).
const (
	opRead            = "read"
	opWrite           = "write"         // replace (PUT)
	opWritePartial    = "write-partial" // partial update (POST on an instance)
	opExecute         = "execute"
	opCreate          = "create"
	opDelete          = "delete"
	opDiscover        = "discover"
	opWriteAttributes = "write-attributes"
	opObserve         = "observe"
	opCancelObserve   = "cancel-observe"
)

// opService is the serviceId of every queued LwM2M operation.
const opService = "lwm2m"

// lwm2mOp is one operation as asked, and as kept in a queued operation's
// paras.
type lwm2mOp struct {
	Op         string          `json:"op"`
	Path       string          `json:"path"`
	Format     string          `json:"format,omitempty"`     // content format asked for; "" for the registration's
	Value      json.RawMessage `json:"value,omitempty"`      // write, write-partial, create: the node
	Args       string          `json:"args,omitempty"`       // execute arguments
	Attributes []string        `json:"attributes,omitempty"` // write-attributes: "pmin=10", …
	// Composite operations (api_lwm2mcomposite.go): the paths, and for a
	// write the node of each.
	Paths  []string                   `json:"paths,omitempty"`
	Values map[string]json.RawMessage `json:"values,omitempty"`
}

// formats are the content formats the API's "format" names.
var formats = map[string]lwm2m.Format{
	"TLV": lwm2m.FormatTLV, "SENML_JSON": lwm2m.FormatSenMLJSON, "SENML_CBOR": lwm2m.FormatSenMLCBOR,
	"TEXT": lwm2m.FormatText, "OPAQUE": lwm2m.FormatOpaque, "JSON": lwm2m.FormatJSON,
}

// contentFormat returns the format named, or the one the registration
// calls for: TLV for an LwM2M 1.0 client (the format every 1.0 client
// has), SenML CBOR for 1.1 (the compact one every 1.1 client has).
func contentFormat(r transport.Registration, named string) (lwm2m.Format, error) {
	if named != "" {
		f, ok := formats[strings.ToUpper(named)]
		if !ok {
			return 0, fmt.Errorf("format %q is none of TLV, SENML_JSON, SENML_CBOR, TEXT, OPAQUE, JSON", named)
		}
		return f, nil
	}
	if r.Version == "1.0" {
		return lwm2m.FormatTLV, nil
	}
	return lwm2m.FormatSenMLCBOR, nil
}

// opResult is the answer of one operation, in the shape of Leshan's REST
// API: the device's code by name, and the content of a read.
type opResult struct {
	Status       string   `json:"status"`                // CONTENT, CHANGED, CREATED, DELETED, or the error's name (NOT_FOUND …)
	Success      bool     `json:"success"`               // the device answered 2.xx
	Code         string   `json:"code"`                  // the CoAP code, "2.05"
	Content      any      `json:"content,omitempty"`     // *node; of a composite operation map[path]node
	Location     string   `json:"location,omitempty"`    // create: the new instance
	ObjectLinks  []string `json:"objectLinks,omitempty"` // discover
	ErrorMessage string   `json:"errorMessage,omitempty"`
}

// codeNames are Leshan's names of CoAP response codes.
var codeNames = map[string]string{
	"2.01": "CREATED", "2.02": "DELETED", "2.04": "CHANGED", "2.05": "CONTENT",
	"4.00": "BAD_REQUEST", "4.01": "UNAUTHORIZED", "4.03": "FORBIDDEN", "4.04": "NOT_FOUND",
	"4.05": "METHOD_NOT_ALLOWED", "4.06": "NOT_ACCEPTABLE", "4.08": "REQUEST_ENTITY_INCOMPLETE",
	"4.12": "PRECONDITION_FAILED", "4.13": "REQUEST_ENTITY_TOO_LARGE", "4.15": "UNSUPPORTED_CONTENT_FORMAT",
	"5.00": "INTERNAL_SERVER_ERROR", "5.01": "NOT_IMPLEMENTED", "5.03": "SERVICE_UNAVAILABLE",
}

func codeName(code string) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	return code
}

// check validates op before it is performed or queued: a path of the
// level the operation needs, a known format, a value that encodes.
func (op *lwm2mOp) check(r transport.Registration) (lwm2m.Path, error) {
	if isComposite(op.Op) {
		_, err := op.checkComposite(r)
		return lwm2m.RootPath, err
	}
	path, err := lwm2m.ParsePath(op.Path)
	if err != nil || path.IsRoot() {
		return path, fmt.Errorf("path %q is not an LwM2M path /object[/instance[/resource[/instance]]]", op.Path)
	}
	if _, err := contentFormat(r, op.Format); err != nil {
		return path, err
	}
	need := func(min, max int, what string) error {
		if path.Len() < min || path.Len() > max {
			return fmt.Errorf("%s takes %s, not %s", op.Op, what, path)
		}
		return nil
	}
	switch op.Op {
	case opExecute:
		return path, need(3, 3, "a resource (/o/i/r)")
	case opCreate:
		if err := need(1, 1, "an object (/o)"); err != nil {
			return path, err
		}
		_, err = fromNode(path, op.Value, true)
	case opDelete:
		return path, need(2, 2, "an object instance (/o/i)")
	case opWritePartial:
		if err := need(2, 2, "an object instance (/o/i)"); err != nil {
			return path, err
		}
		_, err = fromNode(path, op.Value, false)
	case opWrite:
		if err := need(2, 4, "an object instance, a resource or a resource instance"); err != nil {
			return path, err
		}
		_, err = fromNode(path, op.Value, false)
	case opWriteAttributes:
		if len(op.Attributes) == 0 {
			return path, errors.New("write-attributes needs at least one of pmin, pmax, gt, lt, st")
		}
	case opRead, opDiscover, opObserve, opCancelObserve:
	default:
		return path, fmt.Errorf("operation %q is none of read, write, write-partial, execute, create, delete, discover, write-attributes, observe, cancel-observe, or a composite one", op.Op)
	}
	return path, err
}

// perform runs op on the device now and returns the device's answer. A
// device's error code is a result (Success false), as in Leshan; the
// error is for what kept the request from being answered (asleep, no
// session, no answer) and for a value that does not encode.
func (p *Platform) perform(ctx context.Context, r transport.Registration, op lwm2mOp) (opResult, error) {
	path, err := op.check(r)
	if err != nil {
		return opResult{}, fmt.Errorf("%w: %w", command.ErrEncode, err)
	}
	if isComposite(op.Op) {
		return p.performComposite(ctx, r, op)
	}
	f, _ := contentFormat(r, op.Format)
	ep := r.Endpoint
	encode := func(create bool) (transport.Content, error) {
		recs, err := fromNode(path, op.Value, create)
		if err != nil {
			return transport.Content{}, err
		}
		b, err := lwm2m.Encode(f, path, recs)
		if err != nil {
			return transport.Content{}, fmt.Errorf("%w: %v", command.ErrEncode, err)
		}
		return transport.Content{Format: f, Payload: b}, nil
	}
	res := opResult{Status: "CHANGED", Code: "2.04", Success: true}
	var c transport.Content
	switch op.Op {
	case opRead:
		accept := transport.NoFormat
		if op.Format != "" {
			accept = f
		}
		c, err = p.lwm.Read(ctx, ep, op.Path, accept)
	case opObserve:
		c, err = p.lwm.Observe(ctx, ep, op.Path)
	case opCancelObserve:
		err = p.lwm.CancelObserve(ctx, ep, op.Path)
	case opWrite, opWritePartial:
		if c, err = encode(false); err != nil {
			return opResult{}, err
		}
		if op.Op == opWrite {
			err = p.lwm.Write(ctx, ep, op.Path, c)
		} else {
			err = p.lwm.WritePartial(ctx, ep, op.Path, c)
		}
		c = transport.Content{}
	case opExecute:
		err = p.lwm.Execute(ctx, ep, op.Path, []byte(op.Args))
	case opCreate:
		if c, err = encode(true); err != nil {
			return opResult{}, err
		}
		res.Status, res.Code = "CREATED", "2.01"
		res.Location, err = p.lwm.Create(ctx, ep, op.Path, c)
		c = transport.Content{}
	case opDelete:
		res.Status, res.Code = "DELETED", "2.02"
		err = p.lwm.Delete(ctx, ep, op.Path)
	case opDiscover:
		var links string
		if links, err = p.lwm.Discover(ctx, ep, op.Path); err == nil {
			res.Status, res.Code = "CONTENT", "2.05"
			ls, perr := lwm2m.ParseLinks([]byte(links))
			if perr != nil {
				return opResult{}, fmt.Errorf("%w: the device's discover answer is not link format: %v", command.ErrEncode, perr)
			}
			for _, l := range ls {
				res.ObjectLinks = append(res.ObjectLinks, l.String())
			}
		}
	case opWriteAttributes:
		err = p.lwm.WriteAttributes(ctx, ep, op.Path, op.Attributes...)
	}
	if re, ok := errors.AsType[*transport.ResponseError](err); ok {
		code := re.CodeText()
		return opResult{Status: codeName(code), Code: code, ErrorMessage: re.Message}, nil
	}
	if err != nil {
		return opResult{}, err
	}
	if op.Op == opRead || op.Op == opObserve {
		p.mappedRead(ctx, ep, path, c) // LWM-12: mapped values are reports
		res.Status, res.Code = "CONTENT", "2.05"
		recs, err := lwm2m.Decode(c.Format, path, c.Payload, objectModel)
		if err != nil {
			return opResult{Status: "CONTENT", Code: "2.05", Success: true,
				ErrorMessage: fmt.Sprintf("the device's answer (content format %d, %d bytes) does not decode: %v", c.Format, len(c.Payload), err)}, nil
		}
		n, err := toNode(path, recs)
		if err != nil {
			res.ErrorMessage = err.Error()
			return res, nil
		}
		res.Content = &n
	}
	return res, nil
}

// lwm2mTimeout bounds an operation on an awake device ("timeout" query, in
// seconds).
const (
	lwm2mTimeoutDefault = 30
	lwm2mTimeoutMax     = 300
)

// lwm2mCall is the handler of the four methods on …/lwm2m/{path...}. The
// last segment names the operations that are not a method of their own:
// GET …/discover, PUT …/attributes, POST and DELETE …/observe.
func (p *Platform) lwm2mCall(w http.ResponseWriter, r *http.Request) error {
	rest := "/" + strings.Trim(pathValue(r, "path"), "/")
	op := lwm2mOp{Path: rest, Format: r.URL.Query().Get("format")}
	suffix := ""
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		switch s := rest[i+1:]; s {
		case "discover", "attributes", "observe":
			suffix, op.Path = s, rest[:i]
		}
	}
	body, err := readSmallBody(r)
	if err != nil {
		return err
	}
	switch {
	case r.Method == http.MethodGet && suffix == "":
		op.Op = opRead
	case r.Method == http.MethodGet && suffix == "discover":
		op.Op = opDiscover
	case r.Method == http.MethodPut && suffix == "":
		op.Op, op.Value = opWrite, body
		if r.URL.Query().Get("replace") == "false" {
			op.Op = opWritePartial
		}
	case r.Method == http.MethodPut && suffix == "attributes":
		op.Op = opWriteAttributes
		for _, name := range []string{"pmin", "pmax", "gt", "lt", "st"} {
			if v, ok := r.URL.Query()[name]; ok {
				a := name
				if v[0] != "" {
					a += "=" + v[0]
				}
				op.Attributes = append(op.Attributes, a)
			}
		}
	case r.Method == http.MethodPost && suffix == "observe":
		op.Op = opObserve
	case r.Method == http.MethodDelete && suffix == "observe":
		op.Op = opCancelObserve
	case r.Method == http.MethodPost && strings.Count(op.Path, "/") == 1:
		op.Op, op.Value = opCreate, body
	case r.Method == http.MethodPost:
		op.Op, op.Args = opExecute, string(body)
	case r.Method == http.MethodDelete && suffix == "":
		op.Op = opDelete
	default:
		return badRequest("bad_lwm2m_operation", "%s on …/lwm2m%s is no LwM2M operation: GET reads (…/discover discovers), PUT writes (…/attributes writes attributes), POST executes or creates (…/observe observes), DELETE deletes (…/observe cancels an observation)", r.Method, rest)
	}
	return p.lwm2mOperation(w, r, op)
}

// readSmallBody reads a request body of at most maxBody bytes.
func readSmallBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("bad_body", "reading the request body: %v", err)
	}
	if len(b) > maxBody {
		return nil, &httpError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Err: fmt.Errorf("the body is larger than %d bytes (1 MiB), the most the API takes", maxBody)}
	}
	return b, nil
}

// lwm2mOperation performs op at once on an awake device, or queues it.
func (p *Platform) lwm2mOperation(w http.ResponseWriter, r *http.Request, op lwm2mOp) error {
	ctx := r.Context()
	d, err := p.device(ctx, r) // the caller's device only (APP-3)
	if err != nil {
		return err
	}
	reg, ok := p.lwm.Registration(d.NodeID)
	if !ok {
		return &httpError{Status: http.StatusNotFound, Code: "device_not_registered",
			Err: fmt.Errorf("device %s (endpoint %s) has no LwM2M registration: it has not registered, or its registration ended", d.ID, d.NodeID)}
	}
	if _, err := op.check(reg); err != nil {
		if errors.Is(err, transport.ErrCompositeUnsupported) {
			return badRequest("composite_unsupported", "%v", err)
		}
		return badRequest("bad_lwm2m_operation", "%v", err)
	}
	timeout, _, err := queryInt(r, "timeout", lwm2mTimeoutDefault, 1, lwm2mTimeoutMax)
	if err != nil {
		return err
	}
	if reg.Awake(time.Now()) && !p.opsWaiting(ctx, d.ID) {
		tctx, cancel := context.WithTimeout(ctx, time.Duration(timeout)*time.Second)
		defer cancel()
		res, err := p.perform(tctx, reg, op)
		if err == nil {
			writeJSON(w, http.StatusOK, res)
			return nil
		}
		if !errors.Is(err, transport.ErrSleeping) {
			return opError(err)
		}
		// The window closed meanwhile: queue it.
	}
	req := command.Request{AppID: appOf(r), DeviceID: d.ID, Command: command.Body{ServiceID: opService, Method: op.Op}}
	if req.Command.Paras, err = json.Marshal(op); err != nil {
		return err
	}
	if v := r.URL.Query().Get("expireTime"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return badRequest("invalid_expireTime", "expireTime %q is not a number of seconds ≥ 1 (how long the operation may wait for the device)", v)
		}
		req.ExpireTime = &n
	}
	c, err := p.ops.Submit(ctx, req)
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusAccepted, operationView(c))
	return nil
}

// opError maps a failure to reach the device to an HTTP answer.
func opError(err error) error {
	switch {
	case errors.Is(err, command.ErrEncode):
		return badRequest("bad_lwm2m_operation", "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, transport.ErrTimeout):
		return &httpError{Status: http.StatusGatewayTimeout, Code: "device_timeout", Err: err}
	case errors.Is(err, transport.ErrNotRegistered), errors.Is(err, transport.ErrUnreachable):
		return &httpError{Status: http.StatusServiceUnavailable, Code: "device_unreachable", Err: err}
	}
	return &httpError{Status: http.StatusBadGateway, Code: "device_error", Err: err}
}

// opsWaiting reports whether the device has queued operations still open:
// a new one then queues behind them, so that they run in order.
func (p *Platform) opsWaiting(ctx context.Context, deviceID string) bool {
	q, err := p.db.LwM2MOps().Front(ctx, deviceID, 1, time.Time{})
	return err != nil || len(q) > 0
}

// operation is a queued operation as the API shows it.
type operation struct {
	OperationID  string          `json:"operationId"`
	DeviceID     string          `json:"deviceId"`
	Op           string          `json:"op"`
	Path         string          `json:"path"`
	Status       string          `json:"status"`
	CreationTime string          `json:"creationTime"`
	ExpireTime   int64           `json:"expireTime"`
	SentTime     string          `json:"sentTime,omitempty"`
	EndTime      string          `json:"endTime,omitempty"`
	IssuedTimes  int             `json:"issuedTimes"`
	Result       json.RawMessage `json:"result,omitempty"`
	Reason       string          `json:"reason,omitempty"`
}

func optTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return push.FormatTime(t)
}

func operationView(c command.Command) operation {
	var op lwm2mOp
	json.Unmarshal(c.Body.Paras, &op)
	status := c.Status.String()
	if c.Status == command.Delivered {
		status = command.Sent.String() // answered and stored in one step; a moment at most
	}
	return operation{OperationID: c.ID, DeviceID: c.DeviceID, Op: op.Op, Path: op.Path, Status: status,
		CreationTime: push.FormatTime(c.CreationTime), ExpireTime: c.ExpireTime, SentTime: optTime(c.PlatformIssuedTime),
		EndTime: optTime(c.ExecuteTime), IssuedTimes: c.IssuedTimes, Result: c.Result, Reason: c.Reason}
}

func (p *Platform) listLwM2MOperations(w http.ResponseWriter, r *http.Request) error {
	d, err := p.device(r.Context(), r) // the caller's device only (APP-3)
	if err != nil {
		return err
	}
	limit, _, err := queryInt(r, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	cs, err := p.ops.List(r.Context(), d.ID, 0, limit)
	if err != nil {
		return err
	}
	out := make([]operation, 0, len(cs))
	for _, c := range cs {
		out = append(out, operationView(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"operations": out})
	return nil
}

// deviceOperation returns the operation of the path's id, which must be
// one of the path's device.
func (p *Platform) deviceOperation(r *http.Request) (command.Command, error) {
	dev, id := pathValue(r, "deviceId"), pathValue(r, "operationId")
	if _, err := p.device(r.Context(), r); err != nil { // the caller's device only (APP-3)
		return command.Command{}, err
	}
	c, err := p.ops.Get(r.Context(), id)
	if errors.Is(err, command.ErrNotFound) || (err == nil && c.DeviceID != dev) {
		return c, notFound("operation_not_found", "device %s has no LwM2M operation %s", dev, id)
	}
	return c, err
}

func (p *Platform) getLwM2MOperation(w http.ResponseWriter, r *http.Request) error {
	c, err := p.deviceOperation(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, operationView(c))
	return nil
}

func (p *Platform) cancelLwM2MOperation(w http.ResponseWriter, r *http.Request) error {
	c, err := p.deviceOperation(r)
	if err != nil {
		return err
	}
	if c, err = p.ops.Cancel(r.Context(), c.ID); err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, operationView(c))
	return nil
}

// registrationView is a device's LwM2M registration as the API shows it.
type registrationView struct {
	Endpoint     string `json:"endpoint"`
	LwM2MVersion string `json:"lwm2mVersion"`
	Binding      string `json:"binding"`
	QueueMode    bool   `json:"queueMode"`
	Lifetime     int64  `json:"lifetime"`
	ObjectLinks  string `json:"objectLinks"`
	Address      string `json:"address,omitempty"`
	Secure       bool   `json:"secure"`
	Registered   string `json:"registrationDate"`
	LastUpdate   string `json:"lastUpdate"`
	AwakeUntil   string `json:"awakeUntil,omitempty"`
	Awake        bool   `json:"awake"`
}

func (p *Platform) lwm2mRegistration(w http.ResponseWriter, r *http.Request) error {
	d, err := p.device(r.Context(), r) // the caller's device only (APP-3)
	if err != nil {
		return err
	}
	reg, ok := p.lwm.Registration(d.NodeID)
	if !ok {
		return notFound("device_not_registered", "device %s (endpoint %s) has no LwM2M registration", d.ID, d.NodeID)
	}
	v := registrationView{Endpoint: reg.Endpoint, LwM2MVersion: reg.Version, Binding: reg.Binding, QueueMode: reg.Queue,
		Lifetime: int64(reg.Lifetime / time.Second), ObjectLinks: reg.Links, Secure: reg.Secure,
		Registered: push.FormatTime(reg.Registered), LastUpdate: push.FormatTime(reg.Updated), Awake: reg.Awake(time.Now())}
	if reg.Addr != nil {
		v.Address = reg.Addr.String()
	}
	if reg.Queue {
		v.AwakeUntil = push.FormatTime(reg.AwakeUntil)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// opSender performs queued operations when the ops engine sends them. It
// is a command.Transmitter: lwm2m says when the request left (SENT), the
// device's answer ends it SUCCESSFUL with the answer as its result, a 4.xx
// FAILED with the code; no answer leaves it for the next wake-up.
type opSender struct{ p *Platform }

var (
	_ command.Sender      = opSender{}
	_ command.Transmitter = opSender{}
)

func (s opSender) Send(ctx context.Context, c command.Command) error {
	return s.Transmit(ctx, c, func() {})
}

func (s opSender) Transmit(ctx context.Context, c command.Command, left func()) error {
	p := s.p
	d, err := p.reg.Get(ctx, c.DeviceID)
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("%w: %v", command.ErrEncode, err) // the device is gone: the operation fails
	}
	if err != nil {
		// The lookup failed, e.g. the device's window (ctx) ended first:
		// the operation waits for the next try, as for a transport failure.
		return err
	}
	reg, ok := p.lwm.Registration(d.NodeID)
	if !ok {
		return fmt.Errorf("device %s has no LwM2M registration; the operation waits", d.ID)
	}
	var op lwm2mOp
	if err := json.Unmarshal(c.Body.Paras, &op); err != nil {
		return fmt.Errorf("%w: paras: %v", command.ErrEncode, err)
	}
	res, err := p.perform(transport.WithLeft(ctx, left), reg, op)
	if err != nil {
		return err
	}
	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%w: %v", command.ErrEncode, err)
	}
	if !res.Success {
		// The device refused it: FAILED with its code, as a command.
		return &command.RefusedError{Code: res.Code, Err: fmt.Errorf("device answered %s %s: %s", res.Code, res.Status, res.ErrorMessage)}
	}
	left() // answered: it has left, whatever lwm2m said
	return p.ops.Responded(ctx, d.ID, command.Response{Mid: c.Mid(), Body: body})
}

// opListener logs every move of a queued operation and pushes its end as
// lwm2mOperationResult.
type opListener struct{ p *Platform }

var _ command.Listener = opListener{}

func (l opListener) CommandChanged(c command.Command) {
	p := l.p
	v := operationView(c)
	p.log.Add(c.DeviceID, "lwm2m_operation", fmt.Sprintf("%s %s %s %s", c.ID, v.Op, v.Path, v.Status))
	if !c.Status.Final() {
		return
	}
	p.publish(p.ownerApps(c.DeviceID), operationResult{DeviceID: c.DeviceID, OperationID: c.ID, Op: v.Op, Path: v.Path, Status: v.Status,
		Result: c.Result, Reason: c.Reason})
}

// operationResult is the lwm2mOperationResult notification.
type operationResult struct {
	DeviceID    string          `json:"deviceId"`
	OperationID string          `json:"operationId"`
	Op          string          `json:"op"`
	Path        string          `json:"path"`
	Status      string          `json:"status"`
	Result      json.RawMessage `json:"result,omitempty"`
	Reason      string          `json:"reason,omitempty"`
}

func (operationResult) NotifyType() push.NotifyType { return push.LwM2MOperationResult }

func (n operationResult) MarshalJSON() ([]byte, error) {
	type plain operationResult
	return json.Marshal(struct {
		NotifyType push.NotifyType `json:"notifyType"`
		plain
	}{push.LwM2MOperationResult, plain(n)})
}

// newOps builds the engine of queued LwM2M operations over its own bucket.
func (p *Platform) newOps() (*command.Engine, error) {
	return command.New(p.db.LwM2MOps(), opSender{p}, opListener{p}, command.Config{
		DefaultMode: defaultMode(p.cfg),
		Node:        p.claimNode(),
		Sessions:    p.cluster.sessions(),
		Logger:      p.logger.With("pkg", "command", "queue", "lwm2m"),
	})
}

// readDeviceObject reads /3/0 into the device record (LWM-11): the
// manufacturer, model, firmware and software versions the device reports.
// It runs after a Register (a firmware update ends with one) and after a
// firmware upgrade's result.
func (p *Platform) readDeviceObject(d registry.Device, ep string) {
	p.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		c, err := p.lwm.Read(ctx, ep, "/3/0", transport.NoFormat)
		if err != nil {
			p.log.Add(d.ID, "device_object", "reading /3/0 failed: "+err.Error())
			return
		}
		recs, err := lwm2m.Decode(c.Format, lwm2m.MustPath("/3/0"), c.Payload, objectModel)
		if err != nil {
			p.log.Add(d.ID, "device_object", "the /3/0 answer does not decode: "+err.Error())
			return
		}
		var ch registry.Changes
		text := func(v lwm2m.Value) *string { s := strings.TrimSpace(v.String()); return &s }
		for _, r := range recs {
			switch r.Path.String() {
			case "/3/0/0":
				ch.ManufacturerName = text(r.Value)
			case "/3/0/3":
				ch.FWVersion = text(r.Value)
			case "/3/0/19":
				ch.SWVersion = text(r.Value)
			}
		}
		if ch == (registry.Changes{}) {
			return
		}
		if _, err := p.reg.Update(ctx, d.ID, ch); err != nil {
			p.log.Add(d.ID, "device_object", "storing /3/0 in the device record: "+err.Error())
		}
	})
}
