package registry

// EventType names what happened to a device.
type EventType int

// Device events.
const (
	// EventAdded: a device was registered (deviceAdded).
	EventAdded EventType = iota + 1
	// EventBound: a device connected with its credentials for the first
	// time (bindDevice, resultCode "succeeded").
	EventBound
	// EventExpired: the binding timeout passed before the device bound and
	// it was deleted (bindDevice, resultCode "expired", REG-2). No
	// EventDeleted follows for it.
	EventExpired
	// EventInfoChanged: the application changed deviceInfo
	// (deviceInfoChanged).
	EventInfoChanged
	// EventDeleted: the device was deleted (deviceDeleted).
	EventDeleted
	// EventStatusChanged: Status changed; Event.From holds the old one.
	EventStatusChanged
)

var eventNames = [...]string{"", "added", "bound", "expired", "info changed", "deleted", "status changed"}

// String returns a lower-case name: "added", "bound", ….
func (t EventType) String() string {
	if t > 0 && int(t) < len(eventNames) {
		return eventNames[t]
	}
	return "unknown"
}

// Event is one change to one device.
type Event struct {
	Type   EventType
	Device Device // the device after the change (before deletion for EventDeleted and EventExpired)
	From   Status // the previous status, for EventStatusChanged
}

// Listener is told about device events after they are stored. The registry calls it from the
// goroutine that made the change (Run's for expiry and OFFLINE), holding
// no lock: it may call back into the registry, and should not block long.
// push adapts it to notifications.
type Listener interface {
	DeviceChanged(e Event)
}

// ListenerFunc adapts a function to Listener.
type ListenerFunc func(e Event)

// DeviceChanged calls f.
func (f ListenerFunc) DeviceChanged(e Event) { f(e) }
