package forward

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doze-io/doze/push"
)

// Errors of rules. Validation errors are *FieldError values wrapping
// ErrInvalid; a condition's are *SyntaxError values wrapping ErrCondition.
var (
	// ErrInvalid means a rule breaks a rule of its fields.
	ErrInvalid = errors.New("forward: invalid rule")
	// ErrCondition means a condition does not parse.
	ErrCondition = errors.New("forward: invalid condition")
	// ErrNotFound means no rule of the application has the id.
	ErrNotFound = errors.New("forward: rule not found")
	// ErrTooManyRules means the application already has Config.MaxRules rules.
	ErrTooManyRules = errors.New("forward: too many rules")
	// ErrClosed means the Engine was closed, or Run was called twice.
	ErrClosed = errors.New("forward: engine closed")
	// ErrTargetGone means a queued message's rule or target no longer
	// exists; the message is dropped (final).
	ErrTargetGone = errors.New("forward: the rule or target of the message was deleted")
)

// Bounds of a rule.
const (
	MaxRuleNameLength = 64   // bytes of a rule name
	MaxTargets        = 8    // targets of one rule
	MaxURLLength      = 1024 // bytes of a broker URL
	MaxAddressBytes   = 255  // bytes of a subject, topic, exchange or routing key
)

// TargetType names where a target delivers.
type TargetType string

// Target types.
const (
	// Webhook pushes a ruleEvent notification to the application's
	// subscribers of that notify type, through the push engine.
	Webhook TargetType = "webhook"
	// NATS publishes to a subject of a NATS server (core NATS).
	NATS TargetType = "nats"
	// MQTT publishes to a topic of an MQTT 3.1.1 broker.
	MQTT TargetType = "mqtt"
	// AMQP publishes to an exchange of an AMQP 0-9-1 broker (RabbitMQ),
	// persistent, with publisher confirms.
	AMQP TargetType = "amqp"
)

// Target is one destination of a rule. URL carries the broker's address
// and, as user:password@, its credentials; Redacted hides the password.
type Target struct {
	Type       TargetType `json:"type"`
	URL        string     `json:"url,omitempty"`        // nats://host:4222, mqtt://host:1883 (or tcp://), amqp://host:5672/vhost
	Subject    string     `json:"subject,omitempty"`    // NATS
	Topic      string     `json:"topic,omitempty"`      // MQTT
	QoS        *int       `json:"qos,omitempty"`        // MQTT: 0, 1 or 2; nil means 1
	Exchange   string     `json:"exchange,omitempty"`   // AMQP; "" is the default exchange
	RoutingKey string     `json:"routingKey,omitempty"` // AMQP
}

// Redacted returns t with the password of its URL replaced by "xxxxx".
func (t Target) Redacted() Target {
	if u, err := url.Parse(t.URL); err == nil && u.User != nil {
		t.URL = u.Redacted()
	}
	return t
}

// qos returns the MQTT QoS, 1 unless set.
func (t Target) qos() byte {
	if t.QoS == nil {
		return 1
	}
	return byte(*t.QoS)
}

// Rule forwards the reports that match Condition to Targets (one message
// per target for each matching report). Rules belong to one application.
type Rule struct {
	ID        string    // set by Engine.CreateRule
	AppID     string    // the owning application
	Name      string    // 1–64 bytes
	Condition string    // see ParseCondition; "" matches every report
	Enabled   bool      // a disabled rule fires nothing
	Targets   []Target  // 1–8
	Created   time.Time // set by Engine.CreateRule
	Updated   time.Time // set by Engine.CreateRule and UpdateRule
}

// FieldError names the field of a rule that breaks a rule, and how.
type FieldError struct {
	Field string // e.g. "targets[1].subject"
	Msg   string
	Err   error // a more specific cause (push.ErrAddressDenied, ErrCondition), or nil
}

func (e *FieldError) Error() string { return "forward: " + e.Field + ": " + e.Msg }

// Unwrap returns ErrInvalid and the cause.
func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Check checks r's fields (not its addresses; Engine.CreateRule also
// resolves and checks them against the address guard) and returns its
// parsed condition.
func (r *Rule) Check() (Condition, error) {
	switch {
	case r.Name == "" || len(r.Name) > MaxRuleNameLength || !utf8.ValidString(r.Name):
		return Condition{}, fieldErr("name", "must be 1–%d bytes of UTF-8 (got %d bytes)", MaxRuleNameLength, len(r.Name))
	case len(r.Targets) == 0 || len(r.Targets) > MaxTargets:
		return Condition{}, fieldErr("targets", "a rule needs 1–%d targets (got %d)", MaxTargets, len(r.Targets))
	}
	c, err := ParseCondition(r.Condition)
	if err != nil {
		return Condition{}, &FieldError{Field: "condition", Msg: strings.TrimPrefix(err.Error(), "forward: condition, "), Err: err}
	}
	webhooks := 0
	for i := range r.Targets {
		if err := r.Targets[i].check(fmt.Sprintf("targets[%d]", i)); err != nil {
			return Condition{}, err
		}
		if r.Targets[i].Type == Webhook {
			webhooks++
		}
	}
	if webhooks > 1 {
		return Condition{}, fieldErr("targets", "at most one webhook target per rule (it pushes to every ruleEvent subscriber of the application)")
	}
	return c, nil
}

// defaultPorts are the brokers' standard ports.
var defaultPorts = map[TargetType]string{NATS: "4222", MQTT: "1883", AMQP: "5672"}

