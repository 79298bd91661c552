package main

// Composite LwM2M operations through the API (LWM-11): Read-Composite,
// Write-Composite, Observe-Composite and its cancel, as Leshan's REST API
// offers them, at POST /doze/v1/devices/{deviceId}/lwm2m-composite with
// {op: read|write|observe|cancel-observe, paths, values?, format?}. They
// are operations like the others (api_lwm2m.go): performed at once on an
// awake device, queued on a sleeping one, with the same results and
// lwm2mOperationResult. Only a device that registered LwM2M 1.1 (with a
// SenML format, when it lists formats) takes them; any other gets 400
// composite_unsupported before anything is queued or sent.
//
// The answer's content is Leshan's: {"/3303/0/5700": {node}, …}, one node
// per path asked. A write's values are {path: node} (a node, or the bare
// value of a resource), written in the order of paths when given, else
// sorted by path. Values of a read or observe that a product maps are
// reports (LWM-12); the notifications of an Observe-Composite are
// reported, and their unmapped values pushed as lwm2mNotification, like
// any other.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

// The composite operations (lwm2mOp.Op).
const (
	opReadComposite          = "read-composite"
	opWriteComposite         = "write-composite"
	opObserveComposite       = "observe-composite"
	opCancelObserveComposite = "cancel-observe-composite"
)

func isComposite(op string) bool {
	switch op {
	case opReadComposite, opWriteComposite, opObserveComposite, opCancelObserveComposite:
		return true
	}
	return false
}

// compositeOps maps the "op" of a composite call to the operation.
var compositeOps = map[string]string{
	"read": opReadComposite, "write": opWriteComposite, "observe": opObserveComposite, "cancel-observe": opCancelObserveComposite,
}

// compositeFormats are the formats a composite operation may name.
var compositeFormats = map[string]lwm2m.Format{"SENML_JSON": lwm2m.FormatSenMLJSON, "SENML_CBOR": lwm2m.FormatSenMLCBOR}

// checkComposite validates a composite operation for registration r and
// returns its paths. A device that is not LwM2M 1.1 gets an error
// wrapping transport.ErrCompositeUnsupported.
func (op *lwm2mOp) checkComposite(r transport.Registration) ([]lwm2m.Path, error) {
	if r.TUP || r.Version != "1.1" {
		v := "LwM2M " + r.Version
		if r.TUP {
			v = "TUP"
		}
		return nil, fmt.Errorf("%w: the device registered %s; composite operations are LwM2M 1.1", transport.ErrCompositeUnsupported, v)
	}
	if _, err := compositeFormat(op.Format); err != nil {
		return nil, err
	}
	if len(r.Objects.Formats) > 0 && !slices.Contains(r.Objects.Formats, lwm2m.FormatSenMLJSON) && !slices.Contains(r.Objects.Formats, lwm2m.FormatSenMLCBOR) {
		return nil, fmt.Errorf("%w: the device's registration lists the content formats %v, no SenML", transport.ErrCompositeUnsupported, r.Objects.Formats)
	}
	names := op.Paths
	if op.Op == opWriteComposite {
		if len(op.Values) == 0 {
			return nil, errors.New("a composite write needs values: {\"/3303/0/5750\": {\"id\":5750,\"value\":\"outdoor\"}, …}")
		}
		if len(names) == 0 {
			for k := range op.Values {
				names = append(names, k)
			}
			slices.Sort(names)
		} else if len(names) != len(op.Values) {
			return nil, fmt.Errorf("a composite write names %d paths and gives %d values; give one value per path", len(names), len(op.Values))
		}
	} else if len(op.Values) > 0 {
		return nil, fmt.Errorf("a composite %s takes paths only, no values", strings.TrimSuffix(op.Op, "-composite"))
	}
	if len(names) == 0 || len(names) > transport.MaxCompositePaths {
		return nil, fmt.Errorf("a composite operation names 1 to %d paths, got %d", transport.MaxCompositePaths, len(names))
	}
	paths := make([]lwm2m.Path, len(names))
	for i, n := range names {
		p, err := lwm2m.ParsePath(n)
		if err != nil || p.IsRoot() {
			return nil, fmt.Errorf("path %q is not an LwM2M path /object[/instance[/resource[/instance]]]", n)
		}
		if op.Op == opWriteComposite {
			if p.Len() < 3 {
				return nil, fmt.Errorf("a composite write takes resources and resource instances, not %s", p)
			}
			if _, ok := op.Values[n]; !ok {
				return nil, fmt.Errorf("no value for path %s", n)
			}
			if _, err := fromNode(p, op.Values[n], false); err != nil {
				return nil, fmt.Errorf("value of %s: %v", n, err)
			}
		}
		paths[i] = p
	}
	return paths, nil
}

