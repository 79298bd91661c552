package codec

import (
	"encoding/binary"
	"math"

	"github.com/doze-io/doze/ota/pcp"
)

func readUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 3:
		return uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// DecodeRecord decodes an uplink payload (a report or a command response)
// into r, allocating nothing on success once r has room (COD-4). It returns
// ErrPCP for a PCP frame and a *FieldError naming message, field and byte
// offset for bad input.
func (d *Declarative) DecodeRecord(payload []byte, r *Record) error {
	return d.decodeRecord(&d.upID, payload, r)
}

// DecodeDownlinkRecord is DecodeRecord for downlink payloads (commands and
// report responses), as a device sees them.
func (d *Declarative) DecodeDownlinkRecord(payload []byte, r *Record) error {
	return d.decodeRecord(&d.downID, payload, r)
}

// decodeRecord has a fast path: p is of the message r held last (its
// one-byte messageId, the direction of x), made of integers in a fixed
// layout of 8 bytes or more whose length p has, p is not a PCP frame, and
// the mid, if any, is in range. It reads only r and p, not the message,
// to keep the chain of dependent loads short, checks everything first, and
// then reads the fields in straight-line code entered at their number, with
// no loop and no further call. Anything else takes the full path, which
// gives the detailed errors.
func (d *Declarative) decodeRecord(x *idIndex, p []byte, r *Record) error {
	f := &r.fast
	if f.x != x || len(p) != f.n || p[f.idOff] != f.id || p[0] == 0xFF ||
		f.mid >= 0 && uint64(f.midSlot.read(p)-1) >= 65535 {
		return d.decodeFull(x, p, r)
	}
	num := r.num
	switch f.nints { // one case per field, maxFast of them
	case 16:
		num[f.ints[15].dst].i = f.ints[15].read(p)
		fallthrough
	case 15:
		num[f.ints[14].dst].i = f.ints[14].read(p)
		fallthrough
	case 14:
		num[f.ints[13].dst].i = f.ints[13].read(p)
		fallthrough
	case 13:
		num[f.ints[12].dst].i = f.ints[12].read(p)
		fallthrough
	case 12:
		num[f.ints[11].dst].i = f.ints[11].read(p)
		fallthrough
	case 11:
		num[f.ints[10].dst].i = f.ints[10].read(p)
		fallthrough
	case 10:
		num[f.ints[9].dst].i = f.ints[9].read(p)
		fallthrough
	case 9:
		num[f.ints[8].dst].i = f.ints[8].read(p)
		fallthrough
	case 8:
		num[f.ints[7].dst].i = f.ints[7].read(p)
		fallthrough
	case 7:
		num[f.ints[6].dst].i = f.ints[6].read(p)
		fallthrough
	case 6:
		num[f.ints[5].dst].i = f.ints[5].read(p)
		fallthrough
	case 5:
		num[f.ints[4].dst].i = f.ints[4].read(p)
		fallthrough
	case 4:
		num[f.ints[3].dst].i = f.ints[3].read(p)
		fallthrough
	case 3:
		num[f.ints[2].dst].i = f.ints[2].read(p)
		fallthrough
	case 2:
		num[f.ints[1].dst].i = f.ints[1].read(p)
		fallthrough
	case 1:
		num[f.ints[0].dst].i = f.ints[0].read(p)
	}
	return nil
}

// read reads the field of s from p, which holds at least s.base+8 bytes
// (buildPlan; callers check the payload length). The bounds check stays
// (three instructions; without it, through unsafe, a decode of
// meterReading took 0.6 ns less): a decoder of untrusted input should not
// read out of bounds whatever the state of a Record.
func (s *slot) read(p []byte) int64 {
	b := uint(s.base)
	v := binary.BigEndian.Uint64(p[b : b+8 : b+8])
	return int64(v<<(s.lsh&63)) >> (s.rsh & 63) & s.mask
}

// The switch in decodeRecord has maxFast cases.
var _ = [1]struct{}{}[maxFast-16]

// readInts reads the integer fields of a fixed-layout message m (but its
// messageId, whose value r.reset set) from p, which must hold at least
// max(8, m.fixedLen) bytes: every slot's 8 bytes lie within them
// (buildPlan). It returns false for a mid out of range.
func readInts(m *message, num []cell, p []byte) bool {
	for i := range m.ints {
		s := &m.ints[i]
		num[s.dst].i = s.read(p)
	}
	if k := m.midIndex; k >= 0 && uint64(num[k].i-1) >= 65535 {
		return false
	}
	return true
}

