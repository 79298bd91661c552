package command

import (
	"fmt"
	"slices"
)

// Status is the state of a command (CMD-1, FAQ §7.4).
type Status uint8

// The states of CMD-1. The zero Status is invalid so that a forgotten field
// is caught by Move and by Store implementations.
const (
	// Pending: cached on the platform, not yet sent.
	Pending Status = iota + 1
	// Sent: sent to the device, no ACK yet.
	Sent
	// Delivered: the device ACKed the command.
	Delivered
	// Successful: the device reported success.
	Successful
	// Failed: the device reported failure, the codec could not encode the
	// command, or an immediate command could not reach the device; the
	// command's Reason says which.
	Failed
	// Timeout: sent, but no ACK or result arrived within the mode's timeout.
	Timeout
	// Expired: never sent within expireTime.
	Expired
	// Canceled: cancelled by the application (or superseded, CMD-10).
	Canceled
)

// statuses is every valid Status in declaration order.
var statuses = [...]Status{Pending, Sent, Delivered, Successful, Failed, Timeout, Expired, Canceled}

// Statuses returns every valid Status in declaration order, in a new slice.
func Statuses() []Status { return slices.Clone(statuses[:]) }

var statusNames = [...]string{
	Pending:    "PENDING",
	Sent:       "SENT",
	Delivered:  "DELIVERED",
	Successful: "SUCCESSFUL",
	Failed:     "FAILED",
	Timeout:    "TIMEOUT",
	Expired:    "EXPIRED",
	Canceled:   "CANCELED",
}

// String returns the API name of s ("PENDING", …), or "Status(n)" for an
// invalid value.
func (s Status) String() string {
	if s.Valid() {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Valid reports whether s is one of the eight states of CMD-1.
func (s Status) Valid() bool { return s >= Pending && s <= Canceled }

// Final reports whether s is an end state: no move leaves it.
func (s Status) Final() bool { return s >= Successful && s <= Canceled }

// Open reports whether a command in state s still occupies its device's
// queue (PENDING, SENT or DELIVERED).
func (s Status) Open() bool { return s >= Pending && s <= Delivered }

// Notifies reports whether a move into s is pushed to the command's
// callbackUrl (CMD-6): every state but PENDING. EXPIRED and CANCELED are
// our addition.
func (s Status) Notifies() bool { return s.Valid() && s != Pending }

// MarshalText returns the API name of s.
func (s Status) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("command: invalid status %d", uint8(s))
	}
	return []byte(statusNames[s]), nil
}

// UnmarshalText parses an API status name ("PENDING", …).
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseStatus parses an API status name. Names are upper case as the API
// writes them; anything else fails with ErrBadStatus.
func ParseStatus(name string) (Status, error) {
	for _, s := range statuses {
		if statusNames[s] == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: %q; want one of PENDING, SENT, DELIVERED, SUCCESSFUL, FAILED, TIMEOUT, EXPIRED, CANCELED", ErrBadStatus, name)
}

// moves is the table of allowed moves of CMD-1. Any pair not in it is
// refused by Move.
//
// SENT→SENT is the re-send of CMD-4 (the device did not ACK, the command
// stays at the head and goes out again); it is stamped and counted in
// issuedTimes like the first send. SENT→DELIVERED may be implied: a device
// result that arrives before its ACK first moves SENT→DELIVERED.
var moves = map[Status][]Status{
	Pending:   {Sent, Expired, Canceled, Failed},
	Sent:      {Sent, Delivered, Timeout},
	Delivered: {Successful, Failed, Timeout},
}

// CanMove reports whether the table of CMD-1 allows the move from → to.
func CanMove(from, to Status) bool {
	for _, s := range moves[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Moves returns the states a command in state from may move to, in table
// order (nil for end states).
func Moves(from Status) []Status { return append([]Status(nil), moves[from]...) }
