package lwm2m

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// The four kinds of TLV element (LwM2M 1.1 Core §7.4.3, bits 7–6 of the
// type byte).
const (
	tlvObjectInstance   = 0 // 00: object instance holding resources
	tlvResourceInstance = 1 // 01: one instance of a multiple resource
	tlvMultipleResource = 2 // 10: multiple resource holding resource instances
	tlvResource         = 3 // 11: single resource with its value
)

var tlvKindNames = [4]string{"object instance", "resource instance", "multiple resource", "resource"}

// maxTLVLength is the largest value a TLV length field can hold (24 bits).
const maxTLVLength = 1<<24 - 1

type tlvElem struct {
	kind byte
	id   uint16
	off  int // offset of the type byte
	voff int // offset of the value
	vlen int
}

// consumeTLV reads the element header at b[off:] and checks that its value
// fits in b[:end]. It returns the element, or a reason and the offset the
// reason is about.
func consumeTLV(b []byte, off, end int) (tlvElem, string) {
	t := b[off]
	e := tlvElem{kind: t >> 6, off: off}
	idLen := 1 + int(t>>5&1)
	lenLen := int(t >> 3 & 3)
	need := 1 + idLen + lenLen
	if end-off < need {
		return e, "TLV header needs " + strconv.Itoa(need) + " bytes, " + strconv.Itoa(end-off) + " left"
	}
	p := off + 1
	if idLen == 1 {
		e.id = uint16(b[p])
	} else {
		e.id = binary.BigEndian.Uint16(b[p:])
		if e.id > MaxID {
			return e, "TLV id 65535 is reserved (MAX_ID)"
		}
	}
	p += idLen
	switch lenLen {
	case 0:
		e.vlen = int(t & 7)
	case 1:
		e.vlen = int(b[p])
	case 2:
		e.vlen = int(binary.BigEndian.Uint16(b[p:]))
	case 3:
		e.vlen = int(b[p])<<16 | int(b[p+1])<<8 | int(b[p+2])
	}
	e.voff = p + lenLen
	if e.vlen > end-e.voff {
		return e, "TLV " + tlvKindNames[e.kind] + " " + strconv.Itoa(int(e.id)) + " declares " +
			strconv.Itoa(e.vlen) + " value bytes, only " + strconv.Itoa(end-e.voff) + " left"
	}
	return e, ""
}

// DecodeTLV decodes a TLV payload (content format 11542, LwM2M 1.1 Core
// §7.4.3) read from base, which must name at least an object. The payload
// holds object instances for /o, resources for /o/i, one resource (single
// or multiple) for /o/i/r and one resource instance for /o/i/r/ri. As many
// clients send them, DecodeTLV also accepts one object instance wrapping
// what was asked for /o/i or below, resources directly under /o (taken as
// instance 0) and bare resource instances for /o/i/r. A path given twice
// is an error.
//
// Values of resources that reg defines get their type; others are Raw
// values (see Value.As). Errors are *DecodeError naming the path and the
// byte offset. DecodeTLV never allocates more than a small multiple of the
// payload size, whatever its length fields say.
func DecodeTLV(base Path, b []byte, reg *Objects) ([]Record, error) {
	if base.n == 0 {
		return nil, &DecodeError{Format: FormatTLV, Path: "/", Reason: "a TLV payload needs an object in the request path"}
	}
	// A value with its header takes about 8 bytes in typical payloads; the
	// estimate saves regrowing the slice and stays in proportion to b.
	d := tlvDecoder{b: b, types: typeCache{reg: reg}, recs: make([]Record, 0, len(b)/8+1)}
	if err := d.elems(base, 0, len(b), true); err != nil {
		return nil, err
	}
	return d.recs, nil
}

type tlvDecoder struct {
	b       []byte
	types   typeCache
	recs    []Record
	wrapped bool           // inside an object instance wrapping the request path
	seen    map[Path]uint8 // paths so far, once records came out of order
}

func (d *tlvDecoder) errorf(p Path, off int, reason string) error {
	return &DecodeError{Format: FormatTLV, Path: p.String(), Offset: off, Reason: reason}
}

// elems decodes the elements in b[start:end] that lie under p. top says
// whether they are at the top level of the payload.
func (d *tlvDecoder) elems(p Path, start, end int, top bool) error {
	for off := start; off < end; {
		e, reason := consumeTLV(d.b, off, end)
		if reason != "" {
			return d.errorf(p, off, reason)
		}
		if err := d.elem(p, e, top); err != nil {
			return err
		}
		off = e.voff + e.vlen
	}
	return nil
}