// decodeFull is decodeRecord for any payload, x being &d.upID or
// &d.downID.
func (d *Declarative) decodeFull(x *idIndex, p []byte, r *Record) error {
	dir := d.up
	if x == &d.downID {
		dir = d.down
	}
	if len(p) == 0 {
		return &FieldError{Offset: 0, Err: ErrEmpty}
	}
	if p[0] == 0xFF && pcp.IsPCP(p) {
		return ErrPCP
	}
	m := x.find(p)
	if m == nil {
		var err error
		if m, err = d.identify(dir, p); err != nil {
			return err
		}
	}
	if r.msg != m {
		r.reset(m, x)
	}
	if m.fixedLen == len(p) && decodeFixed(m, p, r.num, r.bs) {
		return nil
	}
	return decodeGeneral(m, p, r)
}

// reset makes r hold message m of the direction of x, growing it if
// needed.
func (r *Record) reset(m *message, x *idIndex) {
	n := len(m.fields)
	if cap(r.num) < n {
		r.num = make([]cell, n, max(n, 8))
		r.bs = make([][]byte, n, max(n, 8))
	}
	r.num, r.bs = r.num[:n], r.bs[:n]
	for i := range m.fields {
		r.num[i] = convOf(&m.fields[i])
	}
	if k := m.idIndex; k >= 0 {
		f := &m.fields[k]
		x := m.id
		if f.typ == tInt {
			sh := 64 - 8*uint(f.size)
			x = uint64(int64(x<<sh) >> sh)
		}
		r.num[k].setNum(f, x)
	}
	r.msg, r.fields = m, m.fields
	f := &r.fast
	f.x, f.n = nil, -1
	if m.fastLen >= 0 && x.off >= 0 && x.size == 1 && len(m.ints) <= maxFast {
		f.x, f.n, f.idOff, f.id, f.mid = x, m.fastLen, x.off, byte(m.id), m.midIndex
		f.nints = copy(f.ints[:], m.ints)
		for _, s := range m.ints {
			if int(s.dst) == m.midIndex {
				f.midSlot = s
			}
		}
	}
}

// decodeGeneral decodes any message, with every error in detail: variable
// fields, wrong lengths, NaN, bad mids.
func decodeGeneral(m *message, p []byte, r *Record) error {
	off := 0
	for i := range m.fields {
		f := &m.fields[i]
		size := f.size
		if f.ref >= 0 && f.role == roleData { // varstring, variant
			l := uint64(r.num[f.ref].i)
			if m.fields[f.ref].typ == tInt && int64(l) < 0 {
				return &FieldError{Message: m.name, Field: f.name, Offset: off,
					Err: errf(ErrValue, "length field %s holds %d, which is negative", m.fields[f.ref].name, int64(l))}
			}
			if l > uint64(len(p)-off) {
				return &FieldError{Message: m.name, Field: f.name, Offset: off,
					Err: errf(ErrTruncated, "need %d bytes (from %s), %d left", l, m.fields[f.ref].name, len(p)-off)}
			}
			size = int(l)
		}
		if len(p)-off < size {
			return &FieldError{Message: m.name, Field: f.name, Offset: off,
				Err: errf(ErrTruncated, "need %d bytes, %d left", size, len(p)-off)}
		}
		b := p[off : off+size]
		var x uint64
		switch f.typ {
		case tUint:
			x = readUint(b)
		case tInt:
			sh := 64 - 8*uint(size)
			x = uint64(int64(readUint(b)<<sh) >> sh)
		case tFloat:
			var v float64
			if size == 4 {
				v = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
			} else {
				v = math.Float64frombits(binary.BigEndian.Uint64(b))
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return &FieldError{Message: m.name, Field: f.name, Offset: off,
					Err: errf(ErrNotFinite, "%X is NaN or infinite; only finite numbers are allowed", b)}
			}
			x = math.Float64bits(v)
		default:
			r.bs[i] = b
		}
		r.num[i].setNum(f, x)
		if x := r.num[i].i; f.role == roleMid && (x < 1 || x > 65535) {
			return &FieldError{Message: m.name, Field: f.name, Offset: off,
				Err: errf(ErrRange, "mid %d is outside 1…65535", x)}
		}
		off += size
	}
	if off != len(p) {
		return &FieldError{Message: m.name, Offset: off,
			Err: errf(ErrTrailing, "%d byte(s) left over after the last field %s; the message is %d bytes", len(p)-off, lastName(m), off)}
	}
	return nil
}

