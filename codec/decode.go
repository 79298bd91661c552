package codec

import (
	"encoding/binary"
	"math"
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

// IsPCP reports whether payload is a PCP frame (first bytes FF FE), which the
// platform routes to ota instead of a codec (COD-4).
func IsPCP(payload []byte) bool {
	return len(payload) >= 2 && payload[0] == 0xFF && payload[1] == 0xFE
}

// DecodeRecord decodes an uplink payload (a report or a command response)
// into r, allocating nothing on success once r has room (COD-4). It returns
// ErrPCP for a PCP frame and a *FieldError naming message, field and byte
// offset for bad input.
func (d *Declarative) DecodeRecord(payload []byte, r *Record) error {
	return d.decodeRecord(d.up, &d.upID, payload, r)
}

// DecodeDownlinkRecord is DecodeRecord for downlink payloads (commands and
// report responses), as a device sees them.
func (d *Declarative) DecodeDownlinkRecord(payload []byte, r *Record) error {
	return d.decodeRecord(d.down, &d.downID, payload, r)
}

func (d *Declarative) decodeRecord(dir []int, x *idIndex, p []byte, r *Record) error {
	if len(p) == 0 {
		return &FieldError{Offset: 0, Err: ErrEmpty}
	}
	if IsPCP(p) {
		return ErrPCP
	}
	var m *message
	if x.off >= 0 && len(p) >= x.off+x.size {
		id := readUint(p[x.off : x.off+x.size])
		for i, v := range x.ids {
			if v == id {
				m = x.msgs[i]
				break
			}
		}
	}
	if m == nil {
		var err error
		if m, err = d.identify(dir, p); err != nil {
			return err
		}
	}
	if r.msg != m {
		n := len(m.fields)
		if cap(r.bits) < n {
			r.bits = make([]uint64, n, max(n, 8))
			r.bs = make([][]byte, n, max(n, 8))
		}
		r.bits, r.bs = r.bits[:n], r.bs[:n]
		r.msg, r.fields = m, m.fields
	}
	if m.fixedLen == len(p) && decodeFixed(m, p, r.bits, r.bs) {
		return nil
	}
	return decodeGeneral(m, p, r)
}

// decodeGeneral decodes any message, with every error in detail: variable
// fields, wrong lengths, NaN, bad mids.
func decodeGeneral(m *message, p []byte, r *Record) error {
	off := 0
	for i := range m.fields {
		f := &m.fields[i]
		size := f.size
		if f.ref >= 0 && f.role == roleData { // varstring, variant
			l := r.bits[f.ref]
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
		switch f.typ {
		case tUint:
			r.bits[i] = readUint(b)
		case tInt:
			sh := 64 - 8*uint(size)
			r.bits[i] = uint64(int64(readUint(b)<<sh) >> sh)
		case tFloat:
			var x float64
			if size == 4 {
				x = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
			} else {
				x = math.Float64frombits(binary.BigEndian.Uint64(b))
			}
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return &FieldError{Message: m.name, Field: f.name, Offset: off,
					Err: errf(ErrNotFinite, "%X is NaN or infinite; only finite numbers are allowed", b)}
			}
			r.bits[i] = math.Float64bits(x)
		default:
			r.bits[i], r.bs[i] = 0, b
		}
		if x := int64(r.bits[i]); f.role == roleMid && (x < 1 || x > 65535) {
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
func decodeFixed(m *message, p []byte, bits []uint64, bs [][]byte) bool {
	ops := m.ops
	bits, bs = bits[:len(ops)], bs[:len(ops)]
	for i := range ops {
		switch ops[i].code {
		case opU8:
			bits[i] = uint64(p[0])
			p = p[1:]
		case opI8:
			bits[i] = uint64(int64(int8(p[0])))
			p = p[1:]
		case opU16:
			bits[i] = uint64(binary.BigEndian.Uint16(p))
			p = p[2:]
		case opI16:
			bits[i] = uint64(int64(int16(binary.BigEndian.Uint16(p))))
			p = p[2:]
		case opU24:
			bits[i] = uint64(p[0])<<16 | uint64(p[1])<<8 | uint64(p[2])
			p = p[3:]
		case opI24:
			bits[i] = uint64(int64(int32(uint32(p[0])<<24|uint32(p[1])<<16|uint32(p[2])<<8) >> 8))
			p = p[3:]
		case opU32:
			bits[i] = uint64(binary.BigEndian.Uint32(p))
			p = p[4:]
		case opI32:
			bits[i] = uint64(int64(int32(binary.BigEndian.Uint32(p))))
			p = p[4:]
		case opU64:
			bits[i] = binary.BigEndian.Uint64(p)
			p = p[8:]
		case opF32:
			f := float64(math.Float32frombits(binary.BigEndian.Uint32(p)))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return false
			}
			bits[i] = math.Float64bits(f)
			p = p[4:]
		case opF64:
			x := binary.BigEndian.Uint64(p)
			if f := math.Float64frombits(x); math.IsNaN(f) || math.IsInf(f, 0) {
				return false
			}
			bits[i] = x
			p = p[8:]
		default:
			n := ops[i].size
			bits[i], bs[i] = 0, p[:n]
			p = p[n:]
		}
	}
	if m.midIndex >= 0 {
		if v := int64(bits[m.midIndex]); v < 1 || v > 65535 {
			return false
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
	return d.decode(d.up, &d.upID, payload)
}

// DecodeDownlink decodes a downlink payload into a *Command or a *ReportAck,
// as a device would. A ReportAck's Request is nil: the acknowledgement does
// not carry the report.
func (d *Declarative) DecodeDownlink(payload []byte) (Message, error) {
	return d.decode(d.down, &d.downID, payload)
}

// decode decodes into a Record on the stack and builds the message from it.
func (d *Declarative) decode(dir []int, x *idIndex, payload []byte) (Message, error) {
	var bits [16]uint64
	var bs [16][]byte
	r := Record{bits: bits[:0], bs: bs[:0]}
	if err := d.decodeRecord(dir, x, payload, &r); err != nil {
		return nil, err
	}
	return r.Build(), nil
}
