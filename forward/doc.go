// Package forward sends device reports to other services by rules: an
// application's rule names a condition and targets — the application's
// webhook (a ruleEvent push), a NATS subject, an MQTT topic, an AMQP
// exchange — and every report that matches is delivered to each target
// through a durable outbox with retries, per-target health and counters,
// the discipline of package push.
//
// An Engine follows Doze's one lifecycle: New checks the Config and starts
// nothing; Run loads the forwarding outbox and delivers until its context
// ends or Close is called, and returns nil; a second Run returns an error
// wrapping ErrClosed ("Run called twice"), Run after Close returns
// ErrClosed; Close is idempotent, may come before Run and returns only
// after Run has.
//
// # Model
//
// A Rule belongs to one application (Rule.AppID): Engine.Rule, UpdateRule
// and DeleteRule answer ErrNotFound for another application's rule, Rules
// lists only the caller's. A rule has a name (1–64 bytes), a Condition, an
// Enabled switch and 1–8 Targets; an application has at most
// Config.MaxRules (100). Rule.Check says which field breaks which rule
// (*FieldError naming it, as "targets[1].subject"); CreateRule and
// UpdateRule also resolve each broker's host and refuse addresses the push
// SSRF guard refuses (loopback, link-local, cloud metadata, … —
// push.DeniedReason) unless Config.Delivery.Allow covers them; the same
// check runs again when a connection is made.
//
// # Conditions
//
// A condition is comparisons joined by AND (case-insensitive), at most 16
// and 1,024 bytes:
//
//	serviceId = "Battery" AND data.batteryLevel < 20
//
// manufacturerId, model, deviceType (the device's product), deviceId,
// gatewayId, serviceId and serviceType are strings: = or != with a quoted
// JSON string. data.<property> is a top-level property of the service: =,
// !=, <, <=, >, >= with a JSON number, = and != with a string, true or
// false. ParseCondition returns a *SyntaxError with the byte offset and
// what is allowed there; Condition.String is the canonical form, which
// parses to itself (FuzzParseCondition checks it). The empty condition
// matches every report.
//
// A condition is tried on each service of a report. The rule fires once
// per report when at least one service matches, and sends one EventBody
// ({"notifyType":"ruleEvent",ruleId,ruleName,deviceId,gatewayId,
// manufacturerId,model,deviceType,services}) holding the services that
// matched, to every target.
//
// # Delivery
//
// Engine.Messages builds, without storing, what ev.AppID's rules make of
// a report: ruleEvent pushes for the application's ruleEvent subscribers
// (webhook targets, for the push engine's outbox) and messages for the
// forwarding outbox (broker targets). The caller stores both with the
// report in one transaction and hands them to push.Engine.Admit and
// Engine.Admit, as the platform does in store.DB.SaveUplink; Forward does
// the same in two writes for callers without such a transaction.
//
// Broker messages are delivered by a push.Engine of the Engine's own, over
// the forwarding outbox (Store's PutMessages, DeleteMessages, Messages),
// whose http.RoundTripper is not HTTP: a message's URL is
// rule://<ruleId>/<target index>, and the RoundTripper reads the rule and
// publishes the body to that target's broker, answering 200 once the
// broker has it — a NATS publish followed by a flush (the server processed
// it), an MQTT publish acknowledged (PUBACK at QoS 1, the default;
// PUBCOMP at 2; written at 0), an AMQP persistent publish confirmed by the
// broker (publisher confirms). So every rule of push's delivery holds per
// target: stored before acceptance, retried on failure after
// RetrySchedule for KeepTime (10 min), invalid after FailureThreshold
// failures and probed, counted in Stats, shown by TargetState, bounded by
// MaxQueued, dropped only with a log line and a count.
//
// # Decisions where the specification is silent
//
//   - One outbox implementation, push's engine, rather than a second one:
//     forwarding adds a RoundTripper and a Store, not a scheduler.
//   - Messages name their target, not the broker: credentials never sit in
//     the outbox, in endpoint states or in logs, and queued messages follow
//     the rule's current settings, so fixing a wrong password lets them
//     through. A message whose rule was deleted, or whose target index is
//     gone, is dropped as final (ErrTargetGone), counted and logged.
//   - Broker errors (cannot connect, refused credentials, a missing AMQP
//     exchange, a nack) are retried: an operator may fix them within the
//     keep time. A dial refused by the address guard is final.
//   - One connection per broker URL (credentials included), opened on the
//     first message, reused by every rule naming it, closed after a failed
//     publish (the next try opens a new one) and after 5 minutes unused.
//     Clients do not reconnect on their own: retries are the engine's.
//   - Order is not guaranteed within a target (as for webhooks): up to
//     EndpointConcurrency (16) publishes may be in flight to one target.
//   - Several nodes sharing one Store (store/postgres's Forward) each run
//     an Engine with Config.Delivery.Node set to the node's id: a Store
//     that is a push.Claimer is handed to the delivery engine as one, so
//     each node delivers only the forwarding messages it holds a lease on
//     — those it stored, and free or lapsed ones it claims — with push's
//     rules (see push's doc, "Several nodes"): while the nodes live each
//     message is published by one node; a dead node's are published by
//     another once their leases end. Without Node every Engine loads the
//     whole outbox at Run and publishes what it finds, so only one node
//     may run without it; New refuses Node over a Store that cannot claim.
//     Rules are read from the Store (cached Config.RuleCache), so a rule
//     changed on one node applies on the others within that time.
//   - Delivery is at least once: a crash between a publish and the outbox
//     deletion publishes again. Each message carries its id (NATS header
//     Nats-Msg-Id, which JetStream deduplicates by; AMQP message-id;
//     webhook-id for webhooks); MQTT 3.1.1 has no header for it.
//   - Broker URLs are plain nats://, mqtt:// or tcp://, amqp:// (TLS to
//     brokers is not offered yet); user:password@ in the URL are the
//     credentials, shown redacted by Target.Redacted.
//   - A webhook target has no URL: it pushes to the application's ruleEvent
//     subscriptions (at most one webhook target per rule), whose health
//     is push's per callback URL.
//   - Rules and their parsed conditions are cached per application for
//     Config.RuleCache (1 s); changes made through the Engine show at once.
//   - A property the service lacks, or of another type than the value,
//     makes the comparison false whatever the operator (!= included), so a
//     rule never fires on data it cannot read.
//
// # Figures
//
// Rule evaluation costs nothing measurable for an application without
// rules and about 5 µs per report for ten rules; docs/benchmarks.md of the
// repository, section "Forwarding rules", has the runs.
//
// # Concurrency
//
// All Engine methods are safe for concurrent use. Run owns the delivery
// engine's goroutines and a janitor that closes idle connections; Close
// closes every broker connection.
package forward
