package sim_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/pcp"
)

// TestPSMAsleep: a PSM device answers downlinks within its active time
// after an uplink and not after it; its next uplink wakes it (LWM-8
// from the device's side). The active time is short, on real sockets, but
// long enough (1.5 s) for a downlink exchange on a loaded CI machine; the
// server (200 ms ACK timeout, one retransmission) gives up within 1.5 s.
func TestPSMAsleep(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "coap", true: "dtls"}[secure], func(t *testing.T) {
			t.Parallel()
			p := startServer(t, transport.Config{AwakeWindow: time.Hour}, nil)
			cfg := sim.Config{Server: p.srv.UDPAddr().String(), IMEI: "868333030000002",
				Power: sim.Power{Mode: sim.PSM, ActiveTime: 1500 * time.Millisecond}, NoFirstReport: true}
			if secure {
				// The device keeps its DTLS session across the new port
				// through its Connection ID (LWM-10).
				cfg.Key = []byte("0123456789abcdef")
				cfg.Server = p.srv.DTLSAddr().String()
				p.keys.Set(cfg.IMEI, cfg.Key)
			}
			d, err := sim.New(cfg)
			require.NoError(t, err)
			run(t, d)
			require.True(t, p.next(t, transport.EventRegistered).Registration.Queue, "a PSM device registers in queue mode")
			ctx := context.Background()
			require.NoError(t, p.srv.Downlink(ctx, d.IMEI(), []byte{0x11, 0x00}), "downlink inside the active time")
			require.Eventually(t, d.Asleep, 5*time.Second, 5*time.Millisecond)
			err = p.srv.Downlink(ctx, d.IMEI(), []byte{0x11, 0x00})
			require.ErrorIs(t, err, transport.ErrTimeout, "downlink to a sleeping PSM device must go unanswered")
			require.NoError(t, d.Report(ctx))
			require.False(t, d.Asleep())
			require.NoError(t, p.srv.Downlink(ctx, d.IMEI(), []byte{0x11, 0x00}), "downlink after the wake-up report")
			require.Eventually(t, func() bool { return d.Stats().ReportAcks == 2 }, 5*time.Second, 5*time.Millisecond)
			require.GreaterOrEqual(t, d.Stats().Sleeps, int64(1))
		})
	}
}

// TestDTLS: the device connects with DTLS PSK (identity = IMEI) and
// reports (LWM-1).
func TestDTLS(t *testing.T) {
	p := startServer(t, transport.Config{DisableUDP: true}, nil)
	key := []byte("0123456789abcdef")
	p.keys.Set("868333030000003", key)
	d, err := sim.New(sim.Config{Server: p.srv.DTLSAddr().String(), IMEI: "868333030000003", Key: key, Power: sim.Power{Mode: sim.DRX}})
	require.NoError(t, err)
	run(t, d)
	require.True(t, p.next(t, transport.EventRegistered).Registration.Secure)
	p.next(t, transport.EventUplink)
}

// pcpLink carries the ota engine's frames to the device as downlinks.
type pcpLink struct{ srv *transport.Server }

func (l pcpLink) SendFrame(ctx context.Context, id string, frame []byte) error {
	return l.srv.Downlink(ctx, id, frame)
}

// TestPCPUpgrade: a software upgrade over PCP driven by ota's engine in
// the same process: notify, blocks, download result, execute, upgrade
// result (OTA-6).
func TestPCPUpgrade(t *testing.T) {
	var eng *ota.Engine
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startServer(t, transport.Config{DisableDTLS: true}, func(e transport.Event) {
		if e.Kind == transport.EventUplink && pcp.IsPCP(e.Payload) {
			frame := append([]byte(nil), e.Payload...)
			go func() { _ = eng.HandleFrame(ctx, e.Endpoint, frame) }()
		}
	})
	files := &ota.MemFiles{}
	var err error
	eng, err = ota.New(ota.NewMemStore(), files, pcpLink{p.srv}, ota.Config{})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	d, err := sim.New(sim.Config{Server: p.srv.UDPAddr().String(), IMEI: "868333030000004", Power: sim.Power{Mode: sim.DRX}, SoftwareVersion: "1.0.0"})
	require.NoError(t, err)
	run(t, d)
	p.next(t, transport.EventUplink)

	body := bytes.Repeat([]byte("doze firmware "), 200) // 2800 bytes, 6 blocks of 500
	files.Put("sw2", body)
	_, err = eng.AddPackage(ctx, ota.Package{ID: "sw2", Kind: ota.Software, Version: "2.0.0"})
	require.NoError(t, err)
	task, err := eng.CreateTask(ctx, ota.TaskSpec{PackageID: "sw2", Devices: []string{d.IMEI()}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return d.SoftwareVersion() == "2.0.0" }, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		subs, err := eng.SubTasks(ctx, task.ID)
		return err == nil && len(subs) == 1 && subs[0].State == ota.SubSuccess
	}, 20*time.Second, 10*time.Millisecond)
	require.Greater(t, d.Stats().PCPFrames, int64(6))
}

// fwFiles serves one firmware image to the server's block-wise GET.
type fwFiles struct{ img []byte }

