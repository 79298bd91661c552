package ota

import (
	"fmt"
	"io"
	"sync"
)

// Phase is where a device-side download stands.
type Phase string

// Download phases kept by the device (SPEC OTA-7).
const (
	PhaseIdle        Phase = ""            // nothing to do
	PhaseDownloading Phase = "downloading" // requesting blocks from Next
	PhaseDownloaded  Phase = "downloaded"  // download result (22) sent, not yet answered
	PhaseReady       Phase = "ready"       // download acknowledged, waiting for execute (23)
	PhaseReporting   Phase = "reporting"   // upgrade result (24) sent, not yet answered
)

// DownloadState is what a device keeps across link drops and reboots to
// resume a download (SPEC OTA-7): which package (version and check code)
// and the next missing block.
type DownloadState struct {
	Phase      Phase
	Version    string // target version from the notify
	CheckCode  uint16 // package check code from the notify
	BlockSize  int
	Blocks     int
	Next       int    // next missing block
	Size       int64  // bytes, known once the last block is in
	Result     Result // download or upgrade result being reported
	NewVersion string // version reported in the upgrade result
}

// Progress keeps a device's DownloadState (flash on a real device).
type Progress interface {
	Load() (DownloadState, error)
	Save(DownloadState) error
}

// MemProgress is a Progress in memory.
type MemProgress struct {
	mu sync.Mutex
	s  DownloadState
}

// Load implements Progress.
func (m *MemProgress) Load() (DownloadState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s, nil
}

// Save implements Progress.
func (m *MemProgress) Save(s DownloadState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s = s
	return nil
}

// Storage is where a device writes the package; it reads it back to check
// it.
type Storage interface {
	io.WriterAt
	io.ReaderAt
}

// Downloader is the device side of PCP (SPEC OTA-6, OTA-7): it answers
// the platform's frames, requests blocks in order from the next missing
// one, writes them to Storage, checks the package, installs it and
// reports. It keeps its progress through Progress after every block, so a
// new Downloader over the same Progress resumes. The device simulator
// uses it. It is safe for concurrent use.
type Downloader struct {
	mu       sync.Mutex
	version  string
	progress Progress
	storage  Storage
	install  func(version string) Result
}

// NewDownloader returns a downloader for a device at version. install runs
// on execute (23) and returns the upgrade result; nil means it succeeds.
func NewDownloader(version string, p Progress, st Storage, install func(version string) Result) *Downloader {
	return &Downloader{version: version, progress: p, storage: st, install: install}
}

