package mqtt

import (
	"fmt"
	"strings"
)

// Topics of MQT-2, after the newer platform's conventions. A device
// reports on
//
//	$oc/devices/{deviceId}/sys/properties/report      JSON properties
//	$oc/devices/{deviceId}/sys/messages/up            binary, for the codec
//	$oc/devices/{deviceId}/sys/commands/response/request_id={id}
//	$oc/devices/{deviceId}/sys/events/up              a gateway's events (MQT-5, ParseEvents)
//	$oc/devices/{deviceId}/sys/gateway/sub_devices/properties/report
//	                                                  a gateway's batch report for its sub-devices (MQT-5, ParseSubDeviceReports)
//
// and receives on
//
//	$oc/devices/{deviceId}/sys/commands/request_id={id}
//	$oc/devices/{deviceId}/sys/messages/down
//	$oc/devices/{deviceId}/sys/events/down            answers to a gateway's events
const (
	topicPrefix     = "$oc/devices/"
	propertiesTopic = "/sys/properties/report"
	messagesUpTopic = "/sys/messages/up"
	responseTopic   = "/sys/commands/response/request_id="
	commandTopic    = "/sys/commands/request_id="
	messagesDown    = "/sys/messages/down"
	eventsUpTopic   = "/sys/events/up"
	eventsDownTopic = "/sys/events/down"
	batchTopic      = "/sys/gateway/sub_devices/properties/report"
)

// Kind is what a device's message is, by its topic.
type Kind int

// Kinds of device messages (MQT-2).
const (
	// KindProperties is a JSON property report,
	// {"services":[{"service_id","properties":{…},"event_time"?}]}.
	KindProperties Kind = iota + 1
	// KindMessage is a binary message for the product's codec.
	KindMessage
	// KindCommandResponse is a device's answer to a command; the
	// message's RequestID names the command.
	KindCommandResponse
	// KindEvent is a gateway's events/up message (MQT-5), read by
	// ParseEvents.
	KindEvent
	// KindSubDeviceReports is a gateway's batch property report for its
	// sub-devices (MQT-5), read by ParseSubDeviceReports. Its payload may
	// be up to Config.MaxBatchPayload bytes.
	KindSubDeviceReports
)

func (k Kind) String() string {
	switch k {
	case KindProperties:
		return "properties"
	case KindMessage:
		return "message"
	case KindCommandResponse:
		return "command response"
	case KindEvent:
		return "event"
	case KindSubDeviceReports:
		return "sub-device reports"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MaxIDLen bounds a deviceId or request id in a topic.
const MaxIDLen = 256

// CommandTopic returns the topic a command goes down on.
func CommandTopic(deviceID, requestID string) string {
	return topicPrefix + deviceID + commandTopic + requestID
}

// MessagesDownTopic returns the topic binary downlink messages go on.
func MessagesDownTopic(deviceID string) string { return topicPrefix + deviceID + messagesDown }

// EventsDownTopic returns the topic the answers to a gateway's events go
// on.
func EventsDownTopic(deviceID string) string { return topicPrefix + deviceID + eventsDownTopic }

// ParseUplink reads a topic a device published on: the deviceId it names,
// the message kind and, for a command response, the request id. A topic
// that is not one of MQT-2's uplink topics is a *TopicError.
func ParseUplink(topic string) (deviceID string, k Kind, requestID string, err error) {
	deviceID, rest, err := splitDevice(topic)
	if err != nil {
		return "", 0, "", err
	}
	switch {
	case rest == propertiesTopic:
		return deviceID, KindProperties, "", nil
	case rest == messagesUpTopic:
		return deviceID, KindMessage, "", nil
	case rest == eventsUpTopic:
		return deviceID, KindEvent, "", nil
	case rest == batchTopic:
		return deviceID, KindSubDeviceReports, "", nil
	case strings.HasPrefix(rest, responseTopic):
		id := rest[len(responseTopic):]
		if err := checkID(id); err != nil {
			return "", 0, "", &TopicError{Topic: topic, Rule: "request_id " + err.Error()}
		}
		return deviceID, KindCommandResponse, id, nil
	}
	return "", 0, "", &TopicError{Topic: topic, Rule: "a device publishes only on " + topicPrefix +
		"{deviceId}" + propertiesTopic + ", …" + messagesUpTopic + ", …" + eventsUpTopic + ", …" + batchTopic + " or …" + responseTopic + "{id}"}
}

// FilterDevice returns the deviceId a subscription filter is confined to:
// the filter must start with $oc/devices/{deviceId}/sys/, the deviceId
// written out (no wildcard).
func FilterDevice(filter string) (string, error) {
	deviceID, rest, err := splitDevice(filter)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(rest, "/sys/") {
		return "", &TopicError{Topic: filter, Rule: "a device subscribes only under " + topicPrefix + "{deviceId}/sys/"}
	}
	return deviceID, nil
}

// splitDevice cuts "$oc/devices/{id}" off topic and returns the id and
// what follows it.
func splitDevice(topic string) (deviceID, rest string, err error) {
	if !strings.HasPrefix(topic, topicPrefix) {
		return "", "", &TopicError{Topic: topic, Rule: "device topics start with " + topicPrefix}
	}
	deviceID, rest, _ = strings.Cut(topic[len(topicPrefix):], "/")
	if err := checkID(deviceID); err != nil {
		return "", "", &TopicError{Topic: topic, Rule: "deviceId " + err.Error()}
	}
	return deviceID, "/" + rest, nil
}

func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("is empty")
	case len(id) > MaxIDLen:
		return fmt.Errorf("is %d bytes, over %d", len(id), MaxIDLen)
	case strings.ContainsAny(id, "+#/\x00"):
		return fmt.Errorf("must not hold '+', '#', '/' or NUL")
	}
	return nil
}
