package lwm2m

import "strconv"

// Format is a CoAP content-format id (the Content-Format and Accept options)
// of an LwM2M payload.
type Format uint16

// The content formats of LwM2M 1.0 and 1.1 (SPEC LWM-6).
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
