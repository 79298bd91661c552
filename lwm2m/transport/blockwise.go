package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// File is a file devices download from the server with GET and Block2
// (RFC 7959), such as a firmware package named in object 5's Package URI.
type File struct {
	Data io.ReaderAt
	Size int64
	ETag []byte // changes when the content changes; 1–8 bytes, nil for none
}

// FileSource gives the files under FilesPath ("/fw/<name>"). Open returns
// ErrNotFound (possibly wrapped) for an unknown name or a device that may
// not have it.
type FileSource interface {
	Open(endpoint, name string) (File, error)
}

// blockOpt is a decoded Block1/Block2 option value.
type blockOpt struct {
	num  uint32
	more bool
	szx  uint8 // block size is 1 << (szx+4), 16…1024
}

func (b blockOpt) size() int { return 1 << (b.szx + 4) }

func (b blockOpt) value() uint32 {
	v := b.num<<4 | uint32(b.szx)
	if b.more {
		v |= 8
	}
	return v
}

func parseBlock(v uint32) (blockOpt, error) {
	b := blockOpt{num: v >> 4, more: v&8 != 0, szx: uint8(v & 7)}
	if b.szx == 7 {
		return b, errors.New("block size exponent 7 is reserved (BERT is TCP-only); want 0–6 (16–1024 bytes)")
	}
	return b, nil
}

// serveFile answers GET <FilesPath>/<name> with one block of the file. A
// plain CoAP peer without a registration downloads by name (see
// download.go): Files.Open gets the endpoint "".
func (s *Server) serveFile(sess *session, m *message.Message, name string) *message.Message {
	sess.mu.Lock()
	ep := sess.endpoint
	sess.mu.Unlock()
	if ep == "" && sess.secure {
		ep = sess.identity
	}
	now := time.Now()
	var src string
	var ip netip.Addr
	if ep == "" { // a stranger: the name is the credential
		src, ip = addrString(sess.remoteAddr()), sourceIP(sess.remoteAddr())
		if ok, wait := s.dl.mayLookUp(ip, now); !ok {
			s.floods.note("download-slowed", "lwm2m: download refused: too many names that do not exist from this address", "addr", src)
			r := errResp(codes.TooManyRequests, "download: too many requests for files that do not exist")
			addUint(r, message.MaxAge, uint32(wait/time.Second)+1)
			return r
		}
		if !s.dl.admit(src, now) {
			r := errResp(codes.ServiceUnavailable, "download: %d unregistered downloads are running; register first or retry later", maxDownloaders)
			addUint(r, message.MaxAge, 30)
			return r
		}
	}
	f, err := s.cfg.Files.Open(ep, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			if ep == "" {
				s.dl.failed(ip, now)
				s.dl.served(src, now, true)
			}
			return errResp(codes.NotFound, "download: no file %q", name)
		}
		s.log.Warn("lwm2m: opening file", "endpoint", ep, "name", name, "err", err)
		return errResp(codes.InternalServerError, "download: cannot open %q", name)
	}
	blk := blockOpt{szx: 5} // 512 bytes unless the device asks for another size
	if v, ok := optUint(m, message.Block2); ok {
		if blk, err = parseBlock(v); err != nil {
			return errResp(codes.BadOption, "download: Block2: %v", err)
		}
	}
	off := int64(blk.num) * int64(blk.size())
	if off >= f.Size && !(off == 0 && f.Size == 0) {
		return errResp(codes.BadOption, "download: block %d of %d bytes starts past the end (%d bytes)", blk.num, blk.size(), f.Size)
	}
	n := min(int64(blk.size()), f.Size-off)
	if ep == "" {
		// the bytes a stranger may draw are budgeted (download.go, SEC-2)
		if ok, wait := s.dl.spend(sourcePrefix(sess.remoteAddr()), int(n), now); !ok {
			s.floods.note("download-bytes", "lwm2m: download block refused: StrangerDownloadRate or StrangerDownloadRatePerIP reached", "addr", src)
			r := errResp(codes.TooManyRequests, "download: too many bytes to this address; retry later")
			addUint(r, message.MaxAge, uint32(wait/time.Second)+1)
			return r
		}
	}
	buf := make([]byte, n)
	if _, err := f.Data.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		s.log.Warn("lwm2m: reading file", "name", name, "offset", off, "err", err)
		return errResp(codes.InternalServerError, "download: cannot read %q", name)
	}
	blk.more = off+n < f.Size
	if src != "" {
		s.dl.served(src, now, !blk.more)
	}
	resp := &message.Message{Code: codes.Content, Payload: buf}
	if len(f.ETag) > 0 {
		resp.Options = resp.Options.Add(message.Option{ID: message.ETag, Value: f.ETag})
	}
	setContentFormat(resp, cfOpaque)
	addUint(resp, message.Block2, blk.value())
	if blk.num == 0 {
		addUint(resp, message.Size2, uint32(f.Size))
	}
	return resp
}

// Download fetches a file the server offers (a path such as "/fw/v2.bin")
// block by block with Block2 (RFC 7959), blocks of blockSize bytes (16 to
// 1024, a power of two; 0 means 512). It fails if the ETag changes
// midway.
func (c *Client) Download(ctx context.Context, path string, blockSize int) ([]byte, error) {
	if blockSize == 0 {
		blockSize = 512
	}
	szx := -1
	for i := 0; i <= 6; i++ {
		if 1<<(i+4) == blockSize {
			szx = i
		}
	}
	if szx < 0 {
		return nil, fmt.Errorf("lwm2m: client download: block size %d: want a power of two from 16 to 1024", blockSize)
	}
	var out bytes.Buffer
	var etag []byte
	for num := uint32(0); ; num++ {
		m := newRequest(codes.GET, path)
		addUint(m, message.Block2, blockOpt{num: num, szx: uint8(szx)}.value())
		resp, err := c.do(ctx, "download", m)
		if err != nil {
			return nil, err
		}
		var tag []byte
		for _, o := range resp.Options {
			if o.ID == message.ETag {
				tag = o.Value
			}
		}
		if num == 0 {
			etag = tag
		} else if !bytes.Equal(tag, etag) {
			return nil, fmt.Errorf("lwm2m: client download %s: ETag changed at block %d (%x → %x): the file changed", path, num, etag, tag)
		}
		out.Write(resp.Payload)
		v, ok := optUint(resp, message.Block2)
		if !ok {
			return out.Bytes(), nil // the server sent it whole
		}
		b, err := parseBlock(v)
		if err != nil {
			return nil, fmt.Errorf("lwm2m: client download %s: %w", path, err)
		}
		if !b.more {
			return out.Bytes(), nil
		}
	}
}

func isFilePath(prefix, path string) (string, bool) {
	if prefix == "" || !strings.HasPrefix(path, prefix+"/") {
		return "", false
	}
	name := path[len(prefix)+1:]
	return name, name != ""
}
