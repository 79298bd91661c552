package ceiling

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLeanRetransmitsInNewRecords: a flight sent again goes in a record
// with a new sequence number (a repeated one is a replay, which the server
// drops: RFC 6347 §4.1.2.6), five sendings in all, each after twice the
// previous wait (RFC 6347 §4.2.4.1).
func TestLeanRetransmitsInNewRecords(t *testing.T) {
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	d, err := DialLean(peer.LocalAddr().String(), "dev", []byte("0123456789abcdef"), SourceIP(0, 1))
	require.NoError(t, err)
	defer d.Close()
	start := time.Now()
	_, err = d.exchange("test", 10*time.Millisecond, d.flight0([]byte("hello")), func([][]byte) bool { return false })
	require.ErrorContains(t, err, "no answer after 5 tries")
	require.GreaterOrEqual(t, time.Since(start), 310*time.Millisecond, "waits 10+20+40+80+160 ms")
	seen := map[uint64]bool{}
	buf := make([]byte, 512)
	for range 5 {
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := peer.ReadFromUDP(buf)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.2", from.IP.String(), "the device's source address")
		require.Equal(t, "hello", string(buf[13:n]))
		seq := binary.BigEndian.Uint64(buf[3:11]) // epoch 0 (2 bytes), sequence number (6)
		require.False(t, seen[seq], "record sequence number %d sent twice", seq)
		seen[seq] = true
	}
}
