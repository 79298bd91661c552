package transport

import (
	"testing"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	pionhs "github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/stretchr/testify/require"
)

// TestPionServerHelloEmptyExtensions pins how pion (v3.1.15) encodes a
// ServerHello with no extension, the one it answers a ClientHello without
// extended_master_secret and renegotiation_info with on a PSK suite: it
// writes an empty extensions block (00 00) after the compression method,
// where Go's crypto/tls writes none. Both are valid TLS (RFC 5246
// §7.4.1.3), but a client that hashes its own re-encoding of the
// ServerHello instead of the bytes received fails the Finished check
// (issue 20 item 8, doc_server.go "DTLS interop"). If an upgrade of pion
// changes this, this test fails: update the doc and the issue.
func TestPionServerHelloEmptyExtensions(t *testing.T) {
	suite := uint16(dtls.TLS_PSK_WITH_AES_128_CCM_8)
	m := &pionhs.MessageServerHello{
		Version:           protocol.Version1_2,
		CipherSuiteID:     &suite,
		CompressionMethod: protocol.CompressionMethods()[0],
		Extensions:        []extension.Extension{},
	}
	b, err := m.Marshal()
	require.NoError(t, err)
	// version 2, random 32, session id length 1, suite 2, compression 1
	const fixed = 2 + pionhs.RandomLength + 1 + 2 + 1
	require.Len(t, b, fixed+2, "pion's ServerHello without extensions: %x", b)
	require.Equal(t, []byte{0, 0}, b[fixed:], "it ends with an empty extensions block")

	m.Extensions = nil
	nilExt, err := m.Marshal()
	require.NoError(t, err)
	require.Equal(t, b, nilExt, "nil and empty Extensions encode alike")

	// pion reads a ServerHello without the block, so omitting it when
	// empty (the upstream change doc_server.go proposes) is safe for
	// pion clients.
	var back pionhs.MessageServerHello
	require.NoError(t, back.Unmarshal(b[:fixed]), "a ServerHello without an extensions block")
	require.Empty(t, back.Extensions)
	require.Equal(t, suite, *back.CipherSuiteID)
}
