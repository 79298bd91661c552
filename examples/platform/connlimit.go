package main

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The HTTP listeners' bounds. Without them a client that opens connections
// and sends nothing more (an idle keep-alive, a body announced and never
// sent) holds each one for ever, and enough of them take every file
// descriptor of the process, the device listeners' included.
const (
	// httpIdleTimeout closes a keep-alive connection with no request.
	httpIdleTimeout = 2 * time.Minute
	// httpReadTimeout bounds reading one request, body included: an
	// upgrade package of maxUpload (32 MiB) at 1 Mbit/s takes ~4.5 min.
	httpReadTimeout = 10 * time.Minute
	// httpReadHeaderTimeout bounds reading a request's headers.
	httpReadHeaderTimeout = 10 * time.Second
)

// newHTTPServer is the http.Server of the REST API and of the operator
// listener, with the timeouts above. No WriteTimeout: a service call waits
// for the device up to its timeout, a profile for its seconds.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout: httpReadTimeout, IdleTimeout: httpIdleTimeout}
}

// limitListener accepts at most max connections open at once, and at most
// perIP from one IP address; a connection over either is answered 503
// (plain HTTP) or closed (TLS) as soon as it is accepted, and counted in
// refused. API clients are applications and browsers, a handful of
// connections each, so a per-address cap costs honest clients nothing.
type limitListener struct {
	net.Listener
	max, perIP int
	plain      bool // HTTP without TLS: over the limit, a 503 is written before closing

	mu      sync.Mutex
	open    int
	byIP    map[string]int
	refused atomic.Int64
}

func newLimitListener(l net.Listener, max, perIP int, plain bool) *limitListener {
	return &limitListener{Listener: l, max: max, perIP: perIP, plain: plain, byIP: map[string]int{}}
}

// tooMany is the answer to a connection over the limit.
const tooMany = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nRetry-After: 10\r\nContent-Length: 49\r\n\r\ntoo many connections from this address or to all\n"

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.open >= l.max || l.byIP[ip] >= l.perIP {
			l.mu.Unlock()
			l.refused.Add(1)
			if l.plain {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write([]byte(tooMany))
			}
			_ = c.Close()
			continue
		}
		l.open++
		l.byIP[ip]++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// limitConn gives its place back once, at Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// refusedConnections is doze_http_connections_refused_total of one
// listener.
func refusedConnections(listener string, l *limitListener) prometheus.CounterFunc {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "doze_http_connections_refused_total",
		Help:        "HTTP connections closed at once: over httpMaxConns in all or httpMaxConnsPerIP from one address.",
		ConstLabels: prometheus.Labels{"listener": listener}},
		func() float64 { return float64(l.refused.Load()) })
}