// check checks one target; field names it in errors.
func (t *Target) check(field string) error {
	only := func(allowed ...string) error {
		set := map[string]string{"url": t.URL, "subject": t.Subject, "topic": t.Topic, "exchange": t.Exchange, "routingKey": t.RoutingKey}
		if t.QoS != nil {
			set["qos"] = "x"
		}
		for name, v := range set {
			if v != "" && !contains(allowed, name) {
				return fieldErr(field+"."+name, "does not apply to a %s target (it takes: %s)", t.Type, strings.Join(allowed, ", "))
			}
		}
		return nil
	}
	switch t.Type {
	case Webhook:
		return only()
	case NATS:
		if err := only("url", "subject"); err != nil {
			return err
		}
		if err := checkAddress(field+".subject", t.Subject, false); err != nil {
			return err
		}
		for _, tok := range strings.Split(t.Subject, ".") {
			if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
				return fieldErr(field+".subject", "%q is not a NATS subject to publish to: dot-separated non-empty tokens without spaces or wildcards (* >)", t.Subject)
			}
		}
	case MQTT:
		if err := only("url", "topic", "qos"); err != nil {
			return err
		}
		if err := checkAddress(field+".topic", t.Topic, false); err != nil {
			return err
		}
		if strings.ContainsAny(t.Topic, "+#") {
			return fieldErr(field+".topic", "%q contains a wildcard (+ or #); a topic to publish to may not", t.Topic)
		}
		if t.QoS != nil && (*t.QoS < 0 || *t.QoS > 2) {
			return fieldErr(field+".qos", "%d is not an MQTT QoS; allowed: 0, 1, 2", *t.QoS)
		}
	case AMQP:
		if err := only("url", "exchange", "routingKey"); err != nil {
			return err
		}
		if err := checkAddress(field+".exchange", t.Exchange, true); err != nil {
			return err
		}
		for _, c := range t.Exchange {
			if !(c == '-' || c == '_' || c == '.' || c == ':' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return fieldErr(field+".exchange", "%q: an exchange name has letters, digits, - _ . : only", t.Exchange)
			}
		}
		if err := checkAddress(field+".routingKey", t.RoutingKey, true); err != nil {
			return err
		}
	default:
		return fieldErr(field+".type", "%q is not a target type; allowed: webhook, nats, mqtt, amqp", t.Type)
	}
	_, err := t.brokerURL(field)
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkAddress(field, v string, emptyOK bool) error {
	switch {
	case v == "" && !emptyOK:
		return fieldErr(field, "is required")
	case len(v) > MaxAddressBytes:
		return fieldErr(field, "is %d bytes long; at most %d are allowed", len(v), MaxAddressBytes)
	case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
		return fieldErr(field, "must be UTF-8 without NUL characters")
	}
	return nil
}

// brokerURL parses and checks a broker target's URL, with the default port
// filled in.
func (t *Target) brokerURL(field string) (*url.URL, error) {
	field += ".url"
	if t.URL == "" {
		return nil, fieldErr(field, "is required (as in %s://host:%s)", t.Type, defaultPorts[t.Type])
	}
	if len(t.URL) > MaxURLLength {
		return nil, fieldErr(field, "is %d bytes long; at most %d are allowed", len(t.URL), MaxURLLength)
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fieldErr(field, "is not a URL: %v", redactErr(err, t.URL))
	}
	schemes := map[TargetType][]string{NATS: {"nats"}, MQTT: {"mqtt", "tcp"}, AMQP: {"amqp"}}[t.Type]
	switch {
	case !contains(schemes, u.Scheme):
		return nil, fieldErr(field, "scheme %q; a %s target takes %s:// (TLS to brokers is not offered yet)", u.Scheme, t.Type, strings.Join(schemes, ":// or "))
	case u.Hostname() == "":
		return nil, fieldErr(field, "names no host")
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fieldErr(field, "must not carry a query or fragment")
	case t.Type != AMQP && u.Path != "" && u.Path != "/":
		return nil, fieldErr(field, "must not carry a path (%s); the %s goes in its own field", u.Path, map[TargetType]string{NATS: "subject", MQTT: "topic"}[t.Type])
	}
	if p := u.Port(); p == "" {
		u.Host = joinHostPort(u.Hostname(), defaultPorts[t.Type])
	} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return nil, fieldErr(field, "port %q is not 1–65535", p)
	}
	return u, nil
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// redactErr hides a URL's password in an error that may quote it.
func redactErr(err error, raw string) string {
	s := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
		}
	}
	return s
}

// Event is one device report as rules see it.
type Event struct {
	AppID          string // the application whose rules are tried
	DeviceID       string
	GatewayID      string
	ManufacturerID string
	Model          string
	DeviceType     string
	Services       []push.ServiceData
}

// EventBody is the ruleEvent notification a rule sends to every target:
//
//	{"notifyType":"ruleEvent","ruleId","ruleName","deviceId","gatewayId",
//	 "manufacturerId","model","deviceType","services":[{serviceId,serviceType,data,eventTime}]}
//
// services holds the services of the report that matched the condition.
type EventBody struct {
	RuleID         string             `json:"ruleId"`
	RuleName       string             `json:"ruleName"`
	DeviceID       string             `json:"deviceId"`
	GatewayID      string             `json:"gatewayId"`
	ManufacturerID string             `json:"manufacturerId"`
	Model          string             `json:"model"`
	DeviceType     string             `json:"deviceType"`
	Services       []push.ServiceData `json:"services"`
}

// NotifyType returns push.RuleEvent.
func (b EventBody) NotifyType() push.NotifyType { return push.RuleEvent }

// MarshalJSON encodes b with "notifyType":"ruleEvent" first.
func (b EventBody) MarshalJSON() ([]byte, error) {
	type plain EventBody
	f, err := json.Marshal(plain(b))
	if err != nil {
		return nil, err
	}
	return push.Body{Type: push.RuleEvent, Fields: f}.MarshalJSON()
}
