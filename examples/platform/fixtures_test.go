package main

import (
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

// enableHistory turns on history for every app of tp.
func (tp *testPlatform) enableHistory() {
	tp.auth.mu.Lock()
	for _, a := range tp.auth.apps {
		a.mu.Lock()
		a.app.HistoryEnabled = true
		a.mu.Unlock()
	}
	tp.auth.mu.Unlock()
}

// demoReport is a meter reading of the three services of the demo product
// (pulseCount 77, batteryLevel 42), encoded with the demo codec.
func demoReport(t *testing.T) []byte {
	t.Helper()
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	report, err := cd.Encode(&codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 12.345, "flowRate": 1.5, "pulseCount": 77}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 42}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
	}})
	require.NoError(t, err)
	return report
}

// historyAnswer is an answer of deviceDataHistory, as far as the tests
// read it.
type historyAnswer struct {
	TotalCount int `json:"totalCount"`
	DTOs       []struct {
		ServiceID string         `json:"serviceId"`
		Data      map[string]any `json:"data"`
	} `json:"deviceDataHistoryDTOs"`
}
