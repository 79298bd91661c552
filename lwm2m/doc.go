// Package lwm2m is the LwM2M object model of Doze: paths, values and
// records, the content formats of OMA LwM2M 1.0 and 1.1 (LWM-6) and the
// table of object definitions (Objects). It does no I/O and imports no
// CoAP or DTLS library; the CoAP/DTLS server devices register with, the
// bootstrap server and the device client are in package lwm2m/transport.
//
// # Model
//
// A Path names the root, an object (/3), an object instance (/3/0), a
// resource (/3/0/1) or a resource instance (/3/0/6/1). ParsePath reads the
// text form, ParsePathSegments the CoAP Uri-Path segments, NewPath a list
// of ids. A Path is a small comparable value, usable as a map key. Ids are
// 0–65534; 65535 is MAX_ID, reserved by LwM2M.
//
// A Value is the value of one resource or resource instance, with one of
// the LwM2M data types (Type): String, Integer, Unsigned Integer, Float,
// Boolean, Opaque, Time, Objlnk, Corelnk. Values are immutable and compare
// with ==, and marshal to the natural JSON value of their type. A payload
// decodes to a list of Records, each a Path and a Value
// (and a time, for SenML): a single resource is one record at /o/i/r, a
// multiple resource is one record per instance at /o/i/r/ri. The same
// records encode back in any format. GroupResources gathers records into
// ResourceValues, single ones with their Value and multiple ones with
// their Instances.
//
// # Object definitions
//
// An Objects table maps object ids to ObjectDefs (resources with id, name,
// operations, single or multiple, mandatory, type, range, units).
// NewBuiltinObjects holds objects 0 LwM2M Security, 1 LwM2M Server,
// 3 Device, 4 Connectivity Monitoring, 5 Firmware Update (as in LwM2M 1.1:
// Update Result 0–9, State 0–3; see the Firmware* constants) and
// 19 BinaryAppDataContainer, written from the OMA specification.
// Objects.LoadDDF and LoadFS add objects from OMA DDF XML, the format of
// the OMA LwM2M registry, with errors that name the file and line.
//
// # Content formats
//
// Decode(format, path, payload, objects) and Encode(format, path,
// records) handle plain text (FormatText, 0), opaque (FormatOpaque, 42),
// TLV (FormatTLV, 11542), SenML JSON (FormatSenMLJSON, 110) and SenML CBOR
// (FormatSenMLCBOR, 112); the LwM2M 1.0 JSON format (FormatJSON, 11543) is
// decoded only. Each format also has its own DecodeX and AppendX function.
// The CoRE link format (FormatLink, 40) is not records: ParseLinks and
// AppendLinks read and write it, and ParseClientObjects interprets a
// registration body (root path and content formats announced with
// rt="oma.lwm2m", objects with their instances and versions).
//
// The path given to Decode is the path of the request (or of the observed
// resource): record names must lie under it. The body of an LwM2M 1.1 Send
// (POST /dp) names any resources, so it decodes with RootPath.
//
// Decoders type each value with the definition of its resource when the
// table has one. Without one, formats that carry a type keep it (SenML
// and LwM2M JSON: v is Integer when integral, else Float; vs String; vb
// Boolean; vd Opaque; vlo Objlnk) and TLV and text give a Raw value, the
// bytes as they came, which Value.As converts once the type is known.
// Opaque content is always Opaque.
//
// # Errors
//
// Bad input gets an error that says what was wrong, where, and what is
// allowed: *PathError (wrapping ErrInvalidPath) with the byte offset in the
// path; *DecodeError (wrapping ErrMalformed) with the content format, the
// LwM2M path of the item and the byte offset in the payload (for SenML and
// LwM2M JSON, the offset of the record); *EncodeError (ErrEncode);
// *DefinitionError (ErrInvalidDefinition) with file and line. Decoders
// never allocate more than a small multiple of the payload, whatever its
// length fields claim: TLV lengths are checked against the bytes left
// before use; each SenML CBOR record is checked to be well formed before
// it is decoded, the record count of the array head (at most 65536) only
// bounds the loop, and records have at most 32 fields. Tests hold hostile
// payloads to a few hundred bytes of allocation.
//
// # Decisions where the issue was silent
//
//   - ParsePath is strict: no leading zeros, signs, empty segments or
//     trailing slash, so every path it accepts prints back unchanged.
//   - ParseLinks follows RFC 6690 (no whitespace between links) but
//     tolerates trailing whitespace and NUL bytes, which some C clients
//     send. ParseClientObjects refuses a link that is not an object or
//     object instance under the root path, rather than ignoring it.
//   - DecodeTLV accepts what common clients send besides the exact form:
//     an object instance wrapping the resources of /o/i, resources right
//     under /o (taken as instance 0), bare resource instances for /o/i/r.
//   - AppendTLV writes integers in the fewest bytes (1, 2, 4, 8) and floats
//     in 4 bytes when float32 holds them exactly, else 8.
//   - Plain text carries Opaque as base64 and Objlnk as "object:instance"
//     (LwM2M 1.1); SenML vd is written as base64url without padding
//     (RFC 8428) and read with or without padding, URL or standard alphabet.
//   - SenML encoders put bn on the first record: "/o/i/" for a request on
//     an object instance or below, "/o/" for an object, none at the root.
//     bt+t become Record.Time as absolute Unix time; RFC 8428's relative
//     times (values below 2^28) are not resolved against a clock.
//   - Objects.Add replaces an object already defined with the same id,
//     so a DDF file can override a built-in definition.
//
// # Caveats
//
//   - A multiple resource with no instances, or an object instance with no
//     resources, decodes to no records (records hold values).
//   - Decoders do not check a payload against the definition's single or
//     multiple flag, or its range; they check types.
//   - SenML fields other than bn, bt, n, v, vs, vb, vd, vlo and t are
//     ignored, including "must understand" fields ending in "_".
//
// # Concurrency
//
// Paths, Values and Records are plain values. The Decode and Encode
// functions keep no state and may be called from many goroutines. An
// Objects table is safe for concurrent use, including adding definitions
// while others decode.
//
// # Performance
//
// BenchmarkDevice decodes and encodes the Device object /3/0 (121 bytes of
// TLV) against encoding/json of the same data: TLV decodes 5.4× and
// encodes 1.7× faster than json, AppendTLV allocates nothing (a test
// asserts it), SenML is 1.1–2.8× slower than json. Figures and machine in
// docs/benchmarks.md.
package lwm2m
