package lwm2m

import (
	"math"
	"math/big"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// senmlCBORRec is a SenML CBOR record (RFC 8428 §6): integer labels for
// the registered fields, the text label "vlo" for LwM2M object links.
type senmlCBORRec struct {
	Bn  *string  `cbor:"-2,keyasint,omitempty"`
	Bt  *float64 `cbor:"-3,keyasint,omitempty"`
	N   *string  `cbor:"0,keyasint,omitempty"`
	V   any      `cbor:"2,keyasint,omitempty"`
	Vs  *string  `cbor:"3,keyasint,omitempty"`
	Vb  *bool    `cbor:"4,keyasint,omitempty"`
	T   *float64 `cbor:"6,keyasint,omitempty"`
	Vd  *[]byte  `cbor:"8,keyasint,omitempty"`
	Vlo *string  `cbor:"vlo,omitempty"`
}

// maxSenMLRecords bounds the records of one SenML CBOR payload.
const maxSenMLRecords = 1 << 16

var (
	senmlDecMode = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			DupMapKey:       cbor.DupMapKeyEnforcedAPF, // a record with two "v" is an error
			MaxNestedLevels: 4,
			MaxMapPairs:     32,
			IndefLength:     cbor.IndefLengthAllowed,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return dm
	}()
	senmlEncMode = func() cbor.EncMode {
		em, err := cbor.EncOptions{ShortestFloat: cbor.ShortestFloat16, NaNConvert: cbor.NaNConvert7e00, InfConvert: cbor.InfConvertFloat16}.EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
)

// DecodeSenMLCBOR decodes a SenML CBOR payload (content format 112) read
// from base, with the same rules as DecodeSenMLJSON. Each record is checked
// to be well formed before anything is allocated for it, and the record
// count of the array head only bounds the loop, so a length field larger
// than the payload fails fast. Errors are *DecodeError naming the path and
// the byte offset of the record.
func DecodeSenMLCBOR(base Path, b []byte, reg *Objects) ([]Record, error) {
	fail := func(off int, reason string, err error) error {
		return &DecodeError{Format: FormatSenMLCBOR, Path: base.String(), Offset: off, Reason: reason, Err: err}
	}
	count, off, reason := cborArrayHead(b)
	if reason != "" {
		return nil, fail(0, reason, nil)
	}
	indefinite := count < 0
	// A useful record takes at least 6 bytes ({0: "/1/0/0", ...} takes more).
	recs := make([]senmlRec, 0, min(max(count, 0), len(b)/6))
	for i := 0; indefinite || i < count; i++ {
		if indefinite && off < len(b) && b[off] == 0xff {
			off++
			break
		}
		if off == len(b) {
			return nil, fail(off, "SenML array ends after "+strconv.Itoa(i)+" records", nil)
		}
		var cr senmlCBORRec
		rest, err := senmlDecMode.UnmarshalFirst(b[off:], &cr)
		if err != nil {
			return nil, fail(off, "SenML record is not a well-formed CBOR map of SenML fields", err)
		}
		r := senmlRec{off: off, bn: cr.Bn, n: cr.N, bt: cr.Bt, t: cr.T, vs: cr.Vs, vb: cr.Vb, vlo: cr.Vlo}
		if cr.Vd != nil {
			r.vd, r.hasVd = *cr.Vd, true
		}
		switch v := cr.V.(type) {
		case nil:
		case int64:
			r.v = senmlNum{kind: 'i', i: v}
		case uint64:
			if v <= math.MaxInt64 {
				r.v = senmlNum{kind: 'i', i: int64(v)}
			} else {
				r.v = senmlNum{kind: 'u', u: v}
			}
		case float64:
			r.v = senmlNum{kind: 'f', f: cborFloat(v)}
		case float32:
			r.v = senmlNum{kind: 'f', f: cborFloat(float64(v))}
		case big.Int:
			return nil, fail(off, "v is a bignum; want an integer in 64 bits or a float", nil)
		default:
			return nil, fail(off, "v is not a number", nil)
		}
		recs = append(recs, r)
		off = len(b) - len(rest)
	}
	if off != len(b) {
		return nil, fail(off, "data after the SenML array", nil)
	}
	return senmlDecode(FormatSenMLCBOR, base, recs, reg)
}

// cborArrayHead reads the head of the CBOR array at the start of b. It
// returns the element count (-1 for an indefinite-length array) and the
// length of the head, or a reason when b does not start with an array.
func cborArrayHead(b []byte) (count, n int, reason string) {
	if len(b) == 0 || b[0]>>5 != 4 {
		return 0, 0, "want a CBOR array of SenML records"
	}
	ai := int(b[0] & 0x1f)
	size := 0
	switch {
	case ai < 24:
		return ai, 1, ""
	case ai == 31:
		return -1, 1, ""
	case ai == 24:
		size = 1
	case ai == 25:
		size = 2
	case ai == 26:
		size = 4
	case ai == 27:
		size = 8
	default:
		return 0, 0, "malformed CBOR array head"
	}
	if len(b) < 1+size {
		return 0, 0, "CBOR array head needs " + strconv.Itoa(1+size) + " bytes, " + strconv.Itoa(len(b)) + " left"
	}
	var c uint64
	for _, x := range b[1 : 1+size] {
		c = c<<8 | uint64(x)
	}
	if c > maxSenMLRecords {
		return 0, 0, "array announces " + strconv.FormatUint(c, 10) + " records; at most " + strconv.Itoa(maxSenMLRecords) + " are accepted"
	}
	return int(c), 1 + size, ""
}

// cborNaN is the NaN AppendSenMLCBOR writes (0xf97e00, RFC 8949 §4.2.2)
// read back as a float64.
const cborNaN = 0x7FF8000000000000

// cborFloat returns f, any NaN as cborNaN: a NaN's payload means nothing
// in SenML, and AppendSenMLCBOR does not keep it.
func cborFloat(f float64) float64 {
	if math.IsNaN(f) {
		return math.Float64frombits(cborNaN)
	}
	return f
}

// AppendSenMLCBOR appends the SenML CBOR encoding (content format 112) of
// recs under base to dst, with the same layout as AppendSenMLJSON. Numbers
// are CBOR integers for Integer, Unsigned and Time, and the shortest float
// that keeps the value for Float; every NaN is written as 0xf97e00, the
// NaN DecodeSenMLCBOR reads any NaN as.
func AppendSenMLCBOR(dst []byte, base Path, recs []Record) ([]byte, error) {
	if err := senmlEncodeCheck(FormatSenMLCBOR, base, recs); err != nil {
		return dst, err
	}
	bn := senmlBase(base)
	out := make([]senmlCBORRec, len(recs))
	// Backing arrays for the fields the records point at: a few
	// allocations for the payload instead of several per record.
	strs := make([]string, 2*len(recs))
	bools := make([]bool, len(recs))
	times := make([]float64, len(recs))
	datas := make([][]byte, len(recs))
	// All names in one string: /3/0/6/1 with bn /3/0/ gives "6/1".
	var nameBuf []byte
	ends := make([]int, len(recs))
	for i, rec := range recs {
		start := len(nameBuf)
		nameBuf = rec.Path.appendText(nameBuf)
		nameBuf = append(nameBuf[:start], nameBuf[start+len(bn):]...)
		ends[i] = len(nameBuf)
	}
	names := string(nameBuf)
	for i, rec := range recs {
		cr := &out[i]
		if i == 0 && bn != "" {
			cr.Bn = &bn
		}
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		strs[2*i] = names[start:ends[i]]
		cr.N = &strs[2*i]
		if !rec.Time.IsZero() {
			times[i] = float64(rec.Time.UnixNano()) / 1e9
			if rec.Time.Nanosecond() == 0 {
				times[i] = float64(rec.Time.Unix())
			}
			cr.T = &times[i]
		}
		v := rec.Value
		switch v.t {
		case TypeInteger, TypeTime:
			cr.V = int64(v.n)
		case TypeUnsigned:
			cr.V = v.n
		case TypeFloat:
			cr.V = math.Float64frombits(v.n)
		case TypeString, TypeCorelnk:
			strs[2*i+1] = v.s
			cr.Vs = &strs[2*i+1]
		case TypeBoolean:
			bools[i] = v.n != 0
			cr.Vb = &bools[i]
		case TypeOpaque:
			datas[i] = []byte(v.s)
			cr.Vd = &datas[i]
		case TypeObjlnk:
			strs[2*i+1] = v.String()
			cr.Vlo = &strs[2*i+1]
		}
	}
	enc, err := senmlEncMode.Marshal(out)
	if err != nil {
		return dst, &EncodeError{Format: FormatSenMLCBOR, Reason: err.Error()}
	}
	return append(dst, enc...), nil
}
