package codec

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Callers branch on them with errors.Is; the errors returned
// by Decode, Encode and Compile wrap them with the message, field and offset.
var (
	// ErrPCP reports a payload that starts with the bytes FF FE: a PCP
	// (firmware upgrade) frame, which never goes to a codec (COD-4, OTA-6).
	// The caller routes such a payload to the ota package instead.
	ErrPCP = errors.New("codec: payload starts with FF FE: a PCP frame, not codec data")

	// ErrNoAck is returned by Encode for a *ReportAck when the codec sends no
	// acknowledgement for that report (its message is not marked
	// "addResponse"). It is not a failure: the platform simply sends nothing.
	ErrNoAck = errors.New("codec: no acknowledgement for this report")

	// ErrTruncated reports a payload that ends inside a field.
	ErrTruncated = errors.New("codec: payload too short")

	// ErrTrailing reports bytes left over after the last field of a message.
	ErrTrailing = errors.New("codec: bytes left over after the last field")

	// ErrUnknownMessage reports a payload whose messageId matches no message
	// of its direction, or a JSON message that matches no codec message.
	ErrUnknownMessage = errors.New("codec: no message matches")

	// ErrEmpty reports an empty payload.
	ErrEmpty = errors.New("codec: empty payload")

	// ErrRange reports a value that does not fit its field (300 into uint8).
	ErrRange = errors.New("codec: value out of range for the field")

	// ErrValue reports a value of the wrong kind for its field (a string for
	// an integer, a fraction for an integer, text that is not base64, …).
	ErrValue = errors.New("codec: value not allowed for the field")

	// ErrMissing reports a field with no value in the message and no default.
	ErrMissing = errors.New("codec: value missing and the field has no default")

	// ErrNotFinite reports a float field holding NaN or an infinity, which
	// JSON cannot carry.
	ErrNotFinite = errors.New("codec: float is NaN or infinite")

	// ErrInvalid is wrapped by *CompileError: the declarative codec has
	// problems and was not compiled.
	ErrInvalid = errors.New("codec: invalid declarative codec")

	// ErrMessage reports a JSON message that is not one of the four COD-1
	// shapes or is not valid for the operation.
	ErrMessage = errors.New("codec: bad message")
)

// FieldError says where decoding or encoding failed: the codec message, the
// field and the byte offset of the field in the payload. Field is empty for
// problems of the whole message (trailing bytes, unknown messageId). Offset
// is -1 when no byte position applies (no message matched the JSON, a para
// the message does not have); on encoding it is the offset the field would
// have been written at.
type FieldError struct {
	Message string // codec message name, "" if no message was identified
	Field   string // field name, "" for the whole message
	Offset  int    // byte offset of the field in the payload, or -1
	Err     error  // what went wrong; wraps one of the sentinels above
}

// Error returns e.g. "codec: message meterReading, field temperature at byte
// 3: need 2 bytes, 1 left".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("codec: ")
	n := b.Len()
	if e.Message != "" {
		b.WriteString("message ")
		b.WriteString(e.Message)
	}
	if e.Field != "" {
		if b.Len() > n {
			b.WriteString(", ")
		}
		b.WriteString("field ")
		b.WriteString(e.Field)
	}
	if e.Offset >= 0 {
		if b.Len() > n {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "at byte %d", e.Offset)
	}
	if b.Len() > n {
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "codec: "))
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *FieldError) Unwrap() error { return e.Err }

// Problem is one thing wrong with a declarative codec (COD-3). Code is
// stable and meant for programs and tests; Text is a sentence for people.
type Problem struct {
	Code    string `json:"code"`              // stable, e.g. "duplicate-message-id"
	Message string `json:"message,omitempty"` // codec message name, if the problem is in one
	Field   string `json:"field,omitempty"`   // field name, if the problem is in one
	Text    string `json:"text"`              // what is wrong and what is allowed
	// Line and Column locate the problem in the codec's JSON (the field's
	// or message's opening brace, or the syntax error), 1-based; 0 when
	// unknown (CompileSpec, problems of the whole codec).
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
}

