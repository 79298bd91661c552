package push

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
)

// Per-application TLS trust (APP-6): an application's https pushes are
// verified with the settings Config.TLSConfig gives for it, over a
// transport of its own.

// appClient is the HTTP client of one application's https pushes.
type appClient struct {
	tls       *tls.Config // what Config.TLSConfig returned when it was made
	transport *http.Transport
	client    *http.Client
}

// clientFor returns the client that makes m's try and m's application
// ("" when it is not needed or not known): the engine's own, or for an
// https URL under Config.TLSConfig the application's.
func (e *Engine) clientFor(ctx context.Context, m *Message) (*http.Client, string) {
	if e.cfg.TLSConfig == nil || e.transport == nil {
		return e.client, m.AppID
	}
	if u, err := url.Parse(m.URL); err != nil || u.Scheme != "https" {
		return e.client, m.AppID
	}
	app := e.appOf(ctx, m)
	tc := e.cfg.TLSConfig(app)
	if tc == nil {
		return e.client, app
	}
	e.tlsMu.Lock()
	defer e.tlsMu.Unlock()
	c, ok := e.appClients[app]
	if ok && c.tls == tc {
		return c.client, app
	}
	if ok {
		c.transport.CloseIdleConnections() // the app's trust changed
	}
	t := e.newTransport(tc)
	c = appClient{tls: tc, transport: t, client: newClient(t)}
	if e.appClients == nil {
		e.appClients = map[string]appClient{}
	}
	e.appClients[app] = c
	return c.client, app
}

// appOf returns m's application: Message.AppID, else (a message loaded
// from the Store after a restart) its subscription's, else the one
// application whose subscriptions share the URL's host and port (a
// command callback, CMD-6), else "".
func (e *Engine) appOf(ctx context.Context, m *Message) string {
	if m.AppID != "" {
		return m.AppID
	}
	if m.SubscriptionID != "" {
		if s, err := e.store.Subscription(ctx, m.SubscriptionID); err == nil {
			return s.AppID
		}
		return ""
	}
	u, err := ParseCallbackURL(m.URL)
	if err != nil {
		return ""
	}
	subs, err := e.store.Subscriptions(ctx, Filter{AnyApp: true})
	if err != nil {
		return ""
	}
	want, app, found := origin(u), "", false
	for _, s := range subs {
		su, err := ParseCallbackURL(s.CallbackURL)
		if err != nil || origin(su) != want {
			continue
		}
		if found && s.AppID != app {
			return "" // two applications share the server: neither's trust alone
		}
		app, found = s.AppID, true
	}
	return app
}
