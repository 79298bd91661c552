package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

// firmware is the state of object 5 (LwM2M 1.1 Core E.6).
type firmware struct {
	uri    string
	state  int
	result int
	image  []byte
}

// FirmwareVersionOf returns the version a firmware image installs: the text
// after "DOZEFW " on the image's first line ("DOZEFW FW2.0\n…" installs
// "FW2.0"; spaces around it are dropped), otherwise "FW-" and the first 8 hex digits of the image's
// SHA-256.
func FirmwareVersionOf(image []byte) string {
	if rest, ok := bytes.CutPrefix(image, []byte("DOZEFW ")); ok {
		if i := bytes.IndexByte(rest, '\n'); i > 0 {
			if v := bytes.TrimSpace(rest[:i]); len(v) > 0 {
				return string(v)
			}
		}
	}
	sum := sha256.Sum256(image)
	return fmt.Sprintf("FW-%X", sum[:4])
}

// serveFirmware installs object 5: Package URI (/5/0/1) write, Update
// (/5/0/2) execute, State (/5/0/3) and Update Result (/5/0/5) read and
// observe, PkgVersion (/5/0/7) read.
func (d *Device) serveFirmware(c *transport.Client, text func(func() string) func() (transport.Content, error)) {
	num := func(f func(*firmware) int) func() string {
		return func() string {
			d.mu.Lock()
			defer d.mu.Unlock()
			return strconv.Itoa(f(&d.fw))
		}
	}
	c.Handle("/5/0/3", transport.Resource{Read: text(num(func(f *firmware) int { return f.state }))})
	c.Handle("/5/0/5", transport.Resource{Read: text(num(func(f *firmware) int { return f.result }))})
	c.Handle("/5/0/7", transport.Resource{Read: text(d.FirmwareVersion)})
	c.Handle("/5/0/1", transport.Resource{
		Read: text(func() string { d.mu.Lock(); defer d.mu.Unlock(); return d.fw.uri }),
		Write: func(v transport.Content) error {
			uri := string(v.Payload)
			return d.post(func(ctx context.Context, wg *sync.WaitGroup) { d.startDownload(ctx, wg, uri) })
		},
	})
	c.Handle("/5/0/2", transport.Resource{Execute: func([]byte) error {
		// Update moves the device to Updating at once (LwM2M 1.1 Core
		// E.6): a read or a second Update that comes before the install
		// runs sees Updating, and the second is refused.
		d.mu.Lock()
		st := d.fw.state
		if st == lwm2m.FirmwareStateDownloaded {
			d.fw.state = lwm2m.FirmwareStateUpdating
		}
		d.mu.Unlock()
		if st != lwm2m.FirmwareStateDownloaded {
			return fmt.Errorf("firmware update: state is %d, want %d (downloaded)", st, lwm2m.FirmwareStateDownloaded)
		}
		if err := d.post(func(ctx context.Context, _ *sync.WaitGroup) { d.installFirmware(ctx) }); err != nil {
			d.mu.Lock()
			d.fw.state = lwm2m.FirmwareStateDownloaded
			d.mu.Unlock()
			return err
		}
		return nil
	}})
}

// post hands a job to Run; it fails when Run is too busy to take it.
func (d *Device) post(f func(context.Context, *sync.WaitGroup)) error {
	select {
	case d.work <- f:
		return nil
	default:
		return errors.New("device busy: work queue full")
	}
}

// setFirmware changes State and Update Result and notifies their
// observers.
func (d *Device) setFirmware(ctx context.Context, state, result int) {
	d.mu.Lock()
	d.fw.state, d.fw.result = state, result
	c := d.client
	d.mu.Unlock()
	d.wake(ctx)
	for _, r := range []struct {
		path string
		v    int
	}{{"/5/0/3", state}, {"/5/0/5", result}} {
		if !c.Observed(r.path) {
			continue
		}
		if err := c.Notify(ctx, r.path, transport.Content{Format: lwm2m.FormatText, Payload: []byte(strconv.Itoa(r.v))}); err != nil {
			d.log.Warn("firmware notify", "path", r.path, "err", err)
		}
	}
	d.touch()
}

// startDownload runs on Run's goroutine: an empty URI cancels (state
// idle), anything else starts a block-wise download from the server.
func (d *Device) startDownload(ctx context.Context, wg *sync.WaitGroup, uri string) {
	d.mu.Lock()
	d.fw.uri = uri
	d.mu.Unlock()
	if uri == "" {
		d.setFirmware(ctx, lwm2m.FirmwareStateIdle, lwm2m.FirmwareResultInitial)
		return
	}
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Path == "" {
		d.log.Warn("firmware: bad package URI", "uri", uri)
		d.setFirmware(ctx, lwm2m.FirmwareStateIdle, lwm2m.FirmwareResultInvalidURI)
		return
	}
	d.setFirmware(ctx, lwm2m.FirmwareStateDownloading, lwm2m.FirmwareResultInitial)
	d.mu.Lock()
	d.busy++
	c := d.client
	d.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The download goes to the server the device is connected to;
		// the URI's host is not dialled.
		img, err := c.Download(ctx, u.Path, 512)
		done := func(ctx context.Context, _ *sync.WaitGroup) {
			d.mu.Lock()
			d.busy--
			if err == nil {
				d.fw.image = img
			}
			d.mu.Unlock()
			if err != nil {
				d.log.Warn("firmware download", "uri", uri, "err", err)
				res := lwm2m.FirmwareResultConnectionLost
				var re *transport.ResponseError
				if errors.As(err, &re) {
					res = lwm2m.FirmwareResultInvalidURI
				}
				d.setFirmware(ctx, lwm2m.FirmwareStateIdle, res)
				return
			}
			d.log.Info("firmware downloaded", "bytes", len(img))
			d.setFirmware(ctx, lwm2m.FirmwareStateDownloaded, lwm2m.FirmwareResultInitial)
		}
		select {
		case d.work <- done:
		case <-ctx.Done():
		}
	}()
}

// installFirmware runs on Run's goroutine after Update was executed.
func (d *Device) installFirmware(ctx context.Context) {
	d.setFirmware(ctx, lwm2m.FirmwareStateUpdating, lwm2m.FirmwareResultInitial)
	d.mu.Lock()
	v := FirmwareVersionOf(d.fw.image)
	d.fwVersion = v
	d.fw.image = nil
	d.mu.Unlock()
	d.log.Info("firmware updated", "version", v)
	d.setFirmware(ctx, lwm2m.FirmwareStateIdle, lwm2m.FirmwareResultSuccess)
}
