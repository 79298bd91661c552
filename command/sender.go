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
// the Engine for the same device. A transport that waits for the device's
// ACK implements Transmitter as well, and the Engine then uses that.
type Sender interface {
	Send(ctx context.Context, c Command) error
}

// Transmitter is an optional ability of a Sender (found by type
// assertion): a transport that tells the two steps of a confirmable send,
// "left" and "ACKed", itself. lwm2m's Downlink is one: it returns when the
// device's ACK (with its answer) came back, long after the message left.
//
// Transmit calls left once, as soon as the first transmission of c has
// gone out (the engine stores SENT then), and returns when the exchange
// ended: nil when the device ACKed (DELIVERED is stored), a *RefusedError
// when it answered with a lasting refusal (DELIVERED → FAILED), any other
// error when no ACK came (the command stays SENT until its mode's deadline
// ends it TIMEOUT, or a wake-up re-sends it, CMD-4). An error returned
// before left was called means as it does for Sender.Send: the command
// never left. A Transmit that returns nil without calling left is taken as
// left and ACKed.
//
// The Engine calls Transmit without holding the device's lock, on a
// goroutine of its own, at most one per device, so left and Transmit may
// take their time; ctx ends at the command's deadline or when the Engine
// closes. Transmit must not call the Engine for the same device itself.
type Transmitter interface {
	Transmit(ctx context.Context, c Command, left func()) error
}

// Listener hears every state change of every command, creation included,
// after it is stored (CMD-9): push adapts to it and posts c.Notification()
// to c.CallbackURL when c.Status.Notifies(). It is called after the
// device's lock is released, in the order the changes were stored, one
// change of a device at a time (possibly from another goroutine than the
// one that made the change, and so after that call returned); it may call
// the Engine.
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