func (d *tlvDecoder) elem(p Path, e tlvElem, top bool) error {
	q, ok := tlvTarget(p, e, top)
	if !ok {
		return d.errorf(p, e.off, "a TLV "+tlvKindNames[e.kind]+" with id "+strconv.Itoa(int(e.id))+
			" cannot appear here; under "+p.Level().String()+" "+p.String()+" want "+tlvWant(p, top))
	}
	switch e.kind {
	case tlvObjectInstance:
		if q != p {
			return d.elems(q, e.voff, e.voff+e.vlen, false)
		}
		if d.wrapped {
			return d.errorf(p, e.off, "object instance "+strconv.Itoa(int(e.id))+" wrapped twice")
		}
		d.wrapped = true
		return d.elems(p, e.voff, e.voff+e.vlen, true)
	case tlvResource, tlvResourceInstance:
		return d.value(q, e)
	}
	// Multiple resource: resource instances only.
	for off, end := e.voff, e.voff+e.vlen; off < end; {
		ri, reason := consumeTLV(d.b, off, end)
		if reason != "" {
			return d.errorf(q, off, reason)
		}
		if ri.kind != tlvResourceInstance {
			return d.errorf(q, off, "a multiple resource holds resource instances, not a "+tlvKindNames[ri.kind])
		}
		rq := q
		rq.ids[3], rq.n = ri.id, 4
		if err := d.value(rq, ri); err != nil {
			return err
		}
		off = ri.voff + ri.vlen
	}
	return nil
}

// tlvTarget returns the path element e stands for when it appears under p.
func tlvTarget(p Path, e tlvElem, top bool) (Path, bool) {
	q := p
	switch e.kind {
	case tlvObjectInstance:
		if p.n == 1 {
			q.ids[1], q.n = e.id, 2
			return q, true
		}
		// An object instance wrapping what was asked for /o/i or below.
		return p, top && p.n >= 2 && p.ids[1] == e.id
	case tlvResource, tlvMultipleResource:
		switch {
		case p.n == 2:
			q.ids[2], q.n = e.id, 3
			return q, true
		case top && p.n == 3:
			return p, p.ids[2] == e.id
		case top && p.n == 1:
			q.ids[1], q.ids[2], q.n = 0, e.id, 3
			return q, true
		}
	case tlvResourceInstance:
		switch {
		case top && p.n == 3:
			q.ids[3], q.n = e.id, 4
			return q, true
		case top && p.n == 4:
			return p, p.ids[3] == e.id
		}
	}
	return p, false
}

func tlvWant(p Path, top bool) string {
	switch {
	case p.n == 1:
		return "object instances"
	case p.n == 2 && top:
		return "resources or the object instance " + strconv.Itoa(int(p.ids[1]))
	case p.n == 2:
		return "resources"
	case p.n == 3:
		return "resource " + strconv.Itoa(int(p.ids[2])) + " or its instances"
	}
	return "resource instance " + strconv.Itoa(int(p.ids[3]))
}

func (d *tlvDecoder) value(q Path, e tlvElem) error {
	raw := d.b[e.voff : e.voff+e.vlen]
	var v Value
	if t, ok := d.types.typeAt(q); ok {
		var reason string
		if v, reason = tlvValue(raw, t); reason != "" {
			return d.errorf(q, e.voff, reason)
		}
	} else {
		v = RawValue(FormatTLV, raw)
	}
	if reason := d.track(q); reason != "" {
		return d.errorf(q, e.off, reason)
	}
	d.recs = append(d.recs, Record{Path: q, Value: v})
	return nil
}

// Marks in tlvDecoder.seen.
const (
	seenValue     = 1 // a record at the path
	seenInstances = 2 // a resource with records at its instances
)

