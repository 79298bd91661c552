package command_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doze-io/doze/command"
)

// A DRX device gets its command at once; its ACK and its response move the
// command to DELIVERED and SUCCESSFUL, and every move reaches the Listener.
func Example() {
	sent := make(chan command.Command, 1)
	sender := command.SenderFunc(func(ctx context.Context, c command.Command) error {
		sent <- c // a real Sender encodes with the codec and writes /19/1/0
		return nil
	})
	listener := command.ListenerFunc(func(c command.Command) {
		n := c.Notification()
		fmt.Println(c.ID, n.Result.ResultCode)
	})
	e, err := command.New(command.NewMemStore(), sender, listener, command.Config{
		DefaultMode: command.Mode{Kind: command.DRX},
		NewID:       func() string { return "cmd-1" },
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	go e.Run(ctx)
	defer e.Close()

	_, err = e.Submit(ctx, command.Request{
		DeviceID: "lamp-7",
		Command:  command.Body{ServiceID: "Light", Method: "SWITCH", Paras: json.RawMessage(`{"on":true}`)},
	})
	if err != nil {
		panic(err)
	}
	c := <-sent
	// The transport saw the CoAP ACK, the codec decoded the response.
	e.Acked(ctx, c.DeviceID, c.ID)
	e.Responded(ctx, c.DeviceID, command.Response{Mid: c.Mid(), Body: json.RawMessage(`{"result":0}`)})
	// Output:
	// cmd-1 PENDING
	// cmd-1 SENT
	// cmd-1 DELIVERED
	// cmd-1 SUCCESSFUL
}

// Mode timing is arithmetic: the next paging window of an eDRX device and
// the timeout of a command sent to it, from the device's own timers.
func ExampleMode_Window() {
	m := command.Mode{Kind: command.EDRX, Cycle: 163840 * time.Millisecond, PagingWindow: 10240 * time.Millisecond}
	lastUplink := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	now := lastUplink.Add(5 * time.Minute)
	start, end, _ := m.Window(now, lastUplink)
	fmt.Println("window:", start.Format("15:04:05.00"), "to", end.Format("15:04:05.00"))
	fmt.Println("timeout if sent then:", m.Deadline(start).Sub(start))
	psm := command.Mode{Kind: command.PSM, ActiveTime: 10 * time.Second}
	fmt.Println("PSM reachable 5 s after uplink:", psm.Reachable(lastUplink.Add(5*time.Second), lastUplink))
	fmt.Println("PSM reachable 1 min after uplink:", psm.Reachable(lastUplink.Add(time.Minute), lastUplink))
	// Output:
	// window: 08:05:27.68 to 08:05:37.92
	// timeout if sent then: 7m27.68s
	// PSM reachable 5 s after uplink: true
	// PSM reachable 1 min after uplink: false
}

// The body pushed to a command's callbackUrl (CMD-6).
func ExampleCommand_Notification() {
	c := command.Command{ID: "cmd-9", DeviceID: "meter-1", Status: command.Successful, Result: json.RawMessage(`{"valve":"closed"}`)}
	b, _ := json.Marshal(c.Notification())
	fmt.Println(string(b))
	// Output:
	// {"deviceId":"meter-1","commandId":"cmd-9","result":{"resultCode":"SUCCESSFUL","resultDetail":{"valve":"closed"}}}
}

// An immediate command to a sleeping PSM device fails at once, with the
// reason (CMD-2).
func ExampleEngine_Submit_immediate() {
	e, _ := command.New(command.NewMemStore(), command.SenderFunc(func(context.Context, command.Command) error { return nil }), nil, command.Config{})
	now := int64(0)
	c, err := e.Submit(context.Background(), command.Request{
		DeviceID: "meter-1", ExpireTime: &now,
		Command: command.Body{ServiceID: "Valve", Method: "CLOSE", Paras: json.RawMessage(`{"force":1}`)},
	})
	fmt.Println(c.Status, "-", c.Reason)
	fmt.Println(err != nil)
	// Output:
	// FAILED - device not reachable: PSM mode and no uplink seen yet
	// true
}
