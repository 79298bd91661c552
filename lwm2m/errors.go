package lwm2m

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors of the data side of the package: paths, content formats and object
// definitions. (Package lwm2m/transport holds the errors of the server.)

var (
	// ErrInvalidPath is wrapped by every *PathError: a string or a list of
	// ids that is not an LwM2M path /object/instance/resource/resource-instance.
	ErrInvalidPath = errors.New("lwm2m: invalid path")

	// ErrMalformed is wrapped by every *DecodeError: a payload that does not
	// follow its content format, or a value that does not fit the type of
	// its resource.
	ErrMalformed = errors.New("lwm2m: malformed payload")

	// ErrUnsupportedFormat is returned by Encode and Decode for a content
	// format the package does not handle in that direction (for example
	// encoding the old LwM2M JSON 11543, which is decoded only).
	ErrUnsupportedFormat = errors.New("lwm2m: unsupported content format")

	// ErrEncode is wrapped by every *EncodeError: values that cannot be
	// written in the requested content format.
	ErrEncode = errors.New("lwm2m: cannot encode")

	// ErrInvalidDefinition is wrapped by every *DefinitionError: an object
	// definition (OMA DDF XML) that is malformed or inconsistent.
	ErrInvalidDefinition = errors.New("lwm2m: invalid object definition")
)

// PathError reports a path that could not be parsed or built. It wraps
// ErrInvalidPath.
type PathError struct {
	Input  string // the text that was parsed, or the ids formatted as a path
	Offset int    // byte offset in Input where the problem starts
	Reason string // what is wrong and what is allowed
}

// Error returns "lwm2m: invalid path <input> at byte <offset>: <reason>".
func (e *PathError) Error() string {
	return fmt.Sprintf("lwm2m: invalid path %q at byte %d: %s", e.Input, e.Offset, e.Reason)
}

// Unwrap returns ErrInvalidPath.
func (e *PathError) Unwrap() error { return ErrInvalidPath }

// DecodeError reports a payload that could not be decoded. It names the
// content format, the LwM2M path of the item being decoded (when one is
// known) and the byte offset of the problem in the payload. It wraps
// ErrMalformed, and Err when that is set.
type DecodeError struct {
	Format Format // content format being decoded
	Path   string // LwM2M path of the item, "" when not known yet
	Offset int    // byte offset in the payload
	Reason string // what is wrong and what is allowed
	Err    error  // underlying cause, may be nil
}

// Error names the format, the path, the byte offset and the reason.
func (e *DecodeError) Error() string {
	s := "lwm2m: " + e.Format.String()
	if e.Path != "" {
		s += " " + e.Path
	}
	s += " at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrMalformed and the underlying cause.
func (e *DecodeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrMalformed, e.Err}
	}
	return []error{ErrMalformed}
}

// EncodeError reports values that cannot be encoded in a content format. It
// wraps ErrEncode.
type EncodeError struct {
	Format Format // content format being encoded
	Path   string // LwM2M path of the offending value
	Reason string // what is wrong and what is allowed
}

// Error names the format, the path and the reason.
func (e *EncodeError) Error() string {
	s := "lwm2m: cannot encode " + e.Format.String()
	if e.Path != "" {
		s += " " + e.Path
	}
	return s + ": " + e.Reason
}

// Unwrap returns ErrEncode.
func (e *EncodeError) Unwrap() error { return ErrEncode }

// DefinitionError reports a problem in an object definition, with the file
// (or source name) and line of the problem when known. It wraps
// ErrInvalidDefinition.
type DefinitionError struct {
	Source string // file name or other source label, "" when unknown
	Line   int    // 1-based line, 0 when unknown
	Object int    // object id, -1 when unknown
	Reason string // what is wrong and what is allowed
	Err    error  // underlying cause, may be nil
}

// Error names the source and line, the object and the reason.
func (e *DefinitionError) Error() string {
	s := "lwm2m: object definition"
	if e.Source != "" {
		s += " " + e.Source
		if e.Line > 0 {
			s += ":" + strconv.Itoa(e.Line)
		}
	}
	if e.Object >= 0 {
		s += " object " + strconv.Itoa(e.Object)
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrInvalidDefinition and the underlying cause.
func (e *DefinitionError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidDefinition, e.Err}
	}
	return []error{ErrInvalidDefinition}
}
