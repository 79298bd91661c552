package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook is Doze's part of the broker: authentication, the ACL, limits and
// the hand-over of messages and acknowledgements.
type hook struct {
	mochi.HookBase
	s *Server
}

func (h *hook) ID() string { return "doze" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnSessionEstablished,
		mochi.OnDisconnect, mochi.OnPublish, mochi.OnQosPublish, mochi.OnPacketRead, mochi.OnSubscribed}, []byte{b})
}

// OnConnect refuses, before any check of its credentials, a CONNECT of
// a device or from a source address that failed to authenticate too
// often (Config.DeviceAuthLimit, AddrAuthLimit): CONNACK 0x9F (connection
// rate exceeded; MQTT 3.1.1: 3, server unavailable). Otherwise the
// attempt counts as a failure of both until OnConnectAuthenticate knows.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	s := h.s
	var remote net.Addr
	if cl.Net.Conn != nil {
		remote = cl.Net.Conn.RemoteAddr()
	}
	user := string(pk.Connect.Username)
	a, who := s.limits.begin(time.Now(), user, sourceKey(remote))
	if a == nil {
		s.stats.authLimited.Add(1)
		s.authLimited.note(s, "mqtt: connections refused unchecked: too many failed authentications",
			"last", who, "lastUsername", user, "lastRemote", addrOf(cl))
		code := packets.ErrConnectionRateExceeded
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable // 3.1.1: 3
		}
		if err := s.b.SendConnack(cl, code, false, nil); err != nil {
			return fmt.Errorf("mqtt: refusing a limited connection: %w", err)
		}
		return code
	}
	s.mu.Lock()
	s.attempts[cl] = a
	s.mu.Unlock()
	return nil
}

// OnConnectAuthenticate checks the device's credentials (MQT-1) and that
// its client id is its own: the deviceId, the nodeId, "{deviceId}_…"
// (the original platform's form) or empty (assigned by the broker). A
// client id of another device would take over that device's session.
// Failed credentials spend the budgets of the device and the source
// address; refusals are logged as a summary line a minute.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	s := h.s
	user, pass := string(pk.Connect.Username), string(pk.Connect.Password)
	s.mu.Lock()
	a := s.attempts[cl]
	delete(s.attempts, cl)
	s.mu.Unlock()
	ok := false
	var authErr error
	defer func() {
		if a == nil {
			return
		}
		if ok {
			s.limits.succeeded(time.Now(), a)
		} else {
			s.limits.failed(time.Now(), a, authErr)
		}
	}()
	refuse := func(why string, err error) bool {
		s.stats.auth.Add(1)
		s.authRefusals.note(s, "mqtt: connections refused", "lastRemote", addrOf(cl), "lastUsername", user,
			"lastClientId", cl.ID, "lastWhy", why, "lastErr", err)
		return false
	}
	if user == "" || pass == "" {
		return refuse("no username or password", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AuthTimeout)
	defer cancel()
	d, err := s.devs.Authenticate(ctx, user, pass)
	if err != nil {
		authErr = err
		return refuse("credentials", err)
	}
	ok = true // the credentials are right, whatever follows
	if id := pk.Connect.ClientIdentifier; id != "" && id != d.ID && id != d.NodeID && !strings.HasPrefix(id, d.ID+"_") {
		return refuse("client id", fmt.Errorf("client id %q is not the device's: use its deviceId, nodeId or \"{deviceId}_…\"", id))
	}
	if cl.Properties.Will.Flag != 0 {
		// The platform reports a device's status itself (deviceInfoChanged);
		// a will could name any topic, so none is kept.
		s.log.Debug("mqtt: will message ignored", "device", d.ID)
		cl.Properties.Will = mochi.Will{}
	}
	s.mu.Lock()
	s.sessions[cl] = &session{dev: d}
	s.conns[d.ID]++
	s.mu.Unlock()
	return true
}

func (h *hook) session(cl *mochi.Client) *session {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.sessions[cl]
}

