package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// DownlinkForm is how Downlink writes application data into object 19
// (BinaryAppDataContainer). Its resource 0, Data, is a Multiple resource,
// so a conforming client takes the data as a resource instance or as the
// resource in a format that carries instances; opaque bytes written to the
// resource itself are refused with 4.00 (the Plain Text and Opaque formats
// carry one Single-Instance resource or one resource instance). Modules
// built for the original platform expect exactly that opaque write.
type DownlinkForm uint8

// The downlink forms. DownlinkAuto chooses per device (see Server.Downlink).
const (
	DownlinkAuto     DownlinkForm = iota
	DownlinkInstance              // PUT /19/1/0/0, opaque: the resource instance (LwM2M 1.1)
	DownlinkTLV                   // PUT /19/1/0, TLV: the Multiple resource with instance 0 (LwM2M 1.0)
	DownlinkSenML                 // PUT /19/1/0, SenML JSON (CBOR when the device announced only CBOR) with instance 0
	DownlinkLegacy                // PUT /19/1/0, opaque: modules built for the original platform
)

var downlinkFormNames = [...]string{"auto", "instance", "tlv", "senml", "legacy"}

// String returns the form's name: "auto", "instance", "tlv", "senml" or
// "legacy".
func (f DownlinkForm) String() string {
	if int(f) < len(downlinkFormNames) {
		return downlinkFormNames[f]
	}
	return fmt.Sprintf("DownlinkForm(%d)", uint8(f))
}

// ParseDownlinkForm returns the form named s, as String spells it (case
// does not matter), for settings kept as text.
func ParseDownlinkForm(s string) (DownlinkForm, error) {
	for i, n := range downlinkFormNames {
		if strings.EqualFold(s, n) {
			return DownlinkForm(i), nil
		}
	}
	return 0, fmt.Errorf("lwm2m: downlink form %q: want one of %s", s, strings.Join(downlinkFormNames[:], ", "))
}

// downlinkTable is a Server's memory of downlink forms: those forced per
// endpoint or for all, and those that worked.
type downlinkTable struct {
	mu      sync.Mutex
	all     DownlinkForm            // forced for every endpoint without its own; DownlinkAuto: none
	forced  map[string]DownlinkForm // normalized endpoint →
	learned map[string]DownlinkForm // normalized endpoint → the form that last carried a downlink
}

func (s *Server) downlinks() *downlinkTable { return &s.forms }

// SetDownlinkForm forces the form of every downlink to endpoint, with no
// fallback; DownlinkAuto lets Downlink choose again. It applies from the
// next downlink and across re-registrations. A platform maps a product
// setting onto it by calling it for each device of the product when the
// device registers.
func (s *Server) SetDownlinkForm(endpoint string, f DownlinkForm) {
	t := s.downlinks()
	ep := NormalizeEndpoint(endpoint)
	t.mu.Lock()
	defer t.mu.Unlock()
	if f == DownlinkAuto {
		delete(t.forced, ep)
		return
	}
	t.forced[ep] = f
}

// SetDefaultDownlinkForm forces f for every endpoint that has no form of
// its own (SetDownlinkForm); DownlinkAuto, the default, lets Downlink
// choose.
func (s *Server) SetDefaultDownlinkForm(f DownlinkForm) {
	t := s.downlinks()
	t.mu.Lock()
	t.all = f
	t.mu.Unlock()
}

// LearnedDownlinkForm returns the form that last carried a downlink to
// endpoint while Downlink chose, and whether there is one. The memory is
// the Server's, in memory only: a caller that wants it to outlive a
// restart stores it and gives it back with RememberDownlinkForm.
func (s *Server) LearnedDownlinkForm(endpoint string) (DownlinkForm, bool) {
	t := s.downlinks()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.learned[NormalizeEndpoint(endpoint)]
	return f, ok
}

// RememberDownlinkForm tells the Server that f carries downlinks to
// endpoint (a form learned before a restart): Downlink tries it first.
// DownlinkAuto forgets what was learned.
func (s *Server) RememberDownlinkForm(endpoint string, f DownlinkForm) {
	t := s.downlinks()
	ep := NormalizeEndpoint(endpoint)
	t.mu.Lock()
	defer t.mu.Unlock()
	if f == DownlinkAuto {
		delete(t.learned, ep)
		return
	}
	t.learned[ep] = f
}

// plan returns the forms to try for a device registered as r, in order,
// and whether the form is forced.
func (t *downlinkTable) plan(r Registration) ([]DownlinkForm, bool) {
	t.mu.Lock()
	forced, ok := t.forced[r.Endpoint]
	if !ok && t.all != DownlinkAuto {
		forced, ok = t.all, true
	}
	learned, known := t.learned[r.Endpoint]
	t.mu.Unlock()
	if ok {
		return []DownlinkForm{forced}, true
	}
	forms := versionForms(r)
	if known {
		forms = slices.DeleteFunc(forms, func(f DownlinkForm) bool { return f == learned })
		forms = slices.Insert(forms, 0, learned)
	}
	return forms, false
}

// versionForms returns the forms Downlink tries, in order, for a device
// that knows nothing of it yet. An LwM2M 1.0 client knows no
// resource-instance paths and has TLV for Multiple resources; a 1.1 client
// takes the resource instance, or the resource in the formats it announced
// (SenML, TLV; both when it announced none). The legacy opaque write comes
// last.
func versionForms(r Registration) []DownlinkForm {
	if strings.HasPrefix(r.Version, "1.0") {
		return []DownlinkForm{DownlinkTLV, DownlinkLegacy}
	}
	forms := []DownlinkForm{DownlinkInstance}
	senml := slices.Contains(r.Objects.Formats, lwm2m.FormatSenMLJSON) || slices.Contains(r.Objects.Formats, lwm2m.FormatSenMLCBOR)
	tlv := slices.Contains(r.Objects.Formats, lwm2m.FormatTLV)
	if senml || !tlv {
		forms = append(forms, DownlinkSenML)
	}
	if tlv || !senml {
		forms = append(forms, DownlinkTLV)
	}
	return append(forms, DownlinkLegacy)
}