// decodeFixed decodes a message of fixed layout whose length matches. It
// returns false, leaving the detail to the general path, for a float that
// is not finite or a mid out of range.
func decodeFixed(m *message, p []byte, num []cell, bs [][]byte) bool {
	if m.ints == nil { // no plan (buildPlan)
		return false
	}
	q := p
	if len(p) < 8 {
		var buf [8]byte
		copy(buf[:], p)
		q = buf[:]
	}
	if !readInts(m, num, q) {
		return false
	}
	return len(m.fix) == 0 || fixUp(m, p, num, bs)
}

// fixUp gives their values to the fields the plan of a fixed-layout message
// leaves out. It returns false for a float that is not finite.
func fixUp(m *message, p []byte, num []cell, bs [][]byte) bool {
	for _, fx := range m.fix {
		f := &m.fields[fx.i]
		c := &num[fx.i]
		switch fx.kind {
		case fixScaled:
			c.add = f.fromRaw(c.i)
		case fixU64:
			c.add = float64(uint64(c.i))
		case fixF32:
			v := float64(math.Float32frombits(binary.BigEndian.Uint32(p[f.off:])))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
			c.i, c.add = int64(v), v
		case fixF64:
			v := math.Float64frombits(binary.BigEndian.Uint64(p[f.off:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
			c.i, c.add = int64(v), v
		default:
			bs[fx.i] = p[f.off : f.off+f.size]
		}
	}
	return true
}

func lastName(m *message) string {
	if len(m.fields) == 0 {
		return "(none)"
	}
	return m.fields[len(m.fields)-1].name
}

// identify picks the message of a direction by its messageId (COD-2).
func (d *Declarative) identify(dir []int, p []byte) (*message, error) {
	if len(dir) == 0 {
		return nil, &FieldError{Offset: 0, Err: errf(ErrUnknownMessage, "the codec has no message in this direction")}
	}
	if len(dir) == 1 && d.messages[dir[0]].idIndex < 0 {
		return &d.messages[dir[0]], nil
	}
	var lastErr error
	var seenID uint64
	var seenField string
	seenOff := -1
	for _, i := range dir {
		m := &d.messages[i]
		f := &m.fields[m.idIndex]
		off := f.off
		if off < 0 {
			off = varOffset(m, m.idIndex, p)
			if off < 0 {
				lastErr = &FieldError{Message: m.name, Field: f.name, Offset: 0,
					Err: errf(ErrTruncated, "payload too short to reach the messageId")}
				continue
			}
		}
		if len(p)-off < f.size {
			lastErr = &FieldError{Message: m.name, Field: f.name, Offset: off,
				Err: errf(ErrTruncated, "need %d bytes for the messageId, %d left", f.size, len(p)-off)}
			continue
		}
		id := readUint(p[off : off+f.size])
		if id == m.id {
			return m, nil
		}
		seenID, seenOff, seenField = id, off, f.name
	}
	if seenOff >= 0 {
		return nil, &FieldError{Field: seenField, Offset: seenOff, Err: errf(ErrUnknownMessage, "messageId %d (0x%02X) matches no message", seenID, seenID)}
	}
	return nil, lastErr
}

// varOffset finds the byte offset of field idx when variable fields come
// before it, or -1 if the payload ends first.
func varOffset(m *message, idx int, p []byte) int {
	off := 0
	for i := 0; i < idx; i++ {
		f := &m.fields[i]
		size := f.size
		if f.variable() {
			lf := &m.fields[f.ref]
			lo := lf.off
			if lo < 0 {
				lo = varOffset(m, f.ref, p)
			}
			if lo < 0 || len(p)-lo < lf.size {
				return -1
			}
			l := readUint(p[lo : lo+lf.size])
			if l > uint64(len(p)) {
				return -1
			}
			size = int(l)
		}
		off += size
		if off > len(p) {
			return -1
		}
	}
	return off
}

// Decode decodes an uplink payload into a *Report or a *Response (COD-1,
// COD-4). It returns ErrPCP for a PCP frame.
func (d *Declarative) Decode(payload []byte) (Message, error) {
	return d.decode(&d.upID, payload)
}

// DecodeDownlink decodes a downlink payload into a *Command or a *ReportAck,
// as a device would. A ReportAck's Request is nil: the acknowledgement does
// not carry the report.
func (d *Declarative) DecodeDownlink(payload []byte) (Message, error) {
	return d.decode(&d.downID, payload)
}

// decode decodes into a Record on the stack and builds the message from it.
func (d *Declarative) decode(x *idIndex, payload []byte) (Message, error) {
	var num [16]cell
	var bs [16][]byte
	r := Record{num: num[:0], bs: bs[:0]}
	if err := d.decodeRecord(x, payload, &r); err != nil {
		return nil, err
	}
	return r.Build(), nil
}
