package transport

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
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
	active map[string]time.Time         // source address:port → last block served
	fails  map[netip.Addr]*failEntry    // source address → its failed lookups
	bytes  map[netip.Prefix]*byteBudget // source IP (IPv6: /64) → its byte budget
	all    *byteBudget                  // all strangers' downloads
	perIP  int                          // bytes a second per source IP
}

type failEntry struct{ b bucket }

func newDownloadGate(perIP, all int) *downloadGate {
	return &downloadGate{active: make(map[string]time.Time), fails: make(map[netip.Addr]*failEntry),
		bytes: make(map[netip.Prefix]*byteBudget), all: newByteBudget(all), perIP: perIP}
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

// Byte budgets of downloads by strangers (SEC-2). A stranger's source
// address may be forged, and a 36-byte GET with Block2 draws a block of up
// to 1,024 bytes, so the bytes of file blocks sent to strangers are
// budgeted: per source IP (IPv6: /64) StrangerDownloadRatePerIP bytes a
// second, and all together StrangerDownloadRate bytes a second, each with
// a burst of one second's worth (at least one 1,024-byte block). A block
// beyond either gets 4.29 Too Many Requests with Max-Age, and the device
// asks again; a registered device or a DTLS session is not held to them.
const maxByteSources = 4096 // source IPs whose byte budget is remembered

// byteBudget is a token bucket of bytes.
type byteBudget struct{ l *rate.Limiter }

func newByteBudget(perSecond int) *byteBudget {
	return &byteBudget{rate.NewLimiter(rate.Limit(perSecond), max(perSecond, 1024))}
}

// full reports whether the bucket holds its whole burst again at now.
func (b *byteBudget) full(now time.Time) bool { return b.l.TokensAt(now) >= float64(b.l.Burst()) }

// spend takes n bytes from the source's budget and the global one at now,
// or nothing; when it cannot, it returns how long until it may.
func (g *downloadGate) spend(src netip.Prefix, n int, now time.Time) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.bytes[src]
	if b == nil {
		if len(g.bytes) >= maxByteSources {
			for k, v := range g.bytes {
				if v.full(now) || len(g.bytes) >= maxByteSources {
					delete(g.bytes, k)
				}
			}
		}
		b = newByteBudget(g.perIP)
		g.bytes[src] = b
	}
	r := b.l.ReserveN(now, n)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		return false, max(d, time.Second)
	}
	rg := g.all.l.ReserveN(now, n)
	if d := rg.DelayFrom(now); !rg.OK() || d > 0 {
		rg.CancelAt(now)
		r.CancelAt(now)
		return false, max(d, time.Second)
	}
	return true, 0
}