func (f fwFiles) Open(_, name string) (transport.File, error) {
	if name != "fw2" {
		return transport.File{}, transport.ErrNotFound
	}
	return transport.File{Data: bytes.NewReader(f.img), Size: int64(len(f.img)), ETag: []byte{1, 2}}, nil
}

// TestObject5Upgrade: Package URI write, block-wise pull, State and
// Update Result notifications, Update execute, new version (LwM2M 1.1
// Core E.6).
func TestObject5Upgrade(t *testing.T) {
	img := append([]byte("DOZEFW FW2.0\n"), bytes.Repeat([]byte{0xA5}, 3000)...)
	p := startServer(t, transport.Config{DisableDTLS: true, Files: fwFiles{img}}, nil)
	d, err := sim.New(sim.Config{Server: p.srv.UDPAddr().String(), IMEI: "868333030000005", Power: sim.Power{Mode: sim.DRX}, NoFirstReport: true})
	require.NoError(t, err)
	run(t, d)
	ctx := context.Background()
	v, err := p.srv.Read(ctx, d.IMEI(), "/5/0/7", transport.NoFormat)
	require.NoError(t, err)
	require.Equal(t, "FW1.0", string(v.Payload))
	_, err = p.srv.Observe(ctx, d.IMEI(), "/5/0/3")
	require.NoError(t, err)
	_, err = p.srv.Observe(ctx, d.IMEI(), "/5/0/5")
	require.NoError(t, err)

	// Update before a download is refused.
	var re *transport.ResponseError
	require.True(t, errors.As(p.srv.Execute(ctx, d.IMEI(), "/5/0/2", nil), &re), "execute before download")

	require.NoError(t, p.srv.Write(ctx, d.IMEI(), "/5/0/1", transport.Content{Format: lwm2m.FormatText, Payload: []byte("coap://127.0.0.1/fw/fw2")}))
	var states []int
	waitState := func(want int) {
		t.Helper()
		for {
			e := p.next(t, transport.EventNotification)
			if e.Path != "/5/0/3" {
				continue
			}
			n, err := strconv.Atoi(string(e.Payload))
			require.NoError(t, err)
			states = append(states, n)
			if n == want {
				return
			}
		}
	}
	waitState(lwm2m.FirmwareStateDownloaded)
	require.NoError(t, p.srv.Execute(ctx, d.IMEI(), "/5/0/2", nil))
	// Updating at once: a second Update is refused, whenever the install
	// runs (before, it installed again, from no image).
	require.True(t, errors.As(p.srv.Execute(ctx, d.IMEI(), "/5/0/2", nil), &re), "a second Update")
	waitState(lwm2m.FirmwareStateIdle)
	require.Equal(t, []int{1, 2, 3, 0}, states, "State notifications: downloading, downloaded, updating, idle")
	require.Eventually(t, func() bool { return d.Stats().FirmwareResult == lwm2m.FirmwareResultSuccess }, 5*time.Second, 5*time.Millisecond)
	v, err = p.srv.Read(ctx, d.IMEI(), "/3/0/3", transport.NoFormat)
	require.NoError(t, err)
	require.Equal(t, "FW2.0", string(v.Payload))

	// A URI the server does not serve ends with Invalid URI.
	require.NoError(t, p.srv.Write(ctx, d.IMEI(), "/5/0/1", transport.Content{Format: lwm2m.FormatText, Payload: []byte("coap://127.0.0.1/fw/nope")}))
	require.Eventually(t, func() bool { return d.Stats().FirmwareResult == lwm2m.FirmwareResultInvalidURI }, 5*time.Second, 5*time.Millisecond)
}

// TestEDRXPagingWindows: an eDRX device answers downlinks in the paging
// window at the start of each cycle and not between windows. Windows are
// short, on real sockets.
func TestEDRXPagingWindows(t *testing.T) {
	// The server gives up 500–750 ms after its first try, well inside the
	// 2 s the device sleeps; a paging window (2 s) leaves a loaded CI
	// machine time for the update and a downlink exchange, each try of
	// which waits 100–150 ms for the answer.
	p := startServer(t, transport.Config{DisableDTLS: true, Transmission: transport.Transmission{AckTimeout: 100 * time.Millisecond, MaxRetransmit: 1}}, nil)
	d, err := sim.New(sim.Config{Server: p.srv.UDPAddr().String(), IMEI: "868333030000006", NoFirstReport: true,
		Power: sim.Power{Mode: sim.EDRX, ActiveTime: 50 * time.Millisecond, Cycle: 4 * time.Second, PagingWindow: 2 * time.Second}})
	require.NoError(t, err)
	run(t, d)
	ctx := context.Background()
	require.Eventually(t, d.Asleep, 5*time.Second, time.Millisecond, "asleep after the first window")
	require.ErrorIs(t, p.srv.Downlink(ctx, d.IMEI(), []byte{0x11, 0x00}), transport.ErrTimeout, "downlink between paging windows")
	require.Eventually(t, func() bool { return !d.Asleep() }, 5*time.Second, time.Millisecond, "awake in the next window")
	p.next(t, transport.EventUpdated) // the device tells the server where it is
	require.NoError(t, p.srv.Downlink(ctx, d.IMEI(), []byte{0x11, 0x00}), "downlink inside a paging window")
	require.Eventually(t, func() bool { return d.Stats().ReportAcks == 1 }, 5*time.Second, time.Millisecond)
}
