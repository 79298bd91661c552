// Package download is the device side of a PCP software upgrade
// (OTA-6, OTA-7): a [Downloader] answers the platform's frames, requests
// blocks in order from the next missing one, writes them to [Storage],
// checks the package against the notify's check code, installs it and
// reports. It keeps its [State] through [Progress] after every block, so a
// new Downloader over the same Progress resumes where the last one stopped
// ([Downloader.Resume]), and it starts again at block 0 when the notify
// carries another version or check code. The device simulator and the
// upgrade engine's tests use it. It imports nothing of Doze but the PCP
// wire format.
package download

import (
	"fmt"
	"io"
	"sync"

	"github.com/doze-io/doze/ota/pcp"
)

// Phase is where a device-side download stands.
type Phase string

// Download phases kept by the device (OTA-7).
const (
	PhaseIdle        Phase = ""            // nothing to do
	PhaseDownloading Phase = "downloading" // requesting blocks from Next
	PhaseDownloaded  Phase = "downloaded"  // download result (22) sent, not yet answered
	PhaseReady       Phase = "ready"       // download acknowledged, waiting for execute (23)
	PhaseReporting   Phase = "reporting"   // upgrade result (24) sent, not yet answered
)

// State is what a device keeps across link drops and reboots to
// resume a download (OTA-7): which package (version and check code)
// and the next missing block.
type State struct {
	Phase      Phase
	Version    string // target version from the notify
	CheckCode  uint16 // package check code from the notify
	BlockSize  int
	Blocks     int
	Next       int        // next missing block
	Size       int64      // bytes, known once the last block is in
	Result     pcp.Result // download or upgrade result being reported
	NewVersion string     // version reported in the upgrade result
}

// Progress keeps a device's State (flash on a real device).
type Progress interface {
	Load() (State, error)
	Save(State) error
}

// MemProgress is a Progress in memory.
type MemProgress struct {
	mu sync.Mutex
	s  State
}

// Load implements Progress.
func (m *MemProgress) Load() (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s, nil
}

// Save implements Progress.
func (m *MemProgress) Save(s State) error {
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

// Downloader is the device side of PCP (OTA-6, OTA-7): it answers
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
	install  func(version string) pcp.Result
}

