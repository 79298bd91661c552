package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// node is a JSON value with the byte offset where it starts, so that
// validation can point at line:column. The loaders read Profile files into
// nodes first and then into the model, which is how every problem gets a
// place.
type node struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	off  int  // offset of the value's first byte
	str  string
	b    bool
	// objects: keys in file order, their offsets and values
	keys    []string
	keyOffs []int
	vals    []*node
	// arrays
	items []*node
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

// errDepth reports nesting deeper than maxDepth.
var errDepth = errors.New("nesting deeper than 64 levels")

// errStopped reports a parse ended because stop said so.
var errStopped = errors.New("stopped")

// parseTree reads one JSON value from data. A syntax error comes back as
// *json.SyntaxError (whose Offset locates it) or an *offsetError (depth,
// trailing data, early end). stop is asked before each value; when it says
// true the parse ends with errStopped.
func parseTree(data []byte, stop func() bool) (*node, error) {
	t := treeReader{data: data, dec: json.NewDecoder(bytes.NewReader(data)), stop: stop}
	t.dec.UseNumber()
	n, err := t.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := t.dec.Token(); err != io.EOF {
		off := t.start()
		return nil, &offsetError{off: off, err: errors.New("unexpected data after the top-level value")}
	}
	return n, nil
}

type treeReader struct {
	data []byte
	dec  *json.Decoder
	stop func() bool
}

// start returns the offset of the next token: the decoder's input offset
// points just past the previous token, before any separators.
func (t *treeReader) start() int {
	off := int(t.dec.InputOffset())
	for off < len(t.data) {
		switch t.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

type offsetError struct {
	off int
	err error
}

func (e *offsetError) Error() string { return e.err.Error() }
func (e *offsetError) Unwrap() error { return e.err }

func (t *treeReader) value(depth int) (*node, error) {
	if t.stop != nil && t.stop() {
		return nil, errStopped
	}
	off := t.start()
	tok, err := t.dec.Token()
	if err == io.EOF {
		return nil, &offsetError{off: len(t.data), err: errors.New("unexpected end of JSON input")}
	}
	if err != nil {
		return nil, err
	}
	n := &node{off: off}
	switch v := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, &offsetError{off: off, err: errDepth}
		}
		switch v {
		case '{':
			n.kind = 'o'
			for t.dec.More() {
				koff := t.start()
				kt, err := t.dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, &offsetError{off: koff, err: errors.New("object key is not a string")}
				}
				val, err := t.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k)
				n.keyOffs = append(n.keyOffs, koff)
				n.vals = append(n.vals, val)
			}
		case '[':
			n.kind = 'a'
			for t.dec.More() {
				val, err := t.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, val)
			}
		default:
			return nil, &offsetError{off: off, err: fmt.Errorf("unexpected %q", rune(v))}
		}
		if _, err := t.dec.Token(); err != nil { // closing delimiter
			return nil, err
		}
	case string:
		n.kind, n.str = 's', v
	case json.Number:
		n.kind, n.str = 'n', string(v)
	case bool:
		n.kind, n.b = 'b', v
	case nil:
		n.kind = 'z'
	}
	return n, nil
}

// get returns the value of key k and the key's offset. The last of
// repeated keys wins, as in encoding/json.
func (n *node) get(k string) (*node, int, bool) {
	if n == nil || n.kind != 'o' {
		return nil, 0, false
	}
	for i := len(n.keys) - 1; i >= 0; i-- {
		if n.keys[i] == k {
			return n.vals[i], n.keyOffs[i], true
		}
	}
	return nil, 0, false
}

// kindName describes a node kind for messages.
func kindName(k byte) string {
	switch k {
	case 'o':
		return "an object"
	case 'a':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "a boolean"
	case 'z':
		return "null"
	}
	return "nothing"
}

// raw returns the JSON text of n, re-encoded compactly.
func (n *node) raw() string {
	var b bytes.Buffer
	n.write(&b)
	return b.String()
}

func (n *node) write(b *bytes.Buffer) {
	switch n.kind {
	case 'o':
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			n.vals[i].write(b)
		}
		b.WriteByte('}')
	case 'a':
		b.WriteByte('[')
		for i, it := range n.items {
			if i > 0 {
				b.WriteByte(',')
			}
			it.write(b)
		}
		b.WriteByte(']')
	case 's':
		sb, _ := json.Marshal(n.str)
		b.Write(sb)
	case 'n':
		b.WriteString(n.str)
	case 'b':
		if n.b {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	default:
		b.WriteString("null")
	}
}

// lines indexes a document once so that turning an offset into line and
// column is a binary search and a count over at most charStep bytes, not a
// scan of the document: validation stays linear however many problems it
// finds, also in a one-line (minified) file.
type lines struct {
	data   []byte
	starts []int // offset of each line's first byte; starts[0] is 0
	chars  []int // chars[i]: characters in data[:i*charStep]
}

const charStep = 256

func newLines(data []byte) *lines {
	l := &lines{data: data, starts: []int{0}, chars: make([]int, 0, len(data)/charStep+1)}
	n := 0
	for i, c := range data {
		if i%charStep == 0 {
			l.chars = append(l.chars, n)
		}
		if c == '\n' {
			l.starts = append(l.starts, i+1)
		}
		if c&0xC0 != 0x80 { // not a UTF-8 continuation byte: a character starts
			n++
		}
	}
	return l
}

// charsBefore counts the characters in data[:off].
func (l *lines) charsBefore(off int) int {
	k := off / charStep
	if k >= len(l.chars) {
		k = len(l.chars) - 1
	}
	if k < 0 {
		return 0
	}
	n := l.chars[k]
	for _, c := range l.data[k*charStep : off] {
		if c&0xC0 != 0x80 {
			n++
		}
	}
	return n
}

// lineCol turns a byte offset into a 1-based line and a 1-based column
// counted in characters.
func (l *lines) lineCol(off int) (line, col int) {
	off = max(0, min(off, len(l.data)))
	i, _ := slices.BinarySearch(l.starts, off+1) // first start past off
	return i, 1 + l.charsBefore(off) - l.charsBefore(l.starts[i-1])
}
