package mqtt

import (
	"errors"
	"fmt"
)

var (
	// ErrNotSubscribed means no connection of the device is subscribed to
	// the topic a downlink goes on: the device is offline, or has not
	// subscribed yet. The downlink was not sent.
	ErrNotSubscribed = errors.New("mqtt: the device is not connected and subscribed to its downlink topic")
	// ErrDisconnected means the device's connection closed before it
	// acknowledged a downlink (PUBACK).
	ErrDisconnected = errors.New("mqtt: the device disconnected before it acknowledged the message")
	// ErrRefused, wrapped by a Handler's error, refuses a device's message
	// for good: an MQTT 5 device gets PUBACK 0x99 (payload format invalid)
	// with the error as reason string; an MQTT 3.1.1 device gets its
	// PUBACK and the message is dropped (and counted), since sending it
	// again would not help. Any other error leaves a QoS 1 message
	// unacknowledged (MQTT 5: PUBACK 0x80), so the device sends it again.
	ErrRefused = errors.New("mqtt: message refused")
	// ErrClosed is returned by calls after Close (or after Run returned),
	// and wrapped by a second Run ("Run called twice").
	ErrClosed = errors.New("mqtt: server closed")
)

// TopicError is a topic or subscription filter that is not one of a
// device's topics (MQT-2).
type TopicError struct {
	Topic string // as the device sent it
	Rule  string // what is allowed
}

func (e *TopicError) Error() string { return fmt.Sprintf("mqtt: topic %q: %s", e.Topic, e.Rule) }

// ListenError is a listener that could not be opened.
type ListenError struct {
	Listener string // "tcp" or "tls"
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("mqtt: %s listener on %s: %v", e.Listener, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }
