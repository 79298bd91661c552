package transport

import "fmt"

// Code is a CoAP response code as it travels in a message (RFC 7252 §3):
// the class in the top 3 bits and the detail in the low 5, so 4.04 Not
// Found is 4<<5 | 4 = 132. ResponseError and Event carry one.
type Code uint8

// The response codes the server and the client send or look for.
const (
	CodeCreated                  Code = 2<<5 | 1  // 2.01
	CodeDeleted                  Code = 2<<5 | 2  // 2.02
	CodeValid                    Code = 2<<5 | 3  // 2.03
	CodeChanged                  Code = 2<<5 | 4  // 2.04
	CodeContent                  Code = 2<<5 | 5  // 2.05
	CodeContinue                 Code = 2<<5 | 31 // 2.31 (RFC 7959)
	CodeBadRequest               Code = 4 << 5    // 4.00
	CodeUnauthorized             Code = 4<<5 | 1  // 4.01
	CodeBadOption                Code = 4<<5 | 2  // 4.02
	CodeForbidden                Code = 4<<5 | 3  // 4.03
	CodeNotFound                 Code = 4<<5 | 4  // 4.04
	CodeMethodNotAllowed         Code = 4<<5 | 5  // 4.05
	CodeNotAcceptable            Code = 4<<5 | 6  // 4.06
	CodeRequestEntityIncomplete  Code = 4<<5 | 8  // 4.08 (RFC 7959)
	CodePreconditionFailed       Code = 4<<5 | 12 // 4.12
	CodeRequestEntityTooLarge    Code = 4<<5 | 13 // 4.13
	CodeUnsupportedContentFormat Code = 4<<5 | 15 // 4.15
	CodeInternalServerError      Code = 5 << 5    // 5.00
	CodeNotImplemented           Code = 5<<5 | 1  // 5.01
	CodeServiceUnavailable       Code = 5<<5 | 3  // 5.03
	CodeGatewayTimeout           Code = 5<<5 | 4  // 5.04
)

// String returns the code as CoAP writes it: "4.04".
func (c Code) String() string { return fmt.Sprintf("%d.%02d", c>>5, c&0x1f) }
