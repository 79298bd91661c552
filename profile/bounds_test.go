package profile_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

// modelDoc returns a model.json with n properties, each with one problem
// (an unknown data_type); one property per line, or all on one line.
func modelDoc(n int, oneLine bool) []byte {
	nl, ind := "\n", "        "
	if oneLine {
		nl, ind = "", ""
	}
	var b strings.Builder
	b.WriteString(`{"product_id":"p","manufacturer_name":"M","product_type":"T","protocol_type":"MQTT",` + nl +
		`  "service_capabilities":[{"service_id":"S","option":"Master","properties":[` + nl)
	for i := range n {
		if i > 0 {
			b.WriteString("," + nl)
		}
		fmt.Fprintf(&b, `%s{"property_name":"ü%d","data_type":"bogus","method":"R"}`, ind, i)
	}
	b.WriteString(nl + `]}]}` + nl)
	return []byte(b.String())
}

// TestProblemCap: 5,000 problems give the first MaxProblems, located, and
// the count of the rest (SEC-3).
func TestProblemCap(t *testing.T) {
	_, _, err := profile.LoadModelJSON(modelDoc(5000, false), nil)
	var ve *profile.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, profile.MaxProblems)
	require.Equal(t, 5000-profile.MaxProblems, ve.More)
	for i, p := range ve.Problems {
		require.Equal(t, profile.CodeDataType, p.Code)
		require.Equal(t, 3+i, p.Line, "problem %d", i)
	}
	require.Contains(t, err.Error(), "5000 problems")
	require.True(t, strings.HasSuffix(err.Error(), "… and 4900 more"), "the error ends with the count of the rest")
}

// TestProblemColumnsOneLine: in a one-line file the columns count
// characters (ü is one), found without rescanning the line per problem.
func TestProblemColumnsOneLine(t *testing.T) {
	doc := modelDoc(3, true)
	_, _, err := profile.LoadModelJSON(doc, nil)
	var ve *profile.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 3)
	for i, p := range ve.Problems {
		at := strings.Index(string(doc), fmt.Sprintf(`"ü%d","data_type":"bogus"`, i)) + len(fmt.Sprintf(`"ü%d",`, i))
		require.Equal(t, 1, p.Line)
		require.Equal(t, 1+len([]rune(string(doc[:at]))), p.Column, "problem %d: column in characters of the data_type key", i)
	}
}

// TestWarningCap: warnings are capped too, with one warning giving the
// count of the rest.
func TestWarningCap(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"product_id":"p","manufacturer_name":"M","product_type":"T","protocol_type":"MQTT",`)
	for i := range 300 {
		fmt.Fprintf(&b, `"x%d":1,`, i)
	}
	b.WriteString(`"service_capabilities":[{"service_id":"S","option":"Master","properties":[{"property_name":"a","data_type":"int","method":"R"}]}]}`)
	_, warns, err := profile.LoadModelJSON([]byte(b.String()), nil)
	require.NoError(t, err)
	require.Len(t, warns, profile.MaxProblems+1)
	last := warns[len(warns)-1]
	require.Equal(t, profile.CodeMoreWarnings, last.Code)
	require.Equal(t, "200 more warnings are not listed", last.Message)
}

// countingCtx turns Canceled on its cancelAt-th Err call and counts the
// calls; the loaders ask it every fixed amount of work, so the count
// measures work, not time.
type countingCtx struct {
	context.Context
	cancelAt int64 // 0: never
	calls    atomic.Int64
}

func (c *countingCtx) Err() error {
	if n := c.calls.Add(1); c.cancelAt > 0 && n >= c.cancelAt {
		return context.Canceled
	}
	return nil
}

func (c *countingCtx) Done() <-chan struct{}       { return nil }
func (c *countingCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// TestLoadStopsWhenCancelled: a loader stops at the first answer "done"
// from its context and does no more work (SEC-3: the client went away).
func TestLoadStopsWhenCancelled(t *testing.T) {
	doc := modelDoc(8000, false)
	full := &countingCtx{Context: context.Background()}
	_, _, err := profile.LoadModelJSONContext(full, doc, nil)
	require.ErrorIs(t, err, profile.ErrInvalid)
	require.GreaterOrEqual(t, full.calls.Load(), int64(30), "a full run asks the context often")
	for _, at := range []int64{1, 2, 5, full.calls.Load() - 1} {
		c := &countingCtx{Context: context.Background(), cancelAt: at}
		_, _, err := profile.LoadModelJSONContext(c, doc, nil)
		require.ErrorIs(t, err, context.Canceled, "cancelled at question %d", at)
		require.Contains(t, err.Error(), "profile: validation stopped")
		require.Equal(t, at, c.calls.Load(), "no work after the context said it was done (question %d)", at)
	}
	// The zip and directory loaders share the reader.
	z := zipFiles(t, "profile/devicetype-capability.json", `{"devices":[]}`)
	c := &countingCtx{Context: context.Background(), cancelAt: 1}
	_, _, err = profile.LoadZipContext(c, strings.NewReader(string(z)), int64(len(z)), "", nil)
	require.ErrorIs(t, err, context.Canceled)
}

// BenchmarkLoadProblems measures LoadModelJSON on files with 100 … 10,000
// problems, one per line or all on one line; ns/problem must stay flat.
func BenchmarkLoadProblems(b *testing.B) {
	for _, oneLine := range []bool{false, true} {
		for _, n := range []int{100, 1000, 10000} {
			doc := modelDoc(n, oneLine)
			b.Run(fmt.Sprintf("oneLine=%v/problems=%d", oneLine, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(doc)))
				for b.Loop() {
					if _, _, err := profile.LoadModelJSON(doc, nil); err == nil {
						b.Fatal("no problems")
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/problem")
			})
		}
	}
}