// track refuses a path given twice, and a resource given both as a single
// value and with instances. Records in increasing path order cannot
// repeat, so only a payload out of order pays for a set of the paths seen.
func (d *tlvDecoder) track(q Path) string {
	n := len(d.recs)
	if d.seen == nil {
		if n == 0 || d.recs[n-1].Path.Compare(q) < 0 {
			if n > 0 && q.n == 4 && d.recs[n-1].Path == q.Parent() {
				return "resource " + q.Parent().String() + " has a value and instances; a resource is single or multiple"
			}
			return ""
		}
		d.seen = make(map[Path]uint8, n+1)
		for _, r := range d.recs {
			d.seen[r.Path] = seenValue
			if r.Path.n == 4 {
				d.seen[r.Path.Parent()] = seenInstances
			}
		}
	}
	if d.seen[q] != 0 {
		if d.seen[q] == seenInstances {
			return "resource " + q.String() + " has a value and instances; a resource is single or multiple"
		}
		return "the payload holds " + q.String() + " twice"
	}
	d.seen[q] = seenValue
	if q.n == 4 {
		if d.seen[q.Parent()] == seenValue {
			return "resource " + q.Parent().String() + " has a value and instances; a resource is single or multiple"
		}
		d.seen[q.Parent()] = seenInstances
	}
	return ""
}

// tlvValue decodes the value field of a TLV as type t (LwM2M 1.1 Core
// Appendix C). It returns a reason when b is not a value of type t.
func tlvValue(b []byte, t Type) (Value, string) {
	switch t {
	case TypeString:
		return StringValue(string(b)), ""
	case TypeCorelnk:
		return CorelnkValue(string(b)), ""
	case TypeOpaque:
		return OpaqueValue(b), ""
	case TypeInteger, TypeTime:
		var i int64
		switch len(b) {
		case 1:
			i = int64(int8(b[0]))
		case 2:
			i = int64(int16(binary.BigEndian.Uint16(b)))
		case 4:
			i = int64(int32(binary.BigEndian.Uint32(b)))
		case 8:
			i = int64(binary.BigEndian.Uint64(b))
		default:
			return Value{}, t.String() + " of " + strconv.Itoa(len(b)) + " bytes; want 1, 2, 4 or 8"
		}
		return Value{t: t, n: uint64(i)}, ""
	case TypeUnsigned:
		switch len(b) {
		case 1:
			return UintValue(uint64(b[0])), ""
		case 2:
			return UintValue(uint64(binary.BigEndian.Uint16(b))), ""
		case 4:
			return UintValue(uint64(binary.BigEndian.Uint32(b))), ""
		case 8:
			return UintValue(binary.BigEndian.Uint64(b)), ""
		}
		return Value{}, "Unsigned Integer of " + strconv.Itoa(len(b)) + " bytes; want 1, 2, 4 or 8"
	case TypeFloat:
		switch len(b) {
		case 4:
			return FloatValue(float64(math.Float32frombits(binary.BigEndian.Uint32(b)))), ""
		case 8:
			return FloatValue(math.Float64frombits(binary.BigEndian.Uint64(b))), ""
		}
		return Value{}, "Float of " + strconv.Itoa(len(b)) + " bytes; want 4 or 8"
	case TypeBoolean:
		if len(b) != 1 || b[0] > 1 {
			return Value{}, "Boolean must be one byte 0 or 1"
		}
		return BoolValue(b[0] == 1), ""
	case TypeObjlnk:
		if len(b) != 4 {
			return Value{}, "Objlnk of " + strconv.Itoa(len(b)) + " bytes; want 4"
		}
		return ObjlnkValue(binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])), ""
	case TypeNone:
		if len(b) != 0 {
			return Value{}, "a resource without a type (Execute) has no value"
		}
		return Value{}, ""
	}
	return Value{}, "type " + t.String() + " has no TLV form"
}

// AppendTLV appends the TLV encoding of recs, read from or written to
// base, to dst. base must name at least an object; every record must name
// a resource or resource instance under base. For /o the payload holds
// object instances, for /o/i resources, for /o/i/r the resource (a
// multiple resource when the records name its instances), for /o/i/r/ri
// one resource instance. Records may come in any order.
func AppendTLV(dst []byte, base Path, recs []Record) ([]byte, error) {
	if base.n == 0 {
		return dst, &EncodeError{Format: FormatTLV, Path: "/", Reason: "a TLV payload needs an object in the path"}
	}
	if len(recs) == 0 {
		return dst, nil // an empty payload, as DecodeTLV reads it back
	}
	if base.n == 4 && len(recs) != 1 {
		return dst, &EncodeError{Format: FormatTLV, Path: base.String(),
			Reason: strconv.Itoa(len(recs)) + " records for a resource instance; want 1"}
	}
	if !slices.IsSortedFunc(recs, compareRecords) {
		recs = slices.Clone(recs)
		slices.SortStableFunc(recs, compareRecords)
	}
	for i, rec := range recs {
		if err := checkRecord(FormatTLV, base, rec); err != nil {
			return dst, err
		}
		if i > 0 && recs[i-1].Path == rec.Path {
			return dst, &EncodeError{Format: FormatTLV, Path: rec.Path.String(), Reason: "two values for the same path"}
		}
		if rec.Path.n == 4 && i > 0 && recs[i-1].Path == rec.Path.Parent() {
			return dst, &EncodeError{Format: FormatTLV, Path: rec.Path.Parent().String(),
				Reason: "a value for the resource and for its instances; a resource is single or multiple"}
		}
	}
	return appendTLVLevel(dst, base, recs)
}

