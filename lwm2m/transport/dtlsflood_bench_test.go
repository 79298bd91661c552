package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// BenchmarkDTLSHandshakeFlood measures legitimate DTLS handshakes (pion
// client, PSK, CCM_8, with the cookie exchange) per second while
// ClientHellos from 100,000 source addresses flood the port, against the
// same without the flood, measured first in the same run (SEC-2 target:
// ratio ≥ 0.5), and the heap growth during the flood (target ≤ 50 MB).
//
//	go test ./lwm2m -run XXX -bench DTLSHandshakeFlood -benchtime 200x
func BenchmarkDTLSHandshakeFlood(b *testing.B) {
	for _, rate := range []int{50000, 100000, 200000} {
		b.Run(fmt.Sprintf("spoofed=%dk/s", rate/1000), func(b *testing.B) { benchHandshakeFlood(b, -rate) })
	}
	for _, rate := range []int{50000, 0} {
		name := "sockets=max"
		if rate > 0 {
			name = fmt.Sprintf("sockets=%dk/s", rate/1000)
		}
		b.Run(name, func(b *testing.B) { benchHandshakeFlood(b, rate) })
	}
}

// benchHandshakeFlood floods with rate hellos a second from a socket per
// source (0: as fast as the sender goes; the sender shares the machine's
// cores with the server), or, with a negative rate, -rate hellos a second
// from a raw socket spoofing the sources.
func benchHandshakeFlood(b *testing.B, rate int) {
	s, err := New(Config{DisableUDP: true, DTLSAddr: "127.0.0.1:0"}, keys("dev1"), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := s.DTLSAddr().(*net.UDPAddr)

	failed := 0 // handshakes not done within 10 s
	handshake := func() {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer pc.Close()
		hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer hcancel()
		c, err := pionHandshake(hctx, pc, srv, "dev1", testKey)
		if err != nil {
			failed++
			return
		}
		_ = c.Close()
	}

	const quiet = 100
	start := time.Now()
	for range quiet {
		handshake()
	}
	quietRate := quiet / time.Since(start).Seconds()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	flood := func(stop <-chan struct{}, sent *atomic.Int64) {
		for {
			floodHellosAt(srv, 100000, rate, stop, sent)
			select {
			case <-stop:
				return
			default:
			}
		}
	}
	if rate < 0 {
		if flood = rawFlood(srv, 100000, -rate); flood == nil {
			b.Skip("raw sockets are not allowed here (root or CAP_NET_RAW); the spoofed flood needs them")
		}
	}
	go func() {
		defer wg.Done()
		flood(stop, &sent)
	}()
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	for sent.Load() < 1000 {
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start = time.Now()
	n := 0
	for b.Loop() {
		handshake()
		n++
	}
	floodRate := float64(n-failed) / time.Since(start).Seconds()
	elapsed := time.Since(start)
	hellos := sent.Load()
	close(stop)
	wg.Wait()
	b.StopTimer()
	grow := float64(0)
	if p := peak.Load(); p > heap0 {
		grow = float64(p-heap0) / (1 << 20)
	}
	b.ReportMetric(quietRate, "hs/s-quiet")
	b.ReportMetric(floodRate, "hs/s-flood")
	b.ReportMetric(floodRate/quietRate, "ratio")
	b.ReportMetric(float64(hellos)/elapsed.Seconds(), "hellos/s")
	b.ReportMetric(grow, "heap-MB")
	b.ReportMetric(float64(failed), "failed")
	st := s.DTLSStats()
	b.Logf("quiet %.0f hs/s, flood %.0f hs/s (ratio %.2f, %d of %d not done in 10 s), %d hellos from 100,000 addresses (%.0f/s), %d cookies sent, %d shed, heap +%.1f MB, %d handshakes in flight at the end",
		quietRate, floodRate, floodRate/quietRate, failed, n, hellos, float64(hellos)/elapsed.Seconds(), st.CookiesSent, st.HellosShed, grow, st.HandshakesInFlight)
}

// floodHellosAt is floodHellos at rate hellos a second (0: unlimited), in
// bursts of a hundred.
func floodHellosAt(srv *net.UDPAddr, n, rate int, stop <-chan struct{}, sent *atomic.Int64) {
	if rate == 0 {
		floodHellos(srv, n, stop, sent)
		return
	}
	const burst = 100
	start := time.Now()
	for i := 0; i < n; i += burst {
		floodHellosFrom(srv, i, min(burst, n-i), stop, sent)
		if d := time.Until(start.Add(time.Duration(i+burst) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
	}
}

// rawFlood sends ClientHellos from n spoofed source addresses (127.1.x.y,
// port 40000+) through a raw IPv4 socket, 64 a system call: the sender
// costs the machine little, as an attacker elsewhere would. It returns
// nil when raw sockets are not allowed (not root, no CAP_NET_RAW).
func rawFlood(srv *net.UDPAddr, n, rate int) func(stop <-chan struct{}, sent *atomic.Int64) {
	c, err := net.ListenPacket("ip4:255", "127.0.0.1") // IPPROTO_RAW: we write the IP header
	if err != nil {
		return nil
	}
	pc := ipv4.NewPacketConn(c)
	const batch = 64
	return func(stop <-chan struct{}, sent *atomic.Int64) {
		defer c.Close()
		ms := make([]ipv4.Message, batch)
		dst := &net.IPAddr{IP: srv.IP}
		start := time.Now()
		for i := 0; ; {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
			select {
			case <-stop:
				return
			default:
			}
			for j := range ms {
				k := i % n
				i++
				src := net.IPv4(127, 1+byte(k>>16), byte(k>>8), byte(k)).To4()
				h := testHello{random: [32]byte{byte(k), byte(k >> 8), byte(i)}}
				ms[j] = ipv4.Message{Buffers: [][]byte{udpPacket(src, srv, uint16(40000+k%20000), h.bytes())}, Addr: dst}
			}
			if _, err := pc.WriteBatch(ms, 0); err != nil {
				return
			}
			sent.Add(batch)
		}
	}
}

// udpPacket is an IPv4/UDP packet from src:port to dst (UDP checksum 0:
// none, allowed over IPv4; the kernel fills in the IP checksum).
func udpPacket(src net.IP, dst *net.UDPAddr, port uint16, payload []byte) []byte {
	b := make([]byte, 28, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17 // version 4, IHL 5; TTL; UDP
	binary.BigEndian.PutUint16(b[2:], uint16(28+len(payload)))
	copy(b[12:16], src)
	copy(b[16:20], dst.IP.To4())
	binary.BigEndian.PutUint16(b[20:], port)
	binary.BigEndian.PutUint16(b[22:], uint16(dst.Port))
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	return append(b, payload...)
}
