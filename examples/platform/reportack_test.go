package main

import (
	"context"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// TestSendReportAckOnDataChannel: the codec's acknowledgement of a report
// sent with LwM2M Send reaches the device where an LwM2M device takes
// application data, a write of /19/1/0 (LWM-5), and not in the 2.04 of
// the Send, whose payload OMA LwM2M gives no meaning (a client drops it;
// Leshan's SendResponse has no content). A notification's ACK is Empty
// (RFC 7252 §4.2, RFC 7641 §4.5), so a report ACK never rides on the
// device's exchange.
func TestSendReportAckOnDataChannel(t *testing.T) {
	tp := startPlatform(t)
	const imei = "868333030000721"
	_, psk := registerDevice(t, tp, imei)
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	wantAck, err := cd.Encode(&codec.ReportAck{Identifier: "0", MsgType: codec.MsgReportAck, Request: []byte{0x01}})
	require.NoError(t, err)
	require.Equal(t, []byte{0x11, 0x00}, wantAck, "the demo codec acknowledges a meterReading with readingAck")

	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: imei, Key: psk,
		Objects: "</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	written := make(chan []byte, 4)
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) { return transport.Content{Format: lwm2m.FormatOpaque}, nil }})
	c.Handle("/19/1/0", transport.Resource{Write: func(ct transport.Content) error {
		written <- append([]byte(nil), ct.Payload...)
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	require.NoError(t, c.Send(ctx, transport.Content{Format: lwm2m.FormatOpaque, Payload: []byte{0x01, 0x55, 0xFF, 0xAB, 0x00, 0x01, 0xE2, 0x40, 0x00, 0x96, 0x00, 0x10}}),
		"the Send of a meterReading is answered 2.04")
	select {
	case got := <-written:
		require.Equal(t, wantAck, got, "the write of /19/1/0 after the Send carries the codec's readingAck")
	case <-ctx.Done():
		t.Fatal("no write of /19/1/0 with the report acknowledgement within 30s of the Send")
	}
}