// compositeFormat returns the format named ("" for the registration's).
func compositeFormat(named string) (lwm2m.Format, error) {
	if named == "" {
		return transport.NoFormat, nil
	}
	f, ok := compositeFormats[strings.ToUpper(named)]
	if !ok {
		return 0, fmt.Errorf("format %q: a composite operation is SENML_JSON or SENML_CBOR", named)
	}
	return f, nil
}

// lwm2mComposite is the handler of POST …/lwm2m-composite.
func (p *Platform) lwm2mComposite(w http.ResponseWriter, r *http.Request) error {
	body, err := readSmallBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Op     string                     `json:"op"`
		Paths  []string                   `json:"paths"`
		Values map[string]json.RawMessage `json:"values"`
		Format string                     `json:"format"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return badRequest("bad_body", "the body is not {op, paths, values?, format?}: %v", err)
	}
	op, ok := compositeOps[in.Op]
	if !ok {
		return badRequest("bad_lwm2m_operation", "op %q is none of read, write, observe, cancel-observe", in.Op)
	}
	o := lwm2mOp{Op: op, Paths: in.Paths, Values: in.Values, Format: in.Format}
	if o.Format == "" {
		o.Format = r.URL.Query().Get("format")
	}
	if len(o.Paths) == 0 && op == opWriteComposite {
		for k := range o.Values {
			o.Paths = append(o.Paths, k)
		}
		slices.Sort(o.Paths)
	}
	o.Path = strings.Join(o.Paths, ",")
	return p.lwm2mOperation(w, r, o)
}

// performComposite runs a composite operation on the device now.
func (p *Platform) performComposite(ctx context.Context, r transport.Registration, op lwm2mOp) (opResult, error) {
	paths, err := op.checkComposite(r)
	if err != nil {
		return opResult{}, fmt.Errorf("%w: %w", command.ErrEncode, err)
	}
	f, _ := compositeFormat(op.Format)
	ep := r.Endpoint
	var c transport.Content
	switch op.Op {
	case opReadComposite:
		c, err = p.lwm.ReadComposite(ctx, ep, paths, f)
	case opObserveComposite:
		c, err = p.lwm.ObserveComposite(ctx, ep, paths, f)
	case opCancelObserveComposite:
		err = p.lwm.CancelObserveComposite(ctx, ep, paths, f)
	case opWriteComposite:
		var recs []lwm2m.Record
		for _, path := range paths {
			rs, _ := fromNode(path, op.Values[path.String()], false) // checked
			recs = append(recs, rs...)
		}
		err = p.lwm.WriteComposite(ctx, ep, recs, f)
	}
	if re, ok := errors.AsType[*transport.ResponseError](err); ok {
		code := re.CodeText()
		return opResult{Status: codeName(code), Code: code, ErrorMessage: re.Message}, nil
	}
	if errors.Is(err, transport.ErrNotFound) {
		return opResult{}, fmt.Errorf("%w: %w", command.ErrEncode, err) // no such observation
	}
	if err != nil {
		return opResult{}, err
	}
	if op.Op != opReadComposite && op.Op != opObserveComposite {
		return opResult{Status: "CHANGED", Code: "2.04", Success: true}, nil
	}
	p.mappedRead(ctx, ep, lwm2m.RootPath, c) // LWM-12: mapped values are reports
	res := opResult{Status: "CONTENT", Code: "2.05", Success: true}
	recs, err := lwm2m.Decode(c.Format, lwm2m.RootPath, c.Payload, objectModel)
	if err != nil {
		res.ErrorMessage = fmt.Sprintf("the device's answer (content format %d, %d bytes) does not decode: %v", c.Format, len(c.Payload), err)
		return res, nil
	}
	content := map[string]node{}
	var missing []string
	for _, path := range paths {
		var sel []lwm2m.Record
		for _, rec := range recs {
			if path.Contains(rec.Path) {
				sel = append(sel, rec)
			}
		}
		n, err := toNode(path, sel)
		if err != nil || len(sel) == 0 {
			missing = append(missing, path.String())
			continue
		}
		content[path.String()] = n
	}
	res.Content = content
	if len(missing) > 0 {
		res.ErrorMessage = "the device's answer holds no value for " + strings.Join(missing, ", ")
	}
	return res, nil
}
