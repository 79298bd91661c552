// Package lwm2m is Doze's LwM2M side: the object model and content formats
// of OMA LwM2M 1.0/1.1 (SPEC LWM-6) and, in later work, the CoAP/DTLS
// server that devices register with (SPEC LWM-1 to LWM-5, LWM-7 to LWM-10).
//
// # Paths
//
// A Path is /object/instance/resource/resource-instance with one to four
// ids (or none, for the root). ParsePath reads the text form ("/3/0/1"),
// ParsePathSegments the CoAP Uri-Path segments, NewPath a list of ids. A
// Path is a small comparable value usable as a map key. Ids are 0–65534;
// 65535 is MAX_ID, reserved by LwM2M. Decision: ParsePath is strict (no
// leading zeros, no signs, no empty segments or trailing slash), so that
// every accepted text prints back unchanged.
//
// # Link format
//
// ParseLinks and AppendLinks read and write the CoRE link format (RFC 6690,
// content format 40) as LwM2M uses it in registration bodies and Discover
// answers. ParseClientObjects interprets a registration body: the root path
// and content formats announced with rt="oma.lwm2m", and each object with
// its instances and version. Decision: ParseLinks accepts no whitespace
// between links (RFC 6690 has none) but tolerates trailing whitespace and
// NUL bytes at the end of a payload, which some C clients send.
//
// # Errors
//
// Bad input gets an error that names what was wrong and where: *PathError
// (wrapping ErrInvalidPath) with the byte offset in the path text,
// *DecodeError (wrapping ErrMalformed) with the content format, the LwM2M
// path being decoded and the byte offset in the payload.
//
// # Server
//
// Not part of this package yet.
//
// # Concurrency
//
// Paths, links and the values they produce are plain values; the functions
// above keep no state and are safe to call from many goroutines.
package lwm2m
