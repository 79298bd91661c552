package command

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMemRecKeepsEveryField sets every field of a Command, found by
// reflection, to a distinct non-zero value and checks that MemStore's
// compact record gives it back (CMD-9: what is written is what is read).
// A field added to Command but not to memRec fails here.
func TestMemRecKeepsEveryField(t *testing.T) {
	base := time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)
	var c Command
	n := 0
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			n++
			switch {
			case f.Type() == reflect.TypeFor[time.Time]():
				f.Set(reflect.ValueOf(base.Add(time.Duration(n) * time.Second)))
			case f.Type() == reflect.TypeFor[json.RawMessage]():
				f.Set(reflect.ValueOf(json.RawMessage(fmt.Sprintf(`{"f":%d}`, n))))
			case f.Kind() == reflect.Struct:
				fill(f)
			case f.Kind() == reflect.String:
				f.SetString(fmt.Sprintf("s%d", n))
			case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
				f.SetInt(int64(n))
			case f.Kind() == reflect.Uint64 || f.Kind() == reflect.Uint8:
				f.SetUint(uint64(n))
			default:
				t.Fatalf("field %s of kind %v: teach this test and memRec about it", v.Type().Field(i).Name, f.Kind())
			}
		}
	}
	fill(reflect.ValueOf(&c).Elem())
	got := toMemRec(&c)
	back := got.command()
	cv, bv := reflect.ValueOf(c), reflect.ValueOf(back)
	var check func(a, b reflect.Value, path string)
	check = func(a, b reflect.Value, path string) {
		for i := range a.NumField() {
			name := path + a.Type().Field(i).Name
			fa, fb := a.Field(i), b.Field(i)
			switch {
			case fa.Type() == reflect.TypeFor[time.Time]():
				ta, tb := fa.Interface().(time.Time), fb.Interface().(time.Time)
				require.True(t, ta.Equal(tb), "%s: wrote %v, read %v", name, ta, tb)
			case fa.Kind() == reflect.Struct:
				check(fa, fb, name+".")
			default:
				require.Equal(t, fa.Interface(), fb.Interface(), name)
			}
		}
	}
	check(cv, bv, "")

	// The zero time stays zero; times far from 1970 keep their instant.
	var z Command
	zr := toMemRec(&z)
	require.True(t, zr.command().CreationTime.IsZero())
	require.Equal(t, time.Time{}, zr.command().NextTry)
	for _, tm := range []time.Time{
		time.Unix(0, 0), time.Unix(-1, 999999999), time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		require.True(t, toMemTime(tm).time().Equal(tm), "%v", tm)
		require.False(t, toMemTime(tm).time().IsZero(), "%v", tm)
	}
	require.Equal(t, -1, toMemTime(time.Unix(-1, 999999999)).compare(toMemTime(time.Unix(0, 0))))
	require.Equal(t, 1, toMemTime(base).compare(toMemTime(base.Add(-time.Nanosecond))))
	require.Equal(t, 0, toMemTime(base).compare(toMemTime(base.In(time.Local))))
	require.Equal(t, -1, toMemTime(base).compare(noDue))
}
