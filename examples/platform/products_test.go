package main

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// productUpload is a multipart product upload of the demo profile and
// codec, as addProduct takes it.
func productUpload(t *testing.T, ctx context.Context) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("profile", demoProfileName)
	require.NoError(t, err)
	fw.Write(demoProfile)
	fw, err = mw.CreateFormFile("codec", "watermeter.json")
	require.NoError(t, err)
	fw.Write(demoCodec)
	require.NoError(t, mw.Close())
	r := httptest.NewRequestWithContext(ctx, "POST", "/iocm/app/products", &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

// TestAddProductStopsWhenClientGone: a product upload whose client went
// away stops checking the profile and codec and adds nothing (SEC-3); the
// same upload with a live client is added.
func TestAddProductStopsWhenClientGone(t *testing.T) {
	tp := startPlatform(t)
	require.NoError(t, tp.products.Delete(demoManufacturerID, demoModel), "removing the demo product")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := tp.addProduct(httptest.NewRecorder(), asApp(productUpload(t, ctx), tp.app.ID))
	require.ErrorIs(t, err, context.Canceled, "addProduct with the client gone")
	require.False(t, tp.products.catalog.Exists(demoManufacturerID, demoModel), "a product was added after its client went away")
	require.Nil(t, tp.products.Codec(demoManufacturerID, demoModel))

	w := httptest.NewRecorder()
	require.NoError(t, tp.addProduct(w, asApp(productUpload(t, context.Background()), tp.app.ID)))
	require.Equal(t, http.StatusCreated, w.Code, "the same upload with its client there: %s", w.Body)
}

// TestLoadStopsAtCodec: a context that ends after the profile is checked
// stops before the codec is compiled.
func TestLoadStopsAtCodec(t *testing.T) {
	ctx := &endsAfter{Context: context.Background(), left: 1 << 30}
	_, _, _, err := load(ctx, demoProfileName, demoProfile, nil)
	require.NoError(t, err)
	checks := 1<<30 - ctx.left // how often loading the profile alone looks
	ctx = &endsAfter{Context: context.Background(), left: checks}
	_, _, _, err = load(ctx, demoProfileName, demoProfile, demoCodec)
	require.ErrorIs(t, err, context.Canceled, "load with a context that ended after the profile")
}

// endsAfter is a context that is cancelled once Err has been asked left
// times, so a test can end it at a chosen point of the work.
type endsAfter struct {
	context.Context
	left int
}

func (c *endsAfter) Err() error {
	if c.left <= 0 {
		return context.Canceled
	}
	c.left--
	return nil
}

func (c *endsAfter) Done() <-chan struct{} {
	if c.left <= 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return nil
}
