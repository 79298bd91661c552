package command

import "context"

// Sender reaches devices: it encodes a command with the device's codec and
// sends it (lwm2m writes /19/1/0 or /t/d). The platform adapts its parts to
// it.
//
// Send returns nil when the command has left; the ACK is reported later with
// Engine.Acked. An error wrapping ErrEncode means the codec could not encode
// the command, and a *RefusedError (ErrRefused) that the device refused it
// for good (a CoAP 4.xx answer): either way it becomes FAILED. Any other
// error is a transport failure (timeout, no session, device asleep): the
// command stays at the head of the queue and is tried again (CMD-4).
//
// The Engine calls Send with the device's lock held, so Send must not call
// the Engine for the same device; report an ACK that the transport sees
// during Send from another goroutine (go e.Acked(…)) or after Send returns.
type Sender interface {
	Send(ctx context.Context, c Command) error
}

// Listener hears every state change of every command, creation included,
// after it is stored (CMD-9): push adapts to it and posts c.Notification()
// to c.CallbackURL when c.Status.Notifies(). It is called synchronously with
// the device's lock held, in the order of the changes, so it must be quick
// and must not call the Engine.
type Listener interface {
	CommandChanged(c Command)
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, c Command) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, c Command) error { return f(ctx, c) }

// ListenerFunc adapts a function to Listener.
type ListenerFunc func(c Command)

// CommandChanged calls f.
func (f ListenerFunc) CommandChanged(c Command) { f(c) }
