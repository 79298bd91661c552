package store

import (
	"testing"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/forward/forwardtest"
	"github.com/doze-io/doze/push"
)

func TestForwardConformance(t *testing.T) {
	forwardtest.Run(t, func(t *testing.T) forward.Store { return openTemp(t, nil).Forward() })
}

// A report's forwarding messages are written with it, and stay apart from
// the push outbox.
func TestSaveUplinkForward(t *testing.T) {
	db := openTemp(t, nil)
	fwd := push.Message{ID: "rule_1", URL: "rule://r/0", Body: []byte(`{}`)}
	hook := push.Message{ID: "rule_2", URL: "http://10.0.0.1:80/x", Body: []byte(`{}`)}
	if err := db.SaveUplink(Uplink{DeviceID: "d", Messages: []push.Message{hook}, Forward: []push.Message{fwd}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Forward().Messages(t.Context())
	if err != nil || len(got) != 1 || got[0].ID != "rule_1" || got[0].URL != "rule://r/0" {
		t.Fatalf("forwarding outbox: %+v, %v", got, err)
	}
	pushed, err := db.Push().Messages(t.Context())
	if err != nil || len(pushed) != 1 || pushed[0].ID != "rule_2" {
		t.Fatalf("push outbox: %+v, %v (want the webhook message only)", pushed, err)
	}
	// A bad message fails the whole uplink: nothing is written.
	if err := db.SaveUplink(Uplink{DeviceID: "d", Messages: []push.Message{{ID: "x2", URL: "http://10.0.0.1:80/x"}}, Forward: []push.Message{{ID: "", URL: "rule://r/0"}}}); err == nil {
		t.Fatal("an uplink with a forwarding message without an id was stored")
	}
	if pushed, _ := db.Push().Messages(t.Context()); len(pushed) != 1 {
		t.Fatalf("a refused uplink left %d push messages, want 1", len(pushed))
	}
}