// String returns e.g. `line 7:9: message meterReading, field messageId:
// [message-id-type] a messageId field must be an integer type, not string`.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d:%d: ", p.Line, p.Column)
	}
	n := b.Len()
	if p.Message != "" {
		b.WriteString("message ")
		b.WriteString(p.Message)
	}
	if p.Field != "" {
		if b.Len() > n {
			b.WriteString(", ")
		}
		b.WriteString("field ")
		b.WriteString(p.Field)
	}
	if b.Len() > n {
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "[%s] %s", p.Code, p.Text)
	return b.String()
}

// Problem codes. Each is stable; the COD-3 rules have one each.
const (
	// COD-3 rules.
	CodeDuplicateMessageID = "duplicate-message-id" // two messages of one direction share a messageId value
	CodeMessageIDPosition  = "message-id-position"  // messageId at different field indexes in one direction
	CodeMissingMessageID   = "missing-message-id"   // two or more messages in a direction, one lacks messageId
	CodeMessageIDType      = "message-id-type"      // messageId field is not an integer type
	CodeMidType            = "mid-type"             // mid field is not an integer type
	CodeDefaultNotHex      = "default-not-hex"      // default value is not hexadecimal
	CodeDefaultTooLong     = "default-too-long"     // default value does not fit the field's length
	CodeLengthField        = "length-field"         // varstring/variant names no earlier integer length field
	CodeMissingMid         = "missing-mid"          // command with a response (or the response) lacks mid
	CodeMidPosition        = "mid-position"         // command's and response's mid at different indexes
	CodeUnknownProperty    = "unknown-property"     // field maps to no property/para of the model
	CodeTypeMismatch       = "type-mismatch"        // model dataType cannot hold the field type

	// Shape of the codec file itself.
	CodeSyntax           = "syntax"            // not valid JSON, unknown key, wrong JSON type
	CodeNoMessages       = "no-messages"       // the codec has no messages
	CodeMissingName      = "missing-name"      // a message or field has no name
	CodeDuplicateMessage = "duplicate-message" // two messages share a name
	CodeDuplicateField   = "duplicate-field"   // two fields of a message share a name
	CodeDuplicateCommand = "duplicate-command" // two command messages for one service and command
	CodeBadKind          = "bad-kind"          // unknown message kind
	CodeBadType          = "bad-type"          // unknown field type
	CodeBadLength        = "bad-length"        // length missing, zero or contradicting the type
	CodeBadScale         = "bad-scale"         // scale/offset on a non-integer, 8-byte or zero scale
	CodeMessageIDValue   = "message-id-value"  // messageId field without a default (its value)
	CodeMissingService   = "missing-service"   // data field with no service, command with no name
	CodeUnknownResponse  = "unknown-response"  // response/responseMessage names no message of the right kind
	CodeResponseDefault  = "response-default"  // report-response field without a default
	CodeBadResponse      = "bad-response"      // response bytes not hex, or response given without addResponse
	CodeBadFlag          = "bad-flag"          // flag on a message kind where it means nothing
	CodeSharedLength     = "shared-length"     // two variable fields use one length field
	CodePCPPrefix        = "pcp-prefix"        // an uplink's messageId makes its payload start FF FE (a PCP frame)
	CodeTooLarge         = "too-large"         // the codec JSON is over MaxSpecSize
)

// CompileError lists the problems found in a declarative codec: the first
// MaxProblems, with the number of further ones in More. It wraps
// ErrInvalid.
type CompileError struct {
	Problems []Problem
	More     int // problems found beyond those listed
}

// Error lists the problems, one per line after the first.
func (e *CompileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "codec: invalid declarative codec, %d problem(s)", len(e.Problems)+e.More)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  … and %d more", e.More)
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *CompileError) Unwrap() error { return ErrInvalid }

// Codes returns the problem codes in order, for tests and programs.
func (e *CompileError) Codes() []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.Code
	}
	return out
}

// detail is a sentinel with the particulars of one failure: its text is the
// particulars alone (the FieldError around it says where), and errors.Is
// finds the sentinel.
type detail struct {
	text string
	err  error
}

func (e *detail) Error() string { return e.text }
func (e *detail) Unwrap() error { return e.err }

func errf(sentinel error, format string, args ...any) error {
	return &detail{text: fmt.Sprintf(format, args...), err: sentinel}
}