// OnSessionEstablished runs after the CONNACK and after the broker
// re-sent a resumed session's unacknowledged downlinks (each through
// OnQosPublish, which moved its waiter here). A downlink of an earlier
// connection with this client id that was not re-sent here was discarded
// with its session (CleanSession 1, or MQTT 5 Clean Start): it fails now,
// undelivered, and the command engine sends it again once the device
// listens. A resumed session's subscriptions come with it: if one covers
// the device's command topic, the device listens without subscribing
// again.
func (h *hook) OnSessionEstablished(cl *mochi.Client, pk packets.Packet) {
	se := h.session(cl)
	if se == nil {
		return
	}
	s := h.s
	s.mu.Lock()
	s.failInflight(cl, true, ErrDisconnected)
	first := s.conns[se.dev.ID] == 1
	s.mu.Unlock()
	if first {
		s.h.Connected(se.dev)
	}
	for _, sub := range cl.State.Subscriptions.GetAll() {
		if mochi.IsValidFilter(sub.Filter, false) && matches(sub.Filter, CommandTopic(se.dev.ID, "x")) {
			s.h.Listening(se.dev)
			return
		}
	}
}

func (h *hook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	s := h.s
	s.mu.Lock()
	se := s.sessions[cl]
	delete(s.sessions, cl)
	last := false
	if se != nil {
		s.conns[se.dev.ID]--
		if last = s.conns[se.dev.ID] <= 0; last {
			delete(s.conns, se.dev.ID)
		}
	}
	if expire {
		// The session ends with the connection: its unacknowledged
		// downlinks will not be re-sent by the broker. A session that
		// lives on keeps them: the connection that resumes it gets them
		// again with DUP (OnQosPublish moves their waiters to it), one
		// that starts clean discards them (OnSessionEstablished fails
		// them), and a device that never comes back leaves them to their
		// context's deadline.
		s.failInflight(cl, false, ErrDisconnected)
	}
	s.mu.Unlock()
	if se == nil {
		return
	}
	if errors.Is(err, packets.CodeDisconnect) {
		err = nil
	}
	if last {
		h.s.h.Disconnected(se.dev, err)
	}
}

// allowed reports whether the connected device d may use the topics of
// deviceID: its own, and a gateway its sub-devices' (MQT-5).
func (h *hook) allowed(d Device, deviceID string) bool {
	if deviceID == d.ID {
		return true
	}
	sd, ok := h.s.devs.(SubDevices)
	if !ok || !d.Gateway {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.s.cfg.AuthTimeout)
	defer cancel()
	return sd.SubDevice(ctx, d.ID, deviceID)
}

// OnACLCheck confines a device to its own topics (MQT-1): it publishes
// only on its uplink topics and subscribes only under its own
// $oc/devices/{deviceId}/sys/.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	se := h.session(cl)
	if se == nil {
		return false
	}
	var id string
	var err error
	if write {
		id, _, _, err = ParseUplink(topic)
	} else {
		id, err = FilterDevice(topic)
	}
	if err == nil && !h.allowed(se.dev, id) {
		err = &TopicError{Topic: topic, Rule: "names another device"}
	}
	if err != nil {
		h.s.stats.acl.Add(1)
		h.s.log.Info("mqtt: topic refused", "device", se.dev.ID, "write", write, "err", err)
		return false
	}
	return true
}

// OnSubscribed tells the handler when a device can take commands.
func (h *hook) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	se := h.session(cl)
	if se == nil {
		return
	}
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < 0x80 && mochi.IsValidFilter(f.Filter, false) &&
			matches(f.Filter, CommandTopic(se.dev.ID, "x")) {
			h.s.h.Listening(se.dev)
			return
		}
	}
}