func (t *downlinkTable) learn(ep string, f DownlinkForm) {
	t.mu.Lock()
	t.learned[ep] = f
	t.mu.Unlock()
}

func (t *downlinkTable) forget(ep string, f DownlinkForm) {
	t.mu.Lock()
	if t.learned[ep] == f {
		delete(t.learned, ep)
	}
	t.mu.Unlock()
}

// downlinkPath is object 19's Data resource of instance 1, where the
// server writes; /19/0/0 carries the device's uplink.
var downlinkPath = lwm2m.MustPath("/19/1/0")

// fallsBack reports whether a refusal with code means "not in this form":
// 4.00 Bad Request (a Multiple resource written as single), 4.04 Not Found
// (no resource-instance path) or 4.15 Unsupported Content-Format.
func fallsBack(code Code) bool {
	return code == CodeBadRequest || code == CodeNotFound || code == CodeUnsupportedContentFormat
}

// leftKey is the context key of WithLeft's function.
type leftKey struct{}

// WithLeft returns a context that makes the requests sent with it call
// left once, as soon as the first transmission of the first message has
// gone out to the device (the first form of a Downlink, the first block
// of a Block1 body), before its ACK. A caller that tells "sent" from
// "acknowledged" (a command's SENT and DELIVERED, CMD-1) learns the first
// from left and the second from the request's return. left runs on the
// goroutine that sends; it must not send to the same device.
func WithLeft(ctx context.Context, left func()) context.Context {
	var once sync.Once
	return context.WithValue(ctx, leftKey{}, func() { once.Do(left) })
}

// Downlink sends application data to the device: a POST to /t/d for TUP
// devices (LWM-4); for LwM2M devices a write into object 19's resource
// /19/1/0 (LWM-5) in the form the device takes (see DownlinkForm).
//
// Unless a form is forced (SetDownlinkForm, SetDefaultDownlinkForm), the
// form that last worked for the device is tried first, then the forms of
// its LwM2M version: for 1.0 TLV, then legacy; for 1.1 and later the
// resource instance, the resource as SenML or TLV (by the formats the
// device announced), then legacy. A refusal with 4.00, 4.04 or 4.15 moves
// to the next form; the form that works is remembered
// (LearnedDownlinkForm). When every form is refused, or on any other
// refusal, the error wraps the device's last *ResponseError, whose Code a
// caller branches on: a 4.xx answer will not change by sending again.
func (s *Server) Downlink(ctx context.Context, endpoint string, data []byte) error {
	r, ok := s.Registration(endpoint)
	if !ok {
		return fmt.Errorf("lwm2m: downlink to %q: %w", NormalizeEndpoint(endpoint), ErrNotRegistered)
	}
	if r.TUP {
		m := newRequest(codes.POST, "/t/d")
		setContentFormat(m, cfOpaque)
		m.Payload = data
		_, err := s.request(ctx, "downlink", endpoint, "/t/d", m)
		return err
	}
	t := s.downlinks()
	forms, forced := t.plan(r)
	for i, f := range forms {
		err := s.writeDownlink(ctx, r, f, data)
		if err == nil {
			if !forced {
				t.learn(r.Endpoint, f)
			}
			return nil
		}
		var re *ResponseError
		if !errors.As(err, &re) || !fallsBack(re.Code) {
			return err
		}
		t.forget(r.Endpoint, f)
		if i == len(forms)-1 {
			return fmt.Errorf("lwm2m: downlink to %q refused in every form tried (%v): %w", r.Endpoint, forms, err)
		}
		s.log.Debug("lwm2m: downlink form refused; trying the next", "endpoint", r.Endpoint, "form", f, "code", re.Code.String())
	}
	return nil // not reached: plan returns at least one form
}

// writeDownlink writes data to the device registered as r in form f.
func (s *Server) writeDownlink(ctx context.Context, r Registration, f DownlinkForm, data []byte) error {
	inst := lwm2m.Record{Path: lwm2m.MustPath("/19/1/0/0"), Value: lwm2m.OpaqueValue(data)}
	switch f {
	case DownlinkInstance:
		return s.Write(ctx, r.Endpoint, inst.Path.String(), Content{Format: lwm2m.FormatOpaque, Payload: data})
	case DownlinkLegacy:
		return s.Write(ctx, r.Endpoint, downlinkPath.String(), Content{Format: lwm2m.FormatOpaque, Payload: data})
	case DownlinkTLV, DownlinkSenML:
		cf := lwm2m.FormatTLV
		if f == DownlinkSenML {
			cf = lwm2m.FormatSenMLJSON
			if slices.Contains(r.Objects.Formats, lwm2m.FormatSenMLCBOR) && !slices.Contains(r.Objects.Formats, lwm2m.FormatSenMLJSON) {
				cf = lwm2m.FormatSenMLCBOR
			}
		}
		b, err := lwm2m.Encode(cf, downlinkPath, []lwm2m.Record{inst})
		if err != nil {
			return fmt.Errorf("lwm2m: downlink to %q as %v: %w", r.Endpoint, f, err)
		}
		return s.Write(ctx, r.Endpoint, downlinkPath.String(), Content{Format: cf, Payload: b})
	}
	return fmt.Errorf("lwm2m: downlink to %q: unknown form %v", r.Endpoint, f)
}