// Version returns the version the device runs.
func (d *Downloader) Version() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Handle takes a frame from the platform and returns the frames to send
// back, in order.
func (d *Downloader) Handle(frame []byte) ([][]byte, error) {
	m, err := DecodeMessage(frame, Downlink)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.progress.Load()
	if err != nil {
		return nil, fmt.Errorf("ota: load download progress: %w", err)
	}
	switch m := m.(type) {
	case QueryVersion:
		return [][]byte{Encode(QueryVersionAnswer{Result: ResultOK, Version: d.version})}, nil
	case Notify:
		if m.Version == d.version && st.Phase == PhaseIdle {
			return [][]byte{Encode(NotifyAnswer{ResultAlreadyLatest})}, nil
		}
		if m.BlockSize < MinBlockSize || m.BlockSize > MaxBlockSize || m.BlockCount == 0 {
			return [][]byte{Encode(NotifyAnswer{ResultUnsupportedPackage})}, nil
		}
		same := st.Phase != PhaseIdle && st.Version == m.Version && st.CheckCode == m.CheckCode &&
			st.BlockSize == int(m.BlockSize) && st.Blocks == int(m.BlockCount)
		if !same {
			// A new package, or the package changed: discard what
			// we have and start at block 0 (OTA-7, FAQ §10.11).
			st = DownloadState{Phase: PhaseDownloading, Version: m.Version, CheckCode: m.CheckCode,
				BlockSize: int(m.BlockSize), Blocks: int(m.BlockCount)}
			if err := d.progress.Save(st); err != nil {
				return nil, err
			}
		}
		return append([][]byte{Encode(NotifyAnswer{ResultOK})}, d.next(&st)...), nil
	case BlockAnswer:
		if st.Phase != PhaseDownloading {
			return nil, nil
		}
		if int(m.Block) != st.Next {
			return nil, nil // an old or repeated answer
		}
		if m.Result == ResultNoSuchTask || m.Result == ResultNoSuchBlock {
			// The platform no longer offers this package.
			return nil, d.progress.Save(DownloadState{})
		}
		if m.Result != ResultOK {
			return nil, nil // busy or failing: asked again on the next wake
		}
		want := st.BlockSize
		if st.Next == st.Blocks-1 {
			want = len(m.Data) // the last block may be short
		}
		if len(m.Data) != want || len(m.Data) == 0 || len(m.Data) > st.BlockSize {
			return nil, fmt.Errorf("%w: block %d has %d bytes, want %d", ErrBadFrame, m.Block, len(m.Data), want)
		}
		if _, err := d.storage.WriteAt(m.Data, int64(st.Next)*int64(st.BlockSize)); err != nil {
			return nil, fmt.Errorf("ota: write block %d: %w", st.Next, err)
		}
		st.Next++
		if st.Next == st.Blocks {
			st.Size = int64(st.Blocks-1)*int64(st.BlockSize) + int64(len(m.Data))
			st.Phase, st.Result = PhaseDownloaded, d.verify(&st)
		}
		if err := d.progress.Save(st); err != nil {
			return nil, err
		}
		return d.next(&st), nil
	case DownloadResultAnswer:
		if st.Phase == PhaseDownloaded {
			st.Phase = PhaseReady
			if st.Result != ResultOK {
				st = DownloadState{}
			}
			return nil, d.progress.Save(st)
		}
	case Execute:
		if st.Phase == PhaseDownloaded && st.Result == ResultOK {
			st.Phase = PhaseReady // the answer to 22 was lost; execute implies it
		}
		if st.Phase != PhaseReady && st.Phase != PhaseReporting {
			return [][]byte{Encode(ExecuteAnswer{ResultNoSuchTask})}, nil
		}
		out := [][]byte{Encode(ExecuteAnswer{ResultOK})}
		if st.Phase == PhaseReady {
			r := ResultOK
			if d.install != nil {
				r = d.install(st.Version)
			}
			if r == ResultOK {
				d.version = st.Version
			}
			st.Phase, st.Result, st.NewVersion = PhaseReporting, r, d.version
			if err := d.progress.Save(st); err != nil {
				return nil, err
			}
		}
		return append(out, d.next(&st)...), nil
	case UpgradeResultAnswer:
		if st.Phase == PhaseReporting {
			return nil, d.progress.Save(DownloadState{})
		}
	}
	return nil, nil
}

// Resume returns the frames to send when the link is back: the request of
// the next missing block, or the report the platform has not acknowledged.
func (d *Downloader) Resume() ([][]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.progress.Load()
	if err != nil {
		return nil, fmt.Errorf("ota: load download progress: %w", err)
	}
	return d.next(&st), nil
}

// next returns what the device sends in its current phase.
func (d *Downloader) next(st *DownloadState) [][]byte {
	switch st.Phase {
	case PhaseDownloading:
		return [][]byte{Encode(BlockRequest{Version: st.Version, Block: uint16(st.Next)})}
	case PhaseDownloaded:
		return [][]byte{Encode(DownloadResult{st.Result})}
	case PhaseReporting:
		return [][]byte{Encode(UpgradeResult{Result: st.Result, Version: st.NewVersion})}
	}
	return nil
}

// verify checks the stored package against the notify's check code.
func (d *Downloader) verify(st *DownloadState) Result {
	if st.CheckCode == 0 {
		return ResultOK
	}
	buf := make([]byte, st.BlockSize)
	var crc uint16
	for off := int64(0); off < st.Size; {
		n := int(min(int64(len(buf)), st.Size-off))
		if m, _ := d.storage.ReadAt(buf[:n], off); m < n {
			return ResultVerificationFailed
		}
		crc = CRC16(crc, buf[:n])
		off += int64(n)
	}
	if crc != st.CheckCode {
		return ResultVerificationFailed
	}
	return ResultOK
}

// MemStorage is a Storage in memory, for simulated devices.
type MemStorage struct {
	mu sync.Mutex
	b  []byte
}

// WriteAt implements io.WriterAt, growing the buffer as needed.
func (m *MemStorage) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

// ReadAt implements io.ReaderAt.
func (m *MemStorage) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Bytes returns a copy of the first n bytes stored.
func (m *MemStorage) Bytes(n int64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.b[:min(n, int64(len(m.b)))]...)
}