// matches reports whether filter matches topic (MQTT wildcards).
func matches(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		switch {
		case f == "#":
			return true
		case i >= len(ts):
			return false
		case f != "+" && f != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}

// OnPublish applies MQT-4 and hands the message to the handler before the
// broker acknowledges it.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the platform's own downlinks
	}
	s := h.s
	se := h.session(cl)
	if se == nil {
		return pk, packets.ErrRejectPacket
	}
	v5 := cl.Properties.ProtocolVersion == 5
	// refuse ends an MQTT 5 connection with code; a 3.1.1 message is
	// dropped unacknowledged. Either way it is counted and logged.
	refuse := func(n *atomic.Uint64, code packets.Code, why string) (packets.Packet, error) {
		n.Add(1)
		s.log.Warn("mqtt: message refused", "device", se.dev.ID, "topic", pk.TopicName, "why", why, "v5", v5)
		if v5 {
			s.b.DisconnectClient(cl, code)
		}
		return pk, packets.ErrRejectPacket
	}
	if !se.limit.take(time.Now(), s.cfg.MaxRate) {
		return refuse(&s.stats.rate, packets.ErrMessageRateTooHigh, fmt.Sprintf("over %d messages per second", s.cfg.MaxRate))
	}
	id, kind, req, err := ParseUplink(pk.TopicName)
	if err != nil { // the ACL let it through: cannot happen
		return pk, packets.ErrRejectPacket
	}
	limit := s.cfg.MaxPayload
	if kind == KindSubDeviceReports {
		limit = s.cfg.MaxBatchPayload
	}
	if len(pk.Payload) > limit {
		return refuse(&s.stats.size, packets.ErrPacketTooLarge, fmt.Sprintf("payload of %d bytes, over %d", len(pk.Payload), limit))
	}
	if pk.FixedHeader.Retain {
		return refuse(&s.stats.retain, packets.ErrRetainNotSupported, "retained messages are not accepted on device topics")
	}
	m := Message{Kind: kind, DeviceID: id, Via: se.dev, RequestID: req, Payload: append([]byte(nil), pk.Payload...), Time: time.Now()}
	if err := s.h.Message(m); err != nil {
		s.stats.refused.Add(1)
		refused := errors.Is(err, ErrRefused)
		s.log.Info("mqtt: message not kept", "device", id, "topic", pk.TopicName, "refused", refused, "err", err)
		switch {
		case pk.FixedHeader.Qos == 0:
			return pk, packets.ErrRejectPacket
		case v5 && refused:
			return pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: truncate(err.Error(), 256)}
		case v5:
			return pk, packets.Code{Code: packets.ErrUnspecifiedError.Code, Reason: "not kept; send it again"}
		case refused:
			return pk, packets.CodeSuccessIgnore // acknowledged, dropped
		default:
			return pk, packets.ErrRejectPacket // unacknowledged: sent again
		}
	}
	// Kept: acknowledged, and published to nobody (devices do not
	// subscribe to other devices' uplinks).
	return pk, packets.CodeSuccessIgnore
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// OnQosPublish ties an outgoing QoS 1 downlink's packet id, on the
// connection it is written to, to its waiter. A re-sent one (DUP: the
// broker re-sends a resumed session's unacknowledged PUBLISH on the
// connection that resumed it, MQTT 3.1.1 §4.4, 5.0 §4.4) moves its waiter
// from the connection that had it to this one, so that this connection's
// PUBACK delivers it, and the old connection's close does not fail it.
func (h *hook) OnQosPublish(cl *mochi.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return
	}
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if pk.FixedHeader.Dup {
		for c := range s.inflight {
			if c == cl || c.ID != cl.ID {
				continue
			}
			if w := s.inflight[c][pk.PacketID]; w != nil && w.topic == pk.TopicName {
				s.unmap(inflightKey{c, pk.PacketID}, w)
				s.track(cl, pk.PacketID, w)
				return
			}
		}
	}
	if w, ok := s.byTopic[pk.TopicName]; ok {
		s.track(cl, pk.PacketID, w)
	}
}

// OnPacketRead sees the device's PUBACKs: the downlink was delivered.
func (h *hook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Puback {
		return pk, nil
	}
	s := h.s
	s.mu.Lock()
	w := s.unmap(inflightKey{cl, pk.PacketID}, nil)
	s.mu.Unlock()
	if w != nil {
		var err error
		if pk.ReasonCode >= 0x80 {
			err = fmt.Errorf("mqtt: the device answered PUBACK 0x%02X (%s)", pk.ReasonCode, pk.Properties.ReasonString)
		}
		w.finish(err)
	}
	return pk, nil
}
