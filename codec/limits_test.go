package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// problemsDoc returns a codec JSON of n messages, each with exactly one
// problem (an unknown kind), one message per line.
func problemsDoc(n int) []byte {
	var b strings.Builder
	b.WriteString("{\n  \"name\": \"many\",\n  \"messages\": [\n")
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `    {"name": "m%d", "kind": "bogus", "fields": [{"name": "v", "type": "uint8"}]}`, i)
	}
	b.WriteString("\n  ]\n}\n")
	return []byte(b.String())
}

// TestCompileProblemCap: a codec with 5,000 problems lists the first
// MaxProblems, each located, and counts the rest (SEC-3).
func TestCompileProblemCap(t *testing.T) {
	_, err := Compile(problemsDoc(5000), nil)
	var ce *CompileError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, MaxProblems)
	require.Equal(t, 5000-MaxProblems, ce.More)
	for i, p := range ce.Problems {
		require.Equal(t, CodeBadKind, p.Code)
		require.Equal(t, fmt.Sprintf("m%d", i), p.Message)
		require.Equal(t, 4+i, p.Line, "problem %d: the message's opening brace", i)
		require.Equal(t, 5, p.Column)
	}
	require.Contains(t, err.Error(), "5000 problem(s)")
	require.True(t, strings.HasSuffix(err.Error(), "… and 4900 more"), "the error ends with the count of unlisted problems")
}

// TestCompileTooLarge: a codec over MaxSpecSize is refused unread.
func TestCompileTooLarge(t *testing.T) {
	doc := problemsDoc(16000)
	require.Greater(t, len(doc), MaxSpecSize)
	_, err := Compile(doc, nil)
	var ce *CompileError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{CodeTooLarge}, ce.Codes())
	require.Contains(t, err.Error(), fmt.Sprintf("the codec is %d bytes; at most 1048576 (1 MiB)", len(doc)))
}

// countingCtx is a context whose Err turns to Canceled on its cancelAt-th
// call and counts every call: the work between calls is fixed (checkEvery
// units), so the count measures work, not time.
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

// TestCompileStopsWhenCancelled: CompileContext asks its context every
// checkEvery units of work and stops at the first answer that it is done
// (SEC-3: the client went away). A full run asks many times; a run cancelled
// at the 3rd question asks no more after it.
func TestCompileStopsWhenCancelled(t *testing.T) {
	doc := problemsDoc(8000)
	full := &countingCtx{Context: context.Background()}
	_, err := CompileContext(full, doc, nil)
	require.ErrorIs(t, err, ErrInvalid)
	require.GreaterOrEqual(t, full.calls.Load(), int64(30), "a full run of 8,000 messages asks the context often")

	for _, at := range []int64{1, 3, full.calls.Load() - 1} {
		c := &countingCtx{Context: context.Background(), cancelAt: at}
		_, err = CompileContext(c, doc, nil)
		require.ErrorIs(t, err, context.Canceled, "cancelled at question %d", at)
		require.Contains(t, err.Error(), "codec: compile stopped")
		require.Equal(t, at, c.calls.Load(), "no work after the context said it was done (cancelled at question %d)", at)
	}
}

// BenchmarkCompileProblems measures Compile on codecs with 100 … 10,000
// problems (one per message and line; 10,000 make 0.8 MB); ns/problem must stay flat
// (linear work). locate=all runs the locating pass over every problem
// (no cap), which was the quadratic part.
func BenchmarkCompileProblems(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		doc := problemsDoc(n)
		b.Run(fmt.Sprintf("problems=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				_, err := Compile(doc, nil)
				if !errors.Is(err, ErrInvalid) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/problem")
		})
		b.Run(fmt.Sprintf("locate=all/problems=%d", n), func(b *testing.B) {
			var s Spec
			_, err := CompileContext(context.Background(), doc, nil) // warm
			require.ErrorIs(b, err, ErrInvalid)
			require.NoError(b, json.Unmarshal(doc, &s))
			c := &compiler{ctx: context.Background()}
			for i := range s.Messages {
				c.problems = append(c.problems, Problem{Code: CodeBadKind, Message: s.Messages[i].Name, Field: "v"})
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := locate(context.Background(), doc, &s, c.problems); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/problem")
		})
	}
}
