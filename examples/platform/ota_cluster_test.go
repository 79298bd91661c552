package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doze-io/doze/ota"
	"github.com/stretchr/testify/require"
)

// TestUpgradeStepTwoNodes (issue 18, CLU-2 for OTA): two platform nodes on
// one PostgreSQL schema both hold an upgrade task (created through node 1
// before node 2 started, so node 2 loads it). Its devices never come
// online; at the window's end each sub-operation fails exactly once: one
// swUpgradeResultNotify per device, not one per node.
func TestUpgradeStepTwoNodes(t *testing.T) {
	dsn := pgStore(t)
	ctx := context.Background()
	n1 := startPlatform(t, func(c *Config) { c.Store, c.NodeID = dsn, "ota-1" })
	hook := newSink(t)
	require.Equal(t, http.StatusCreated, n1.call(t, "POST", "/iodm/app/sub/v1.1.0/subscribe",
		map[string]any{"notifyType": "swUpgradeResultNotify", "callbackurl": hook.srv.URL + "/ota"}, nil))
	devs := make([]string, 4)
	for i := range devs {
		devs[i], _ = registerDevice(t, n1, fmt.Sprintf("86833303000%04d", 950+i))
	}
	image := make([]byte, 2000)
	rand.Read(image)
	sw := n1.upload(t, image, map[string]string{"fileType": "softwarePackage", "version": "1.1.0", "deviceType": demoDeviceType,
		"manufacturerName": "Doze Labs", "model": demoModel, "protocolType": "LWM2M", "sourceVersions": "1.0.0"})
	const apiTime = "20060102T150405Z"
	now := time.Now().UTC()
	end := now.Add(15 * time.Second)
	var op struct {
		OperationID string `json:"operationId"`
	}
	require.Equal(t, http.StatusCreated, n1.call(t, "POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade",
		map[string]any{"fileId": sw, "targets": map[string]any{"devices": devs}, "policy": map[string]any{"executeType": "custom",
			"startTime": now.Add(-time.Minute).Format(apiTime), "endTime": end.Format(apiTime)}}, &op))

	// Package contents are files of each node's data directory: node 2
	// gets a copy, as an operator shares the directory.
	dir2 := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir2, "packages"), 0o700))
	b, err := os.ReadFile(filepath.Join(n1.cfg.DataDir, "packages", sw))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir2, "packages", sw), b, 0o600))
	n2 := startPlatform(t, func(c *Config) { c.Store, c.NodeID, c.DataDir = dsn, "ota-2", dir2 })
	require.Equal(t, "ota-2", n2.claimNode())
	subs, err := n2.ota.SubTasks(ctx, op.OperationID)
	require.NoError(t, err, "node 2 holds the task")
	require.Len(t, subs, len(devs))
	require.True(t, time.Now().Before(end.Truncate(time.Second)), "node 2 started before the window's end (the machine is too slow for this test)")

	fails := func() map[string]int {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		out := map[string]int{}
		for _, p := range hook.got {
			if p["notifyType"] == "swUpgradeResultNotify" && p["swUpgradeResult"] == "FAIL" {
				out[fmt.Sprint(p["deviceId"])]++
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(fails()) == len(devs) }, 60*time.Second, 50*time.Millisecond,
		"every device's online wait timed out at the window's end")
	time.Sleep(3 * time.Second) // a second node's notification would come by now
	got := fails()
	for _, d := range devs {
		require.Equal(t, 1, got[d], "one swUpgradeResultNotify for device %s, from one node", d)
	}
	// The node that did not time a sub-operation out reads it back
	// within a quarter of its 1-minute lease and follows it.
	for _, n := range []*testPlatform{n1, n2} {
		require.Eventually(t, func() bool {
			subs, err := n.ota.SubTasks(ctx, op.OperationID)
			if err != nil || len(subs) != len(devs) {
				return false
			}
			for _, s := range subs {
				if s.State != ota.SubFail || s.Reason != ota.ReasonOnlineTimeout {
					return false
				}
			}
			task, err := n.ota.Task(ctx, op.OperationID)
			return err == nil && task.State == ota.TaskFailed
		}, 40*time.Second, 100*time.Millisecond, "node %s sees every sub-operation failed and the operation failed", n.cfg.NodeID)
	}
	got = fails()
	for _, d := range devs {
		require.Equal(t, 1, got[d], "still one swUpgradeResultNotify for device %s", d)
	}
}
