package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// TestSendMixedAndOversize (issue 15 item 5): a device without object 19
// reports by LwM2M Send only. A Send mixing a codec report in /19/0/0 with
// the firmware State and Update Result of object 5 gives both: the report
// in history and the object 5 values to the firmware flow (its device-log
// line). A Send larger than the platform's maxMessage is refused with 4.13
// instead of being acknowledged and dropped.
func TestSendMixedAndOversize(t *testing.T) {
	tp := startPlatform(t)
	tp.enableHistory()
	const imei = "868333030000720"
	id, psk := registerDevice(t, tp, imei)
	report := demoReport(t)

	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: imei, Key: psk,
		Objects: "</3/0>,</5/0>"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))

	body, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{
		{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue(report)},
		{Path: lwm2m.MustPath("/5/0/3"), Value: lwm2m.IntValue(2)},
		{Path: lwm2m.MustPath("/5/0/5"), Value: lwm2m.IntValue(0)},
	})
	require.NoError(t, err)
	require.NoError(t, c.Send(ctx, transport.Content{Format: lwm2m.FormatSenMLJSON, Payload: body}))
	require.Eventually(t, func() bool {
		recs, _, err := tp.db.History().Query(store.HistoryQuery{DeviceID: id, Page: -1})
		return err == nil && len(recs) == 3
	}, 10*time.Second, 10*time.Millisecond, "the /19/0/0 report is in history (three services)")
	require.Eventually(t, func() bool { return hasLog(tp, id, "object 5 sent: State 2, Update Result 0") },
		10*time.Second, 10*time.Millisecond, "the object 5 values reached the firmware flow")

	big := bytes.Repeat([]byte{0x5A}, tp.cfg.MaxMessage+1)
	err = c.Send(ctx, transport.Content{Format: lwm2m.FormatOpaque, Payload: big})
	var re *transport.ResponseError
	require.True(t, errors.As(err, &re), "an oversize Send is refused: %v", err)
	require.Equal(t, "4.13", re.CodeText())
	recs, _, err := tp.db.History().Query(store.HistoryQuery{DeviceID: id, Page: -1})
	require.NoError(t, err)
	require.Len(t, recs, 3, "nothing more stored")
	require.Eventually(t, func() bool { return hasLog(tp, id, "refused with 4.13") },
		10*time.Second, 10*time.Millisecond, "the refusal is on the device log (SEC-6)")
}
