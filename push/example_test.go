package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/doze-io/doze/push"
)

// An application subscribes to device data, the engine runs, and a report
// with two services reaches the application server as two pushes.
func ExampleEngine() {
	got := make(chan string, 2)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
		w.WriteHeader(http.StatusOK)
	}))
	defer app.Close()

	e, err := push.New(push.NewMemoryStore(), push.Config{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, // the demo app runs on loopback
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	sub, err := e.Subscribe(ctx, push.Subscription{AppID: "app1", NotifyType: push.DeviceDataChanged, CallbackURL: app.URL + "/data"})
	if err != nil {
		panic(err)
	}
	fmt.Println("subscribed:", sub.NotifyType)

	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { e.Close(); <-done }()

	n, err := e.PublishReport(ctx, "app1", push.Report{
		DeviceID: "d1", GatewayID: "d1",
		Services: []push.ServiceData{
			{ServiceID: "Battery", ServiceType: "Battery", Data: json.RawMessage(`{"batteryLevel":66}`), EventTime: "20170211T034003Z"},
			{ServiceID: "Meter", ServiceType: "Meter", Data: json.RawMessage(`{"volume":1.5}`), EventTime: "20170211T034003Z"},
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("enqueued:", n)
	a, b := <-got, <-got
	if a > b { // two tries in flight at once may arrive in either order
		a, b = b, a
	}
	fmt.Println(a)
	fmt.Println(b)
	// Output:
	// subscribed: deviceDataChanged
	// enqueued: 2
	// {"notifyType":"deviceDataChanged","requestId":null,"deviceId":"d1","gatewayId":"d1","service":{"serviceId":"Battery","serviceType":"Battery","data":{"batteryLevel":66},"eventTime":"20170211T034003Z"}}
	// {"notifyType":"deviceDataChanged","requestId":null,"deviceId":"d1","gatewayId":"d1","service":{"serviceId":"Meter","serviceType":"Meter","data":{"volume":1.5},"eventTime":"20170211T034003Z"}}
}

// A command's state change goes to the command's callbackUrl without a
// subscription (CMD-6); the webhook-id names the message on every try.
func ExampleEngine_Send() {
	got := make(chan *http.Request, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.WriteHeader(http.StatusOK)
	}))
	defer app.Close()
	e, err := push.New(push.NewMemoryStore(), push.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { e.Close(); <-done }()

	// The body is the platform's to compose; here a command callback (CMD-6).
	body := []byte(`{"deviceId":"d1","commandId":"c1","result":{"resultCode":"SUCCESSFUL","resultDetail":{"result":0}}}`)
	id, err := e.Send(ctx, app.URL+"/commands", body, "")
	if err != nil {
		panic(err)
	}
	r := <-got
	fmt.Println(r.Method, r.URL.Path, r.Header.Get(push.HeaderID) == id)
	// Output:
	// POST /commands true
}

// Each broken rule of PSH-2 has its own error.
func ExampleParseCallbackURL() {
	for _, u := range []string{
		"http://203.0.113.7:8080/path",
		"http://203.0.113.7:8080/",
		"http://203.0.113.7:8080",
		"http://203.0.113.7/path",
		"ftp://203.0.113.7:21/path",
	} {
		_, err := push.ParseCallbackURL(u)
		fmt.Println(u, "→", err)
	}
	// Output:
	// http://203.0.113.7:8080/path → <nil>
	// http://203.0.113.7:8080/ → <nil>
	// http://203.0.113.7:8080 → push: callback URL has no path (end it with / at least): "http://203.0.113.7:8080"; want http(s)://host:port/path
	// http://203.0.113.7/path → push: callback URL has no port (write http://host:port/path): "http://203.0.113.7/path"; want http(s)://host:port/path
	// ftp://203.0.113.7:21/path → push: callback URL scheme must be http or https: "ftp://203.0.113.7:21/path" (scheme ftp); want http(s)://host:port/path
}

// A receiver checks a signed push with Verify (Standard Webhooks).
func ExampleVerify() {
	secret := push.Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	body := []byte(`{"test": 2432232314}`)
	ts := time.Unix(1614265330, 0)
	sig, _ := push.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
	fmt.Println(sig)

	h := http.Header{}
	h.Set(push.HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set(push.HeaderTimestamp, "1614265330")
	h.Set(push.HeaderSignature, sig)
	fmt.Println(push.Verify(secret, h, body, ts, 5*time.Minute))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// <nil>
}
