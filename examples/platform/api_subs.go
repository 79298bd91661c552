package main

import (
	"net/http"

	"github.com/doze-io/doze/push"
)

func (p *Platform) subscribeAs(w http.ResponseWriter, r *http.Request, notifyType, url, secret string) error {
	nt, err := push.ParseNotifyType(notifyType)
	if err != nil {
		return apiErr(err)
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

func (p *Platform) endpoints(w http.ResponseWriter, r *http.Request) error {
	eps := p.push.Endpoints()
	if eps == nil {
		eps = []push.EndpointState{}
	}
	writeJSON(w, http.StatusOK, eps)
	return nil
}
