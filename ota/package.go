package ota

import (
	"github.com/doze-io/doze/ota/pcp"

	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Kind says how a package reaches a device.
type Kind string

// Package kinds (OTA-1).
const (
	// Software packages are upgraded over PCP in the data channel.
	Software Kind = "softwarePackage"
	// Firmware packages are upgraded over LwM2M object 5.
	Firmware Kind = "firmwarePackage"
)

// DefaultBlockSize is the PCP block size of a package that sets none; the
// limits are pcp.MinBlockSize and pcp.MaxBlockSize (OTA-6).
const DefaultBlockSize = 500

// Package is an uploaded upgrade package (OTA-1). Its content lives in
// Files under ID; the package itself holds only metadata.
type Package struct {
	ID             string
	Kind           Kind
	Version        string
	DeviceType     string
	Manufacturer   string // manufacturer name
	Model          string
	Protocol       string   // device protocol, e.g. "CoAP" or "LWM2M"
	SourceVersions []string // versions it may upgrade from; empty means any
	Description    string
	BlockSize      int      // PCP block size, 32..500; 0 means 500
	Size           int64    // bytes, set by Engine.AddPackage
	Digest         [32]byte // SHA-256 of the content, set by Engine.AddPackage
	CheckCode      uint16   // PCP CRC16 of the content, sent in Notify
	Created        time.Time
}

// Validate checks the fields a user provides.
func (p *Package) Validate() error {
	if p.ID == "" {
		return fieldErr("fileId", "empty; a package needs an id")
	}
	if p.Kind != Software && p.Kind != Firmware {
		return fieldErr("fileType", "%q, allowed %q or %q", p.Kind, Software, Firmware)
	}
	if err := pcp.ValidateVersion(p.Version); err != nil {
		return &FieldError{Field: "version", Message: err.Error(), Err: ErrInvalid}
	}
	for i, v := range p.SourceVersions {
		if err := pcp.ValidateVersion(v); err != nil {
			return &FieldError{Field: fmt.Sprintf("sourceVersions[%d]", i), Message: err.Error(), Err: ErrInvalid}
		}
	}
	if p.BlockSize != 0 && (p.BlockSize < pcp.MinBlockSize || p.BlockSize > pcp.MaxBlockSize) {
		return fieldErr("blockSize", "%d, allowed %d..%d", p.BlockSize, pcp.MinBlockSize, pcp.MaxBlockSize)
	}
	if p.Size < 0 {
		return fieldErr("size", "%d, must not be negative", p.Size)
	}
	if p.Kind == Software && p.Size > 0 && p.blockCount(p.blockSize()) > math.MaxUint16 {
		return fieldErr("size", "%d bytes need more than 65535 blocks of %d bytes; use a larger block size", p.Size, p.blockSize())
	}
	return nil
}

func (p *Package) blockSize() int {
	if p.BlockSize == 0 {
		return DefaultBlockSize
	}
	return p.BlockSize
}

func (p *Package) blockCount(size int) int { return int((p.Size + int64(size) - 1) / int64(size)) }

// Blocks returns the number of PCP blocks.
func (p *Package) Blocks() int { return p.blockCount(p.blockSize()) }

// DigestHex returns the SHA-256 digest in lower-case hex.
func (p *Package) DigestHex() string { return hex.EncodeToString(p.Digest[:]) }

// Accepts reports whether a device at version from may take this package:
// from is in SourceVersions, or the list is empty (OTA-1).
func (p *Package) Accepts(from string) bool {
	return len(p.SourceVersions) == 0 || slices.Contains(p.SourceVersions, from)
}

// Summarize reads the whole of r once, in 32 KiB pieces, and returns its
// size, SHA-256 and PCP CRC16. Content is never held whole in memory.
func Summarize(r io.ReaderAt, size int64) (digest [32]byte, crc uint16, err error) {
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for off := int64(0); off < size; {
		n := int(min(int64(len(buf)), size-off))
		if _, err := r.ReadAt(buf[:n], off); err != nil && !(err == io.EOF && n > 0) {
			return digest, 0, fmt.Errorf("ota: read package at offset %d: %w", off, err)
		}
		h.Write(buf[:n])
		crc = pcp.CRC16(crc, buf[:n])
		off += int64(n)
	}
	copy(digest[:], h.Sum(nil))
	return digest, crc, nil
}

// Content is a package with its bytes: it serves PCP blocks and CoAP Block2
// blocks straight from the io.ReaderAt. It is safe for concurrent use when
// R is (an *os.File is).
type Content struct {
	Package
	R io.ReaderAt
}

// ReadBlock reads PCP block n (from 0) into dst[:0] and returns it. The
// last block may be short.
func (c *Content) ReadBlock(dst []byte, n int) ([]byte, error) {
	return c.readBlock(dst, n, c.blockSize())
}

func (c *Content) readBlock(dst []byte, n, size int) ([]byte, error) {
	off := int64(n) * int64(size)
	if n < 0 || off >= c.Size {
		return nil, fmt.Errorf("%w: block %d of %d-byte blocks, package %s has %d", ErrNoBlock, n, size, c.ID, c.blockCount(size))
	}
	l := int(min(int64(size), c.Size-off))
	dst = slices.Grow(dst[:0], l)[:l]
	if m, err := c.R.ReadAt(dst, off); m < l {
		return nil, fmt.Errorf("ota: package %s: read block %d: %w", c.ID, n, err)
	}
	return dst, nil
}

// Block2 serves block num of the package as CoAP Block2 (RFC 7959) with
// size exponent szx (0..6, block size 16<<szx): the data, whether more
// blocks follow, the ETag (the SHA-256 digest; OTA-7) and Size2 (the
// package size). The lwm2m server mounts it through an adapter.
func (c *Content) Block2(num uint32, szx int) (data []byte, more bool, etag []byte, size2 int64, err error) {
	if szx < 0 || szx > 6 {
		return nil, false, nil, 0, fmt.Errorf("%w: Block2 SZX %d, allowed 0..6", ErrInvalid, szx)
	}
	size := 16 << szx
	data, err = c.readBlock(nil, int(num), size)
	if err != nil {
		return nil, false, nil, 0, err
	}
	more = int64(num+1)*int64(size) < c.Size
	return data, more, c.Digest[:], c.Size, nil
}
