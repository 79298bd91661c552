package lwm2m

// DecodeOpaque decodes an opaque payload (content format 42, LwM2M 1.1 Core
// §7.3.2): the bytes of one Opaque resource or resource instance at base,
// such as a firmware package block for /5/0/0 or application data on
// /19/0/0. A resource that reg defines with another type is an error.
func DecodeOpaque(base Path, b []byte, reg *Objects) ([]Record, error) {
	if base.n < 3 {
		return nil, &DecodeError{Format: FormatOpaque, Path: base.String(),
			Reason: "opaque content carries one resource value; the path must name a resource or resource instance"}
	}
	if t, ok := reg.typeAt(base); ok && t != TypeOpaque {
		return nil, &DecodeError{Format: FormatOpaque, Path: base.String(),
			Reason: "the resource is " + t.String() + "; opaque content carries only Opaque resources"}
	}
	return []Record{{Path: base, Value: OpaqueValue(b)}}, nil
}

// AppendOpaque appends the bytes of the one record in recs, which must be
// at base and hold an Opaque value (or a Raw value from an opaque payload).
func AppendOpaque(dst []byte, base Path, recs []Record) ([]byte, error) {
	rec, err := singleRecord(FormatOpaque, base, recs)
	if err != nil {
		return dst, err
	}
	if rec.Value.t != TypeOpaque && !(rec.Value.t == TypeRaw && rec.Value.src == FormatOpaque) {
		return dst, &EncodeError{Format: FormatOpaque, Path: base.String(),
			Reason: "value is " + rec.Value.t.String() + "; opaque content carries only Opaque values"}
	}
	return append(dst, rec.Value.s...), nil
}
