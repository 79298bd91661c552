package transport

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Attributes are the notification attributes a server set on one path with
// Write-Attributes (LwM2M TS Core §5.1.2, §5.4.4): periods in seconds
// (pmin, pmax, epmin, epmax) and, on a resource, numeric conditions (gt,
// lt, st). A nil field is not set on that path.
//
// The client checks and keeps them (Client.Attributes); it does not time
// notifications by them: Notify is the application's call, and an
// application that honours pmin/pmax reads them here, with the attributes
// of the enclosing instance and object as the TS's inheritance says.
type Attributes struct {
	Pmin, Pmax, Epmin, Epmax *uint32
	Gt, Lt, St               *float64
}

// Attributes returns the notification attributes the server set on path
// (exactly that path, "/3303/0/5700"), or the zero Attributes.
func (c *Client) Attributes(path string) Attributes {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attrs[path]
}

// writeAttributes answers a Write-Attributes (PUT with Uri-Query and no
// payload) of path, which names a resource the client serves. Every query
// is name=value to set or a bare name to clear; an unknown name, a
// malformed value, a name given twice, a numeric condition above the
// resource level, or a result that breaks the TS's rules (pmin ≤ pmax,
// epmin ≤ epmax, lt < gt, lt + 2·st < gt) is a 4.00 with the reason, and
// nothing is changed.
func (c *Client) writeAttributes(m *message.Message, path string) *message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.attrs[path] // a copy: the stored one changes only on success
	seen := map[string]bool{}
	for _, q := range msgQueries(m) {
		name, value, set := strings.Cut(q, "=")
		if seen[name] {
			return errResp(codes.BadRequest, "write-attributes %s: %s given twice", path, name)
		}
		seen[name] = true
		switch name {
		case "pmin", "pmax", "epmin", "epmax":
			var p *uint32
			if set {
				n, err := strconv.ParseUint(value, 10, 32)
				if err != nil {
					return errResp(codes.BadRequest, "write-attributes %s: %s=%q is not a whole number of seconds (0 to %d)", path, name, value, uint32(math.MaxUint32))
				}
				v := uint32(n)
				p = &v
			}
			switch name {
			case "pmin":
				a.Pmin = p
			case "pmax":
				a.Pmax = p
			case "epmin":
				a.Epmin = p
			default:
				a.Epmax = p
			}
		case "gt", "lt", "st":
			if depth := strings.Count(strings.Trim(path, "/"), "/") + 1; depth < 3 {
				return errResp(codes.BadRequest, "write-attributes %s: %s applies to a resource, not to an object or object instance", path, name)
			}
			var p *float64
			if set {
				f, ok := attrNumber(value)
				if !ok {
					return errResp(codes.BadRequest, "write-attributes %s: %s=%q is not a decimal number (as -85 or 21.5)", path, name, value)
				}
				if name == "st" && f < 0 {
					return errResp(codes.BadRequest, "write-attributes %s: st=%q is negative; a step is 0 or more", path, value)
				}
				p = &f
			}
			switch name {
			case "gt":
				a.Gt = p
			case "lt":
				a.Lt = p
			default:
				a.St = p
			}
		default:
			return errResp(codes.BadRequest, "write-attributes %s: unknown attribute %q; allowed: pmin, pmax, epmin, epmax, gt, lt, st", path, name)
		}
	}
	if err := a.check(); err != nil {
		return errResp(codes.BadRequest, "write-attributes %s: %v", path, err)
	}
	if c.attrs == nil {
		c.attrs = map[string]Attributes{}
	}
	c.attrs[path] = a
	return &message.Message{Code: codes.Changed}
}

// check applies the TS's rules between attributes of one path.
func (a Attributes) check() error {
	switch {
	case a.Pmin != nil && a.Pmax != nil && *a.Pmax < *a.Pmin:
		return fmt.Errorf("pmax %d is less than pmin %d", *a.Pmax, *a.Pmin)
	case a.Epmin != nil && a.Epmax != nil && *a.Epmax < *a.Epmin:
		return fmt.Errorf("epmax %d is less than epmin %d", *a.Epmax, *a.Epmin)
	case a.Lt != nil && a.Gt != nil && !(*a.Lt < *a.Gt):
		return fmt.Errorf("lt %g is not less than gt %g", *a.Lt, *a.Gt)
	case a.Lt != nil && a.Gt != nil && a.St != nil && !(*a.Lt+2**a.St < *a.Gt):
		return fmt.Errorf("lt %g + 2 × st %g is not less than gt %g", *a.Lt, *a.St, *a.Gt)
	}
	return nil
}

// attrNumber parses a gt, lt or st value: digits with an optional minus
// sign and fraction ("-85", "21.5"), as the TS's link parameters write
// them; no exponent, NaN, infinity or hexadecimal.
func attrNumber(s string) (float64, bool) {
	t := strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(t, ".")
	if whole == "" || (dot && frac == "") || !allDigits(whole) || !allDigits(frac) || len(s) > 64 {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
