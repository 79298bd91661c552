package command

import (
	"math"
	"time"
)

// memRec is a Command as MemStore keeps it. Its seven times are stored as
// seconds and nanoseconds instead of time.Time, which carries a location
// pointer and a monotonic reading the store does not need: a record takes
// 328 bytes instead of 416, and holds 11 pointers for the collector to
// look at instead of 18. With a million pending commands that is what a
// collection must mark.
type memRec struct {
	id, appID, deviceID string
	serviceID, method   string
	paras               []byte
	callbackURL         string
	expireTime          int64
	maxRetransmit       int
	issuedTimes         int
	seq                 uint64
	key, taskID, reason string
	errCode             int
	result              []byte
	retransmits         int
	sec                 [nTimes]int64 // the times, indexed by tCreation…
	nsec                [nTimes]int32
	status              Status
}

// The times of a memRec.
const (
	tCreation = iota
	tIssued
	tDelivered
	tExecute
	tDeadline
	tNextTry
	tSendAttempt
	nTimes
)

func (r *memRec) time(i int) memTime { return memTime{r.sec[i], r.nsec[i]} }

// memTime is a time.Time without location or monotonic reading: seconds
// since 1970 and nanoseconds. The zero time is {zeroSec, 0}.
type memTime struct {
	sec  int64
	nsec int32
}

// zeroSec is time.Time{}.Unix().
const zeroSec = -62135596800

// noDue sorts after every time: an open command with no due time.
var noDue = memTime{sec: math.MaxInt64}

func toMemTime(t time.Time) memTime { return memTime{t.Unix(), int32(t.Nanosecond())} }

// time returns the instant as a time.Time in the Local location, or the
// zero time.
func (m memTime) time() time.Time {
	if m.sec == zeroSec && m.nsec == 0 {
		return time.Time{}
	}
	return time.Unix(m.sec, int64(m.nsec))
}

func (m memTime) compare(o memTime) int {
	switch {
	case m.sec < o.sec:
		return -1
	case m.sec > o.sec:
		return 1
	case m.nsec < o.nsec:
		return -1
	case m.nsec > o.nsec:
		return 1
	}
	return 0
}

func toMemRec(c *Command) memRec {
	r := memRec{
		id: c.ID, appID: c.AppID, deviceID: c.DeviceID,
		serviceID: c.Body.ServiceID, method: c.Body.Method, paras: c.Body.Paras,
		callbackURL: c.CallbackURL, expireTime: c.ExpireTime, maxRetransmit: c.MaxRetransmit,
		issuedTimes: c.IssuedTimes, seq: c.Seq, key: c.Key, taskID: c.TaskID, reason: c.Reason,
		errCode: c.ErrCode, result: c.Result, retransmits: c.Retransmits, status: c.Status,
	}
	for i, t := range [nTimes]time.Time{
		tCreation: c.CreationTime, tIssued: c.PlatformIssuedTime, tDelivered: c.DeliveredTime,
		tExecute: c.ExecuteTime, tDeadline: c.Deadline, tNextTry: c.NextTry, tSendAttempt: c.SendAttempt,
	} {
		m := toMemTime(t)
		r.sec[i], r.nsec[i] = m.sec, m.nsec
	}
	return r
}

func (r *memRec) command() Command {
	return Command{
		ID: r.id, AppID: r.appID, DeviceID: r.deviceID,
		Body:        Body{ServiceID: r.serviceID, Method: r.method, Paras: r.paras},
		CallbackURL: r.callbackURL, ExpireTime: r.expireTime, MaxRetransmit: r.maxRetransmit,
		IssuedTimes: r.issuedTimes, Seq: r.seq, Key: r.key, TaskID: r.taskID, Reason: r.reason,
		ErrCode: r.errCode, Result: r.result, Retransmits: r.retransmits, Status: r.status,
		CreationTime: r.time(tCreation).time(), PlatformIssuedTime: r.time(tIssued).time(),
		DeliveredTime: r.time(tDelivered).time(), ExecuteTime: r.time(tExecute).time(),
		Deadline: r.time(tDeadline).time(), NextTry: r.time(tNextTry).time(), SendAttempt: r.time(tSendAttempt).time(),
	}
}
