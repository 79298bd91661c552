package main

import (
	"net/http"
	"slices"
	"sync"

	"github.com/doze-io/doze/push"
)

func (p *Platform) subscribeAs(w http.ResponseWriter, r *http.Request, notifyType, url, secret string) error {
	nt, err := push.ParseNotifyType(notifyType)
	if err != nil {
		return apiErr(err)
	}
	if why, ok := notSent[nt]; ok {
		return badRequest("notify_type_not_sent", "%s", why)
	}
	s, err := p.push.Subscribe(r.Context(), push.Subscription{AppID: appOf(r), NotifyType: nt, CallbackURL: url, Secret: push.Secret(secret)})
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusCreated, s)
	return nil
}

func (p *Platform) subscribe(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		NotifyType  string `json:"notifyType"`
		CallbackURL string `json:"callbackUrl"`
		OwnerFlag   *bool  `json:"ownerFlag"`
		Secret      string `json:"secret"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	return p.subscribeAs(w, r, body.NotifyType, body.CallbackURL, body.Secret)
}

// subscribeUpgrade is the upgrade-notification flavour with its lower-case
// "callbackurl" key.
func (p *Platform) subscribeUpgrade(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		NotifyType  string `json:"notifyType"`
		CallbackURL string `json:"callbackurl"`
		Secret      string `json:"secret"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	return p.subscribeAs(w, r, body.NotifyType, body.CallbackURL, body.Secret)
}

func (p *Platform) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	f := push.Filter{AppID: appOf(r)}
	if nt := r.URL.Query().Get("notifyType"); nt != "" {
		if f.NotifyType, err = push.ParseNotifyType(nt); err != nil {
			return apiErr(err)
		}
	}
	subs, err := p.push.Subscriptions(r.Context(), f)
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(subs), "pageNo": pageNo, "pageSize": pageSize,
		"subscriptions": pageOf(subs, pageNo, pageSize)})
	return nil
}

// ownSubscription returns the subscription named in the path if it is the
// caller's.
func (p *Platform) ownSubscription(r *http.Request) (push.Subscription, error) {
	s, err := p.push.Subscription(r.Context(), pathValue(r, "subscriptionId"))
	if err == nil && s.AppID != appOf(r) {
		err = push.ErrNotFound
	}
	return s, apiErr(err)
}

func (p *Platform) getSubscription(w http.ResponseWriter, r *http.Request) error {
	s, err := p.ownSubscription(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (p *Platform) deleteSubscription(w http.ResponseWriter, r *http.Request) error {
	s, err := p.ownSubscription(r)
	if err != nil {
		return err
	}
	if err := p.push.Unsubscribe(r.Context(), s.ID); err != nil {
		return apiErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (p *Platform) deleteSubscriptions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := push.Filter{AppID: appOf(r), CallbackURL: q.Get("callbackUrl")}
	if nt := q.Get("notifyType"); nt != "" {
		var err error
		if f.NotifyType, err = push.ParseNotifyType(nt); err != nil {
			return apiErr(err)
		}
	}
	if _, err := p.push.UnsubscribeAll(r.Context(), f); err != nil {
		return apiErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// endpoints lists the push endpoints of the calling app only: the callback
// URLs of its subscriptions and of its commands. Another app's URLs and
// their errors would make the list a blind SSRF oracle (SEC-5).
func (p *Platform) endpoints(w http.ResponseWriter, r *http.Request) error {
	app := appOf(r)
	subs, err := p.push.Subscriptions(r.Context(), push.Filter{AppID: app})
	if err != nil {
		return apiErr(err)
	}
	mine := map[string]bool{}
	for _, s := range subs {
		mine[s.CallbackURL] = true
	}
	for _, u := range p.callbacks.of(app) {
		mine[u] = true
	}
	eps := []push.EndpointState{}
	for _, e := range p.push.Endpoints() {
		if mine[e.CallbackURL] {
			eps = append(eps, e)
		}
	}
	writeJSON(w, http.StatusOK, eps)
	return nil
}

// callbackOwners remembers the command callbackUrls each app used, so that
// /doze/v1/endpoints shows an app its own. Kept in memory, at most
// maxCallbacksPerApp per app (the oldest forgotten).
type callbackOwners struct {
	mu sync.Mutex
	m  map[string][]string // appId → URLs, oldest first
}

const maxCallbacksPerApp = 256

func (c *callbackOwners) add(app, url string) {
	if url == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]string{}
	}
	urls := c.m[app]
	if i := slices.Index(urls, url); i >= 0 {
		urls = slices.Delete(urls, i, i+1)
	}
	if len(urls) >= maxCallbacksPerApp {
		urls = slices.Delete(urls, 0, 1)
	}
	c.m[app] = append(urls, url)
}

func (c *callbackOwners) of(app string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.m[app])
}
