package lwm2m

import (
	"fmt"
	"strconv"
)

// Format is a CoAP content-format id (the Content-Format and Accept options)
// of an LwM2M payload.
type Format uint16

// The content formats of LwM2M 1.0 and 1.1 (LWM-6).
const (
	FormatText      Format = 0     // text/plain: one resource value
	FormatLink      Format = 40    // application/link-format (RFC 6690)
	FormatOpaque    Format = 42    // application/octet-stream: one opaque value
	FormatSenMLJSON Format = 110   // application/senml+json (RFC 8428)
	FormatSenMLCBOR Format = 112   // application/senml+cbor (RFC 8428)
	FormatTLV       Format = 11542 // application/vnd.oma.lwm2m+tlv
	FormatJSON      Format = 11543 // application/vnd.oma.lwm2m+json (LwM2M 1.0 JSON)
)

// String returns the media type of f, or "content-format N" for an id the
// package does not know.
func (f Format) String() string {
	switch f {
	case FormatText:
		return "text/plain"
	case FormatLink:
		return "application/link-format"
	case FormatOpaque:
		return "application/octet-stream"
	case FormatSenMLJSON:
		return "application/senml+json"
	case FormatSenMLCBOR:
		return "application/senml+cbor"
	case FormatTLV:
		return "application/vnd.oma.lwm2m+tlv"
	case FormatJSON:
		return "application/vnd.oma.lwm2m+json"
	}
	return "content-format " + strconv.Itoa(int(f))
}

// Decode decodes payload, in content format f, read from (or sent for)
// path base, and returns its values as records in payload order. reg gives
// the type of each resource; a resource it does not define gets the type
// the format carries (SenML, LwM2M JSON) or a Raw value (TLV, text; see
// Value.As). A nil reg defines nothing. Link format (40) is not records:
// use ParseLinks. Errors are *DecodeError naming the path and byte offset,
// or ErrUnsupportedFormat.
func Decode(f Format, base Path, payload []byte, reg *Objects) ([]Record, error) {
	switch f {
	case FormatText:
		return DecodeText(base, payload, reg)
	case FormatOpaque:
		return DecodeOpaque(base, payload, reg)
	case FormatTLV:
		return DecodeTLV(base, payload, reg)
	case FormatJSON:
		return DecodeJSON(base, payload, reg)
	case FormatSenMLJSON:
		return DecodeSenMLJSON(base, payload, reg)
	case FormatSenMLCBOR:
		return DecodeSenMLCBOR(base, payload, reg)
	}
	return nil, unsupported(f, "decoding")
}

// Encode encodes recs, the values at or below path base, in content format
// f: text (0) and opaque (42) for one value at base, TLV (11542), SenML
// JSON (110) and SenML CBOR (112) for any number. The LwM2M 1.0 JSON
// format (11543) is decoded only. Errors are *EncodeError or
// ErrUnsupportedFormat.
func Encode(f Format, base Path, recs []Record) ([]byte, error) {
	switch f {
	case FormatText:
		return AppendText(nil, base, recs)
	case FormatOpaque:
		return AppendOpaque(nil, base, recs)
	case FormatTLV:
		return AppendTLV(nil, base, recs)
	case FormatSenMLJSON:
		return AppendSenMLJSON(nil, base, recs)
	case FormatSenMLCBOR:
		return AppendSenMLCBOR(nil, base, recs)
	}
	return nil, unsupported(f, "encoding")
}

func unsupported(f Format, what string) error {
	return fmt.Errorf("%w: %s for %s; Decode takes 0, 42, 11542, 11543, 110 and 112, Encode all but 11543, and link format (40) goes through ParseLinks and AppendLinks",
		ErrUnsupportedFormat, what, f)
}