func compareRecords(a, b Record) int { return a.Path.Compare(b.Path) }

// checkRecord checks that rec names a resource or resource instance under
// base and has a value the format can carry.
func checkRecord(f Format, base Path, rec Record) error {
	if !base.Contains(rec.Path) {
		return &EncodeError{Format: f, Path: rec.Path.String(), Reason: "record is not under " + base.String()}
	}
	if rec.Path.n < 3 {
		return &EncodeError{Format: f, Path: rec.Path.String(), Reason: "a record names a resource or resource instance, not a " + rec.Path.Level().String()}
	}
	switch rec.Value.t {
	case TypeNone:
		return &EncodeError{Format: f, Path: rec.Path.String(), Reason: "record has no value"}
	case TypeRaw:
		if rec.Value.src != f {
			return &EncodeError{Format: f, Path: rec.Path.String(),
				Reason: "raw value from " + rec.Value.src.String() + "; convert it with Value.As first"}
		}
	}
	return nil
}

// appendTLVLevel encodes sorted records under p.
func appendTLVLevel(dst []byte, p Path, recs []Record) ([]byte, error) {
	switch p.n {
	case 1:
		for len(recs) > 0 {
			n := groupLen(recs, 1)
			size, err := tlvResourcesSize(recs[:n])
			if err != nil {
				return dst, err
			}
			dst = appendTLVHeader(dst, tlvObjectInstance, recs[0].Path.ids[1], size)
			if dst, err = appendTLVResources(dst, recs[:n]); err != nil {
				return dst, err
			}
			recs = recs[n:]
		}
		return dst, nil
	case 2, 3:
		return appendTLVResources(dst, recs)
	}
	// p.n == 4: one resource instance.
	return appendTLVElem(dst, tlvResourceInstance, p.ids[3], recs[0])
}

// groupLen returns how many records from the start share the id at level.
func groupLen(recs []Record, level int) int {
	n := 1
	for n < len(recs) && recs[n].Path.ids[level] == recs[0].Path.ids[level] && recs[n].Path.n > uint8(level) {
		n++
	}
	return n
}

// appendTLVResources encodes sorted records of one object instance as
// resource and multiple-resource TLVs.
func appendTLVResources(dst []byte, recs []Record) ([]byte, error) {
	for len(recs) > 0 {
		n := groupLen(recs, 2)
		var err error
		if recs[0].Path.n == 3 {
			dst, err = appendTLVElem(dst, tlvResource, recs[0].Path.ids[2], recs[0])
		} else {
			size := 0
			for _, r := range recs[:n] {
				s, err := tlvElemSize(r)
				if err != nil {
					return dst, err
				}
				size += s
			}
			if size > maxTLVLength {
				return dst, &EncodeError{Format: FormatTLV, Path: recs[0].Path.Parent().String(), Reason: "resource is larger than 16 MiB - 1, the TLV limit"}
			}
			dst = appendTLVHeader(dst, tlvMultipleResource, recs[0].Path.ids[2], size)
			for _, r := range recs[:n] {
				if dst, err = appendTLVElem(dst, tlvResourceInstance, r.Path.ids[3], r); err != nil {
					return dst, err
				}
			}
		}
		if err != nil {
			return dst, err
		}
		recs = recs[n:]
	}
	return dst, nil
}

// tlvResourcesSize returns the encoded size of the resources of one object
// instance.
func tlvResourcesSize(recs []Record) (int, error) {
	size, first := 0, Path{ids: recs[0].Path.ids, n: 2}
	for len(recs) > 0 {
		n := groupLen(recs, 2)
		if recs[0].Path.n == 3 {
			s, err := tlvElemSize(recs[0])
			if err != nil {
				return 0, err
			}
			size += s
		} else {
			inner := 0
			for _, r := range recs[:n] {
				s, err := tlvElemSize(r)
				if err != nil {
					return 0, err
				}
				inner += s
			}
			size += tlvHeaderSize(recs[0].Path.ids[2], inner) + inner
		}
		recs = recs[n:]
	}
	if size > maxTLVLength {
		return 0, &EncodeError{Format: FormatTLV, Path: first.String(), Reason: "object instance is larger than 16 MiB - 1, the TLV limit"}
	}
	return size, nil
}

