package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/doze-io/doze/registry"
)

// Records. A device record is a version byte, then the fields in the
// order of appendDevice: strings and byte strings as uvarint length +
// bytes, times as a presence byte + varint Unix nanoseconds, the timeout
// as varint nanoseconds. Hand-written so that a record is small (the file
// size per device matters at 100 000 devices) and fast.

const deviceRecordV1 = 1

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(append(b, 1), t.UnixNano())
}

// Flags of a device record. flagNoSecurity marks a SecurityNone device
// (SEC-1); records written before it existed lack the bit and read as
// SecurityPSK, which they were.
// flagSecret marks a SecuritySecret (MQTT) device, whose secret hash
// follows the times at the end of the record.
// flagOwner marks a device with an AppID (APP-3), which ends the record;
// records written before ownership lack the bit and read as AppID "".
const (
	flagBound = 1 << iota
	flagConnected
	flagNoSecurity
	flagSecret
	flagOwner
)

func appendDevice(b []byte, d *registry.Device) []byte {
	b = append(b, deviceRecordV1)
	for _, s := range []string{d.ID, d.NodeID, d.VerifyCode, string(d.PSK),
		d.Info.ManufacturerID, d.Info.ManufacturerName, d.Info.DeviceType, d.Info.Model, d.Info.ProtocolType,
		d.Info.Name, d.Info.SWVersion, d.Info.FWVersion, d.Info.Mode,
		d.GatewayID, string(d.NodeType), string(d.Status)} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(d.Groups)))
	for _, g := range d.Groups {
		b = appendString(b, g)
	}
	b = binary.AppendVarint(b, int64(d.Timeout))
	var flags byte
	if d.Bound {
		flags |= flagBound
	}
	if d.Connected {
		flags |= flagConnected
	}
	switch d.Security {
	case registry.SecurityNone:
		flags |= flagNoSecurity
	case registry.SecuritySecret:
		flags |= flagSecret
	}
	if d.AppID != "" {
		flags |= flagOwner
	}
	b = append(b, flags)
	for _, t := range []time.Time{d.CreatedAt, d.LastModified, d.LastSeen, d.DisconnectedAt, d.Deadline} {
		b = appendTime(b, t)
	}
	if d.Security == registry.SecuritySecret {
		b = appendString(b, string(d.SecretHash))
	}
	if d.AppID != "" {
		b = appendString(b, d.AppID)
	}
	return b
}

// errRecord means a stored record could not be decoded.
var errRecord = errors.New("store: damaged registry record")

// decoder consumes a record; the first problem sticks in err. Strings
// are cut from one copy of the record (s), so a decoded device costs one
// allocation for all its strings.
type decoder struct {
	b   []byte
	s   string
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", errRecord, what, d.off)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// span consumes a length-prefixed field and returns its bounds.
func (d *decoder) span() (lo, hi int) {
	n := d.uvarint()
	if d.err != nil {
		return 0, 0
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(fmt.Sprintf("length %d past the end", n))
		return 0, 0
	}
	lo = d.off
	d.off += int(n)
	return lo, d.off
}

func (d *decoder) bytes() []byte {
	lo, hi := d.span()
	return d.b[lo:hi]
}

func (d *decoder) string() string {
	lo, hi := d.span()
	if d.s == "" {
		return string(d.b[lo:hi])
	}
	return d.s[lo:hi]
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("record ends early")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.varint())
	}
	d.fail("bad time marker")
	return time.Time{}
}

func decodeDevice(b []byte) (registry.Device, error) {
	dec := &decoder{b: b, s: string(b)}
	if v := dec.byte(); v != deviceRecordV1 && dec.err == nil {
		return registry.Device{}, fmt.Errorf("%w: version %d, want %d", errRecord, v, deviceRecordV1)
	}
	var d registry.Device
	d.ID = dec.string()
	d.NodeID = dec.string()
	d.VerifyCode = dec.string()
	if k := dec.bytes(); len(k) > 0 {
		d.PSK = registry.PSK(slices.Clone(k))
	}
	for _, p := range []*string{&d.Info.ManufacturerID, &d.Info.ManufacturerName, &d.Info.DeviceType, &d.Info.Model,
		&d.Info.ProtocolType, &d.Info.Name, &d.Info.SWVersion, &d.Info.FWVersion, &d.Info.Mode, &d.GatewayID} {
		*p = dec.string()
	}
	d.NodeType = registry.NodeType(dec.string())
	d.Status = registry.Status(dec.string())
	n := dec.uvarint()
	if n > uint64(len(b)) {
		dec.fail("too many groups")
	}
	for i := uint64(0); i < n && dec.err == nil; i++ {
		d.Groups = append(d.Groups, dec.string())
	}
	d.Timeout = time.Duration(dec.varint())
	flags := dec.byte()
	d.Bound, d.Connected = flags&flagBound != 0, flags&flagConnected != 0
	d.Security = registry.SecurityPSK
	if flags&flagNoSecurity != 0 {
		d.Security = registry.SecurityNone
	}
	for _, p := range []*time.Time{&d.CreatedAt, &d.LastModified, &d.LastSeen, &d.DisconnectedAt, &d.Deadline} {
		*p = dec.time()
	}
	if flags&flagSecret != 0 {
		d.Security = registry.SecuritySecret
		if h := dec.bytes(); len(h) > 0 {
			d.SecretHash = registry.SecretHash(slices.Clone(h))
		}
	}
	if flags&flagOwner != 0 {
		d.AppID = dec.string()
	}
	if dec.err == nil && dec.off != len(b) {
		dec.fail(fmt.Sprintf("%d bytes left over", len(b)-dec.off))
	}
	if dec.err != nil {
		return registry.Device{}, dec.err
	}
	return d, nil
}

func appendGroup(b []byte, g *registry.Group) []byte {
	b = append(b, deviceRecordV1)
	b = appendString(b, g.ID)
	b = appendString(b, g.Name)
	b = appendString(b, g.Description)
	return appendTime(b, g.CreatedAt)
}

func decodeGroup(b []byte) (registry.Group, error) {
	dec := &decoder{b: b}
	if v := dec.byte(); v != deviceRecordV1 && dec.err == nil {
		return registry.Group{}, fmt.Errorf("%w: group version %d, want %d", errRecord, v, deviceRecordV1)
	}
	g := registry.Group{ID: dec.string(), Name: dec.string(), Description: dec.string(), CreatedAt: dec.time()}
	if dec.err == nil && dec.off != len(b) {
		dec.fail(fmt.Sprintf("%d bytes left over", len(b)-dec.off))
	}
	if dec.err != nil {
		return registry.Group{}, dec.err
	}
	return g, nil
}
