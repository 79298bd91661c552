package transport

import "github.com/doze-io/doze/lwm2m"
import "time"

// EventKind says what happened to a device.
type EventKind int

// The events a Server reports to its Handler.
const (
	EventRegistered   EventKind = iota + 1 // a registration (LwM2M /rd or TUP /t/r) was accepted
	EventUpdated                           // a registration update was accepted
	EventDeregistered                      // a registration ended (see Event.Reason)
	EventWoke                              // the device sent something; it is reachable until Event.AwakeUntil
	EventUplink                            // application data: /19/0/0 notification, LwM2M Send, or TUP /t/d notification
	EventNotification                      // a notification of any other observed path, or a Send's values other than /19/0/0 (Config.SendPaths, or a SendFilter's)
	EventRefused                           // a device's data was refused with a CoAP error (Event.Code, Event.Message); see below
)

var eventNames = [...]string{"", "registered", "updated", "deregistered", "woke", "uplink", "notification", "refused"}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Reason says why a registration ended.
type Reason string

// Reasons for EventDeregistered.
const (
	ReasonDeregistered Reason = "deregistered" // the device sent DELETE /rd/<id>
	ReasonExpired      Reason = "expired"      // the lifetime passed without an update
	ReasonReplaced     Reason = "replaced"     // the device registered again
	ReasonRemoved      Reason = "removed"      // Server.Disconnect (the device was deleted)
)

// Event is one thing that happened to a device. Which fields are set depends
// on Kind; Endpoint and Time always are.
//
// EventRefused reports data the server could not use and answered with an
// error instead of 2.04 (LWM-12): a Send (/dp) whose body is larger than
// Config.MaxSendSize (4.13), malformed or empty (4.00), in a content format
// a Send cannot carry (4.15), or about no path the server delivers (4.04:
// none under Config.SendPaths, or none a SendFilter takes).
// A platform puts it on the device's log; the device got the same text in
// the answer's payload.
type Event struct {
	Kind     EventKind
	Endpoint string    // normalized endpoint name (LWM-2)
	Time     time.Time // when the server saw it

	Registration Registration // Registered, Updated, Deregistered, Woke
	Reason       Reason       // Deregistered

	Path          string       // Uplink, Notification, Refused: the observed path ("/19/0/0", "/t/d") or "/dp" for Send
	Payload       []byte       // Uplink: the application bytes; Notification: the raw payload (of a Send: its values of Config.SendPaths); Refused: the body, unless it was too large
	ContentFormat lwm2m.Format // Content-Format of the payload as sent (NoFormat when absent)

	Code    Code   // Refused: the error code the device got (4.00, 4.04, 4.13, 4.15)
	Message string // Refused: the diagnostic the device got with it: what was wrong and what is allowed

	AwakeUntil time.Time // Woke: end of the awake window (zero for devices not in queue mode)
}

// Handler receives a Server's events. HandleEvent is called from the
// device's reading goroutine, one event at a time per device and in order,
// except EventDeregistered with ReasonExpired, which comes from the
// registration's lifetime timer and may overlap a last notification from
// the device, and the value of the answer to the server's own observe of
// the data channel after a registration (EventUplink), which comes from
// the goroutine that observed; it must return quickly (hand work to another goroutine). A Handler may
// call the Server's methods, but a request to the same device from inside
// HandleEvent must go out from another goroutine.
type Handler interface {
	HandleEvent(e Event)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(e Event)

// HandleEvent calls f(e).
func (f HandlerFunc) HandleEvent(e Event) { f(e) }

// An UplinkHandler is a Handler that takes uplink data before the device's
// message is acknowledged. For a Handler that implements it, the Server
// calls HandleUplink instead of HandleEvent for EventUplink, from the same
// goroutine and in the same order, and answers the device (the ACK of a
// confirmable notification or Send) only after it returns nil: a platform
// stores the data durably there, so that whatever a device saw
// acknowledged survives a crash. When HandleUplink returns an error, the
// server sends no answer and forgets the message ID, so the device's
// retransmission of the confirmable message (of a Send in Block1 blocks,
// its last block) is processed again (values of
// the same message taken before the error come again with it: at least
// once). A non-confirmable message is simply dropped. HandleUplink may take
// the time of a synced write; it delays only its own device, over DTLS and
// plain CoAP alike.
//
// HandleUplink also takes, the same way, every EventNotification a device
// sends that the server acknowledges: the values of a Send (/dp) other
// than /19/0/0, and the notifications of observed paths other than the
// data channel (a mapped /3303/0/5700, the firmware State /5/0/3). Only
// the notification that ends an observation with an error code comes
// through HandleEvent: the server answers it regardless.
//
// The answer carries nothing of the handler's. The ACK of a confirmable
// notification is Empty: a notification is itself a response, and only a
// request's ACK may carry one (RFC 7252 §4.2, §5.2.2; RFC 7641 §4.5). A
// Send is answered 2.04 Changed, whose payload OMA LwM2M gives no meaning
// (a client does not hand it to its application). Application data for the
// device, such as a codec's report acknowledgement, go as a downlink
// (Server.Downlink: a write of /19/1/0, a POST to /t/d for TUP).
type UplinkHandler interface {
	Handler
	HandleUplink(e Event) error
}

// A SendFilter is a Handler that decides, device by device, which values
// of a Send (/dp) other than /19/0/0 the server takes, in place of
// Config.SendPaths: a platform whose products map resources at run time
// knows per device which paths it can use (LWM-12). FilterSend is asked
// once per Send in SenML JSON or CBOR, from the device's reading goroutine
// and before the device is answered, with the endpoint and the distinct
// paths of the Send's records other than /19/0/0, in the order they came.
// It returns take, with take[i] telling whether paths[i] is taken (a
// shorter take leaves the rest out), and why, a short reason for those
// it leaves out ("product X/Y maps no property to them").
//
// The taken records come as one EventNotification with Path "/dp" (through
// HandleUplink for an UplinkHandler); the others are left out. A Send with
// no /19/0/0 value and no taken path is refused with 4.04 Not Found, whose
// diagnostic names the paths left out and says why, and an EventRefused
// with the same text; a Send with at least one taken value is answered
// 2.04 Changed. FilterSend must return quickly (it holds up its device
// only).
type SendFilter interface {
	Handler
	FilterSend(endpoint string, paths []lwm2m.Path) (take []bool, why string)
}
