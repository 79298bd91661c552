package transport

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Interop of the router's stateless cookie exchange with DTLS stacks no one
// here wrote: after the router's HelloVerifyRequest, OpenSSL and GnuTLS
// send their second ClientHello with message_seq 1 and take only a
// ServerHello with message_seq 1 (RFC 6347 §4.2.2); a wrong key gets a
// fatal alert at once.

// lockedBuffer collects a command's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runTLSClient starts an external DTLS client (its stdin held open) and
// returns its output; it is killed when the test ends.
func runTLSClient(t *testing.T, name string, args ...string) *lockedBuffer {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian: openssl, gnutls-bin); this interop test needs it", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		cancel()
		_ = cmd.Wait()
	})
	return out
}

func TestInteropDTLSCookieExchange(t *testing.T) {
	key := hex.EncodeToString(testKey)
	for _, tc := range []struct {
		name string
		bin  string
		args func(host, port, identity, key string) []string
	}{
		{"openssl", "openssl", func(host, port, id, k string) []string {
			return []string{"s_client", "-dtls1_2", "-connect", net.JoinHostPort(host, port), "-psk_identity", id, "-psk", k, "-cipher", "PSK-AES128-CCM8"}
		}},
		{"gnutls", "gnutls-cli", func(host, port, id, k string) []string {
			return []string{"--udp", "-p", port, "--pskusername", id, "--pskkey", k,
				"--priority", "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8:-MAC-ALL:+AEAD", host}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logLines{}
			s, _ := startServer(t, Config{DisableUDP: true, Logger: slogTo(logs)}, keys("dev1"))
			host, port, _ := net.SplitHostPort(s.DTLSAddr().String())
			out := runTLSClient(t, tc.bin, tc.args(host, port, "dev1", key)...)
			require.Eventually(t, func() bool { return s.DTLSStats().HandshakesFull == 1 }, 10*time.Second, 10*time.Millisecond,
				"%s completes the handshake after the stateless cookie exchange; output:\n%s", tc.name, out)
			require.GreaterOrEqual(t, s.DTLSStats().CookiesSent, uint64(1))

			start := time.Now()
			bad := runTLSClient(t, tc.bin, tc.args(host, port, "dev1", "ffffffffffffffffffffffffffffffff")...)
			require.Eventually(t, func() bool { return s.DTLSStats().FailedBadKey == 1 }, 10*time.Second, 10*time.Millisecond,
				"%s with a wrong key; output:\n%s", tc.name, bad)
			require.Eventually(t, func() bool { return bytes.Contains(bytes.ToLower([]byte(bad.String())), []byte("decrypt")) },
				5*time.Second, 10*time.Millisecond, "%s reports the decrypt_error alert; output:\n%s", tc.name, bad)
			require.Less(t, time.Since(start), 5*time.Second, "the alert comes at once")
			require.Len(t, logs.matching("DTLS handshake failed", "identity=dev1", "reason=bad key"), 1)
			t.Logf("%s: %s", tc.name, strconv.Quote(lastLine(bad.String())))
		})
	}
}

func lastLine(s string) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	return string(lines[len(lines)-1])
}
