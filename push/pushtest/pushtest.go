// Package pushtest is the conformance suite for push.Store implementations.
// Every implementation (push.MemoryStore, the bbolt one in package store,
// one a user writes) must pass it:
//
//	func TestStore(t *testing.T) {
//		pushtest.Run(t, func(t *testing.T) push.Store { return push.NewMemoryStore() })
//	}
package pushtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/push"
	"github.com/stretchr/testify/require"
)

// Run runs every conformance test against stores made by newStore; each
// test gets a fresh, empty store.
func Run(t *testing.T, newStore func(t *testing.T) push.Store) {
	t.Run("SubscriptionRoundTrip", func(t *testing.T) { testSubscriptionRoundTrip(t, newStore(t)) })
	t.Run("SubscriptionNotFound", func(t *testing.T) { testSubscriptionNotFound(t, newStore(t)) })
	t.Run("SubscriptionsFilter", func(t *testing.T) { testSubscriptionsFilter(t, newStore(t)) })
	t.Run("SubscriptionReplace", func(t *testing.T) { testSubscriptionReplace(t, newStore(t)) })
	t.Run("DeleteSubscriptions", func(t *testing.T) { testDeleteSubscriptions(t, newStore(t)) })
	t.Run("MessagesRoundTrip", func(t *testing.T) { testMessagesRoundTrip(t, newStore(t)) })
	t.Run("MessagesOrder", func(t *testing.T) { testMessagesOrder(t, newStore(t)) })
	t.Run("MessageReplace", func(t *testing.T) { testMessageReplace(t, newStore(t)) })
	t.Run("DeleteMessages", func(t *testing.T) { testDeleteMessages(t, newStore(t)) })
	t.Run("MessagesLongURL", func(t *testing.T) { testMessagesLongURL(t, newStore(t)) })
	t.Run("ConcurrentPutDelete", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func sub(id, app string, typ push.NotifyType, url string) push.Subscription {
	return push.Subscription{ID: id, AppID: app, NotifyType: typ, CallbackURL: url, Created: t0}
}

func msg(url, id string) push.Message {
	return push.Message{
		ID: id, URL: url, Body: []byte(`{"id":"` + id + `"}`),
		NotifyType: push.DeviceDataChanged, SubscriptionID: "s-" + id,
		Created: t0, Expires: t0.Add(10 * time.Minute),
	}
}

func testSubscriptionRoundTrip(t *testing.T, st push.Store) {
	ctx := context.Background()
	s := sub("0001", "app1", push.DeviceAdded, "http://192.0.2.1:8080/cb")
	s.Secret = "whsec_c2VjcmV0"
	require.NoError(t, st.PutSubscription(ctx, s))
	got, err := st.Subscription(ctx, "0001")
	require.NoError(t, err, "Subscription(0001) after PutSubscription")
	require.Equal(t, s.ID, got.ID)
	require.Equal(t, s.AppID, got.AppID)
	require.Equal(t, s.NotifyType, got.NotifyType)
	require.Equal(t, s.CallbackURL, got.CallbackURL)
	require.Equal(t, s.Secret, got.Secret, "the secret must be kept (it signs pushes)")
	require.True(t, s.Created.Equal(got.Created), "Created: got %v, want %v", got.Created, s.Created)
}

func testSubscriptionNotFound(t *testing.T, st push.Store) {
	_, err := st.Subscription(context.Background(), "nope")
	require.ErrorIs(t, err, push.ErrNotFound)
}

func testSubscriptionsFilter(t *testing.T, st push.Store) {
	ctx := context.Background()
	a := "http://192.0.2.1:8080/a"
	b := "http://192.0.2.1:8080/b"
	for _, s := range []push.Subscription{
		sub("03", "app1", push.DeviceDataChanged, a),
		sub("01", "app1", push.DeviceDatasChanged, a),
		sub("02", "app1", push.DeviceDataChanged, b),
		sub("04", "app2", push.DeviceDataChanged, a),
		sub("05", "", push.BindDevice, b),
	} {
		require.NoError(t, st.PutSubscription(ctx, s))
	}
	ids := func(f push.Filter) []string {
		t.Helper()
		subs, err := st.Subscriptions(ctx, f)
		require.NoError(t, err)
		out := []string{}
		for _, s := range subs {
			out = append(out, s.ID)
		}
		return out
	}
	require.Equal(t, []string{"01", "02", "03"}, ids(push.Filter{AppID: "app1"}), "all of app1, ordered by ID")
	require.Equal(t, []string{"02", "03"}, ids(push.Filter{AppID: "app1", NotifyType: push.DeviceDataChanged}))
	require.Equal(t, []string{"01", "03"}, ids(push.Filter{AppID: "app1", CallbackURL: a}))
	require.Equal(t, []string{"03"}, ids(push.Filter{AppID: "app1", NotifyType: push.DeviceDataChanged, CallbackURL: a}))
	require.Equal(t, []string{"05"}, ids(push.Filter{}), "AppID \"\" is an application of its own")
	require.Equal(t, []string{"01", "02", "03", "04", "05"}, ids(push.Filter{AnyApp: true}))
	require.Equal(t, []string{"03", "04"}, ids(push.Filter{AnyApp: true, NotifyType: push.DeviceDataChanged, CallbackURL: a}))
	require.Equal(t, []string{}, ids(push.Filter{AppID: "app3"}))
}

func testSubscriptionReplace(t *testing.T, st push.Store) {
	ctx := context.Background()
	s := sub("01", "app1", push.DeviceAdded, "http://192.0.2.1:8080/a")
	require.NoError(t, st.PutSubscription(ctx, s))
	s.Secret = "raw-secret"
	require.NoError(t, st.PutSubscription(ctx, s))
	all, err := st.Subscriptions(ctx, push.Filter{AnyApp: true})
	require.NoError(t, err)
	require.Len(t, all, 1, "PutSubscription with an existing ID replaces it")
	require.Equal(t, push.Secret("raw-secret"), all[0].Secret)

	// Replacing with another type and app moves it in every filter.
	s.NotifyType, s.AppID = push.DeviceDeleted, "app2"
	require.NoError(t, st.PutSubscription(ctx, s))
	old, err := st.Subscriptions(ctx, push.Filter{AppID: "app1", NotifyType: push.DeviceAdded})
	require.NoError(t, err)
	require.Empty(t, old, "no longer found under its old app and type")
	now, err := st.Subscriptions(ctx, push.Filter{AppID: "app2", NotifyType: push.DeviceDeleted})
	require.NoError(t, err)
	require.Len(t, now, 1)
}

func testDeleteSubscriptions(t *testing.T, st push.Store) {
	ctx := context.Background()
	for _, id := range []string{"01", "02", "03"} {
		require.NoError(t, st.PutSubscription(ctx, sub(id, "app1", push.DeviceAdded, "http://192.0.2.1:8080/"+id)))
	}
	n, err := st.DeleteSubscriptions(ctx, "01", "03", "99")
	require.NoError(t, err)
	require.Equal(t, 2, n, "DeleteSubscriptions counts only existing ones")
	_, err = st.Subscription(ctx, "01")
	require.ErrorIs(t, err, push.ErrNotFound)
	_, err = st.Subscription(ctx, "02")
	require.NoError(t, err)
	left, err := st.Subscriptions(ctx, push.Filter{AppID: "app1", NotifyType: push.DeviceAdded})
	require.NoError(t, err)
	require.Len(t, left, 1, "deleted subscriptions leave every filter")
	require.Equal(t, "02", left[0].ID)
	n, err = st.DeleteSubscriptions(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func testMessagesRoundTrip(t *testing.T, st push.Store) {
	ctx := context.Background()
	m := msg("http://192.0.2.1:8080/a", "msg_01")
	m.Secret = "whsec_c2VjcmV0"
	m.Attempts = 3
	require.NoError(t, st.PutMessages(ctx, m))
	got, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	g := got[0]
	require.Equal(t, m.ID, g.ID)
	require.Equal(t, m.URL, g.URL)
	require.Equal(t, m.Body, g.Body)
	require.Equal(t, m.Secret, g.Secret)
	require.Equal(t, m.NotifyType, g.NotifyType)
	require.Equal(t, m.SubscriptionID, g.SubscriptionID)
	require.True(t, m.Created.Equal(g.Created), "Created: got %v want %v", g.Created, m.Created)
	require.True(t, m.Expires.Equal(g.Expires), "Expires: got %v want %v", g.Expires, m.Expires)
	require.Zero(t, g.Attempts, "Attempts is not stored")

	// The caller may reuse its buffer: the store must have copied it.
	m.Body[2] = 'X'
	got, err = st.Messages(ctx)
	require.NoError(t, err)
	require.Equal(t, `{"id":"msg_01"}`, string(got[0].Body))
}

func testMessagesOrder(t *testing.T, st push.Store) {
	ctx := context.Background()
	a, b := "http://192.0.2.1:8080/a", "http://192.0.2.1:8080/b"
	require.NoError(t, st.PutMessages(ctx, msg(b, "msg_02"), msg(a, "msg_03"), msg(b, "msg_01")))
	require.NoError(t, st.PutMessages(ctx, msg(a, "msg_01")))
	got, err := st.Messages(ctx)
	require.NoError(t, err)
	var keys []string
	for _, m := range got {
		keys = append(keys, m.URL+" "+m.ID)
	}
	require.Equal(t, []string{a + " msg_01", a + " msg_03", b + " msg_01", b + " msg_02"}, keys, "ordered by URL, then ID")
}

func testMessageReplace(t *testing.T, st push.Store) {
	ctx := context.Background()
	m := msg("http://192.0.2.1:8080/a", "msg_01")
	require.NoError(t, st.PutMessages(ctx, m))
	m.Body = []byte(`{"v":2}`)
	require.NoError(t, st.PutMessages(ctx, m))
	got, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1, "same URL and ID replaces")
	require.Equal(t, `{"v":2}`, string(got[0].Body))
}

func testDeleteMessages(t *testing.T, st push.Store) {
	ctx := context.Background()
	a, b := "http://192.0.2.1:8080/a", "http://192.0.2.1:8080/b"
	require.NoError(t, st.PutMessages(ctx, msg(a, "msg_01"), msg(a, "msg_02"), msg(b, "msg_01")))
	// Deleting needs URL and ID: msg_01 of b stays when a's goes.
	require.NoError(t, st.DeleteMessages(ctx, msg(a, "msg_01"), msg(a, "msg_99")))
	got, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, a, got[0].URL)
	require.Equal(t, "msg_02", got[0].ID)
	require.Equal(t, b, got[1].URL)
	require.NoError(t, st.DeleteMessages(ctx))
}

// testMessagesLongURL: how long a URL is does not decide whether its
// messages can be stored (SEC-6; keys of a URL once hit a key-size limit and
// every push of the application was lost). URLs of 64 KiB, and two that
// differ only in their last byte, are kept apart.
func testMessagesLongURL(t *testing.T, st push.Store) {
	ctx := context.Background()
	base := "http://192.0.2.1:8080/" + strings.Repeat("p", 64<<10)
	a, b := base+"a", base+"b"
	require.NoError(t, st.PutMessages(ctx, msg(a, "msg_01"), msg(b, "msg_01"), msg(b, "msg_02")))
	got, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, a, got[0].URL)
	require.Equal(t, b, got[1].URL)
	require.Equal(t, "msg_02", got[2].ID)
	require.NoError(t, st.DeleteMessages(ctx, msg(b, "msg_01"), msg(b, "msg_02")))
	got, err = st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, a, got[0].URL)
}

func testConcurrent(t *testing.T, st push.Store) {
	ctx := context.Background()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			url := fmt.Sprintf("http://192.0.2.1:8080/%d", w%3)
			for i := range each {
				m := msg(url, fmt.Sprintf("msg_%02d_%03d", w, i))
				if err := st.PutMessages(ctx, m); err != nil {
					errs <- err
					return
				}
				if i%2 == 1 {
					if err := st.DeleteMessages(ctx, m); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, errors.Join(collect(errs)...))
	got, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, got, workers*((each+1)/2), "every even-numbered message stays")
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}