// New returns a downloader for a device at version. install runs on
// execute (23) and returns the upgrade result; nil means it succeeds.
func New(version string, p Progress, st Storage, install func(version string) pcp.Result) *Downloader {
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
	m, err := pcp.DecodeMessage(frame, pcp.Downlink)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.progress.Load()
	if err != nil {
		return nil, fmt.Errorf("download: load progress: %w", err)
	}
	switch m := m.(type) {
	case pcp.QueryVersion:
		return [][]byte{pcp.Encode(pcp.QueryVersionAnswer{Result: pcp.ResultOK, Version: d.version})}, nil
	case pcp.Notify:
		if m.Version == d.version && st.Phase == PhaseIdle {
			return [][]byte{pcp.Encode(pcp.NotifyAnswer{Result: pcp.ResultAlreadyLatest})}, nil
		}
		if m.BlockSize < pcp.MinBlockSize || m.BlockSize > pcp.MaxBlockSize || m.BlockCount == 0 {
			return [][]byte{pcp.Encode(pcp.NotifyAnswer{Result: pcp.ResultUnsupportedPackage})}, nil
		}
		same := st.Phase != PhaseIdle && st.Version == m.Version && st.CheckCode == m.CheckCode &&
			st.BlockSize == int(m.BlockSize) && st.Blocks == int(m.BlockCount)
		if !same {
			// A new package, or the package changed: discard what
			// we have and start at block 0 (OTA-7, FAQ §10.11).
			st = State{Phase: PhaseDownloading, Version: m.Version, CheckCode: m.CheckCode,
				BlockSize: int(m.BlockSize), Blocks: int(m.BlockCount)}
			if err := d.progress.Save(st); err != nil {
				return nil, err
			}
		}
		return append([][]byte{pcp.Encode(pcp.NotifyAnswer{Result: pcp.ResultOK})}, d.next(&st)...), nil
	case pcp.BlockAnswer:
		if st.Phase != PhaseDownloading {
			return nil, nil
		}
		if int(m.Block) != st.Next {
			return nil, nil // an old or repeated answer
		}
		if m.Result == pcp.ResultNoSuchTask || m.Result == pcp.ResultNoSuchBlock {
			// The platform no longer offers this package.
			return nil, d.progress.Save(State{})
		}
		if m.Result != pcp.ResultOK {
			return nil, nil // busy or failing: asked again on the next wake
		}
		want := st.BlockSize
		if st.Next == st.Blocks-1 {
			want = len(m.Data) // the last block may be short
		}
		if len(m.Data) != want || len(m.Data) == 0 || len(m.Data) > st.BlockSize {
			return nil, fmt.Errorf("%w: block %d has %d bytes, want %d", pcp.ErrBadFrame, m.Block, len(m.Data), want)
		}
		if _, err := d.storage.WriteAt(m.Data, int64(st.Next)*int64(st.BlockSize)); err != nil {
			return nil, fmt.Errorf("download: write block %d: %w", st.Next, err)
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
	case pcp.DownloadResultAnswer:
		if st.Phase == PhaseDownloaded {
			st.Phase = PhaseReady
			if st.Result != pcp.ResultOK {
				st = State{}
			}
			return nil, d.progress.Save(st)
		}
	case pcp.Execute:
		if st.Phase == PhaseDownloaded && st.Result == pcp.ResultOK {
			st.Phase = PhaseReady // the answer to 22 was lost; execute implies it
		}
		if st.Phase != PhaseReady && st.Phase != PhaseReporting {
			return [][]byte{pcp.Encode(pcp.ExecuteAnswer{Result: pcp.ResultNoSuchTask})}, nil
		}
		out := [][]byte{pcp.Encode(pcp.ExecuteAnswer{Result: pcp.ResultOK})}
		if st.Phase == PhaseReady {
			r := pcp.ResultOK
			if d.install != nil {
				r = d.install(st.Version)
			}
			if r == pcp.ResultOK {
				d.version = st.Version
			}
			st.Phase, st.Result, st.NewVersion = PhaseReporting, r, d.version
			if err := d.progress.Save(st); err != nil {
				return nil, err
			}
		}
		return append(out, d.next(&st)...), nil
	case pcp.UpgradeResultAnswer:
		if st.Phase == PhaseReporting {
			return nil, d.progress.Save(State{})
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
		return nil, fmt.Errorf("download: load progress: %w", err)
	}
	return d.next(&st), nil
}

// next returns what the device sends in its current phase.
func (d *Downloader) next(st *State) [][]byte {
	switch st.Phase {
	case PhaseDownloading:
		return [][]byte{pcp.Encode(pcp.BlockRequest{Version: st.Version, Block: uint16(st.Next)})}
	case PhaseDownloaded:
		return [][]byte{pcp.Encode(pcp.DownloadResult{Result: st.Result})}
	case PhaseReporting:
		return [][]byte{pcp.Encode(pcp.UpgradeResult{Result: st.Result, Version: st.NewVersion})}
	}
	return nil
}

// verify checks the stored package against the notify's check code.
func (d *Downloader) verify(st *State) pcp.Result {
	if st.CheckCode == 0 {
		return pcp.ResultOK
	}
	buf := make([]byte, st.BlockSize)
	var crc uint16
	for off := int64(0); off < st.Size; {
		n := int(min(int64(len(buf)), st.Size-off))
		if m, _ := d.storage.ReadAt(buf[:n], off); m < n {
			return pcp.ResultVerificationFailed
		}
		crc = pcp.CRC16(crc, buf[:n])
		off += int64(n)
	}
	if crc != st.CheckCode {
		return pcp.ResultVerificationFailed
	}
	return pcp.ResultOK
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
