package transport

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Firmware downloads by peers that did not register on the socket they
// download from (issue 20.4): LwM2M clients commonly fetch the package URI
// from a second socket, so a plain CoAP GET under FilesPath is served to a
// stranger too. The file name in the URI is then the credential: the
// FileSource must give only names that cannot be guessed (the platform's
// package ids are random), and it sees the endpoint "". Such downloads are
// bounded: at most maxDownloaders sources download at once (a source that
// is silent for downloadIdle, or got its last block, is done), and a
// source address that asks for names that do not exist is slowed down to
// failRate lookups a second after failBurst (4.29 with Max-Age). Nothing
// is kept for a download beyond its transfer.
const (
	maxDownloaders = 64
	downloadIdle   = time.Minute
	failBurst      = 8
	failRate       = 0.2  // per second: one more wrong name every 5 s
	maxFailSources = 4096 // source addresses whose failures are remembered
)

// downloadGate bounds downloads by strangers.
type downloadGate struct {
	mu     sync.Mutex
	active map[string]time.Time      // source address:port → last block served
	fails  map[netip.Addr]*failEntry // source address → its failed lookups
}

type failEntry struct{ b bucket }

func newDownloadGate() *downloadGate {
	return &downloadGate{active: make(map[string]time.Time), fails: make(map[netip.Addr]*failEntry)}
}

// admit reports whether source src may get a block at now: it is
// downloading already, or fewer than maxDownloaders are.
func (g *downloadGate) admit(src string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.active[src]; ok {
		return true
	}
	if len(g.active) >= maxDownloaders {
		for k, last := range g.active {
			if now.Sub(last) > downloadIdle {
				delete(g.active, k)
			}
		}
	}
	return len(g.active) < maxDownloaders
}

// served records that src got a block at now; last ends its download.
func (g *downloadGate) served(src string, now time.Time, last bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if last {
		delete(g.active, src)
	} else {
		g.active[src] = now
	}
}

// mayLookUp reports whether address a may look a name up at now, and if
// not, how long until it may: a source that asked for failBurst names
// that do not exist waits.
func (g *downloadGate) mayLookUp(a netip.Addr, now time.Time) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.fails[a]
	if f == nil {
		return true, 0
	}
	wait := f.b.wait(now)
	return wait == 0, wait
}

// failed charges a lookup of a name that does not exist to a.
func (g *downloadGate) failed(a netip.Addr, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.fails[a]
	if f == nil {
		if len(g.fails) >= maxFailSources {
			g.pruneFails(now)
		}
		f = &failEntry{}
		g.fails[a] = f
	}
	f.b.allow(now, failRate, failBurst)
}

// pruneFails forgets sources whose bucket has refilled, and when none has,
// as many as it takes (in random map order) to make room. g.mu is held.
func (g *downloadGate) pruneFails(now time.Time) {
	for a, f := range g.fails {
		if f.b.full(now) {
			delete(g.fails, a)
		}
	}
	for a := range g.fails {
		if len(g.fails) < maxFailSources {
			break
		}
		delete(g.fails, a)
	}
}

// sourceIP returns a's IP address (unmapped), or the zero Addr.
func sourceIP(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ua.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}