func tlvElemSize(r Record) (int, error) {
	id := r.Path.ids[r.Path.n-1]
	vl := tlvValueSize(r.Value)
	if vl > maxTLVLength {
		return 0, &EncodeError{Format: FormatTLV, Path: r.Path.String(), Reason: "value is larger than 16 MiB - 1, the TLV limit"}
	}
	return tlvHeaderSize(id, vl) + vl, nil
}

func tlvHeaderSize(id uint16, vlen int) int {
	n := 2
	if id > 255 {
		n++
	}
	switch {
	case vlen <= 7:
	case vlen <= 0xff:
		n++
	case vlen <= 0xffff:
		n += 2
	default:
		n += 3
	}
	return n
}

func appendTLVHeader(dst []byte, kind byte, id uint16, vlen int) []byte {
	t := kind << 6
	if id > 255 {
		t |= 1 << 5
	}
	switch {
	case vlen <= 7:
		t |= byte(vlen)
	case vlen <= 0xff:
		t |= 1 << 3
	case vlen <= 0xffff:
		t |= 2 << 3
	default:
		t |= 3 << 3
	}
	dst = append(dst, t)
	if id > 255 {
		dst = binary.BigEndian.AppendUint16(dst, id)
	} else {
		dst = append(dst, byte(id))
	}
	switch {
	case vlen <= 7:
	case vlen <= 0xff:
		dst = append(dst, byte(vlen))
	case vlen <= 0xffff:
		dst = binary.BigEndian.AppendUint16(dst, uint16(vlen))
	default:
		dst = append(dst, byte(vlen>>16), byte(vlen>>8), byte(vlen))
	}
	return dst
}

func appendTLVElem(dst []byte, kind byte, id uint16, r Record) ([]byte, error) {
	vl := tlvValueSize(r.Value)
	if vl > maxTLVLength {
		return dst, &EncodeError{Format: FormatTLV, Path: r.Path.String(), Reason: "value is larger than 16 MiB - 1, the TLV limit"}
	}
	dst = appendTLVHeader(dst, kind, id, vl)
	return appendTLVValue(dst, r.Value), nil
}

// tlvValueSize returns the size of the TLV value field of v.
func tlvValueSize(v Value) int {
	switch v.t {
	case TypeInteger, TypeTime:
		i := int64(v.n)
		switch {
		case i == int64(int8(i)):
			return 1
		case i == int64(int16(i)):
			return 2
		case i == int64(int32(i)):
			return 4
		}
		return 8
	case TypeUnsigned:
		switch {
		case v.n <= 0xff:
			return 1
		case v.n <= 0xffff:
			return 2
		case v.n <= 0xffffffff:
			return 4
		}
		return 8
	case TypeFloat:
		// 4 bytes when they hold the very bits: a NaN's payload too,
		// which float32 may not keep.
		if math.Float64bits(float64(float32(math.Float64frombits(v.n)))) == v.n {
			return 4
		}
		return 8
	case TypeBoolean:
		return 1
	case TypeObjlnk:
		return 4
	}
	return len(v.s)
}

// appendTLVValue appends the TLV value field of v.
func appendTLVValue(dst []byte, v Value) []byte {
	switch v.t {
	case TypeInteger, TypeTime, TypeUnsigned:
		switch tlvValueSize(v) {
		case 1:
			return append(dst, byte(v.n))
		case 2:
			return binary.BigEndian.AppendUint16(dst, uint16(v.n))
		case 4:
			return binary.BigEndian.AppendUint32(dst, uint32(v.n))
		}
		return binary.BigEndian.AppendUint64(dst, v.n)
	case TypeFloat:
		f := math.Float64frombits(v.n)
		if tlvValueSize(v) == 4 {
			return binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(f)))
		}
		return binary.BigEndian.AppendUint64(dst, v.n)
	case TypeBoolean:
		return append(dst, byte(v.n))
	case TypeObjlnk:
		return binary.BigEndian.AppendUint32(dst, uint32(v.n))
	}
	return append(dst, v.s...)
}
