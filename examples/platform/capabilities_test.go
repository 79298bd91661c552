package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The keys docs/api.md gives each object of the deviceCapabilities answer (the
// original platform's shape, key for key).
var capabilityKeys = map[string][]string{
	"answer":   {"deviceCapabilities"},
	"device":   {"deviceId", "serviceCapabilities"},
	"service":  {"serviceId", "serviceType", "option", "description", "commands", "properties"},
	"command":  {"commandName", "paras", "responses"},
	"para":     {"paraName", "dataType", "required", "min", "max", "step", "maxLength", "unit", "enumList"},
	"response": {"responseName", "paras"},
	"property": {"propertyName", "dataType", "required", "min", "max", "step", "maxLength", "method", "unit", "enumList"},
}

func requireKeys(t *testing.T, what string, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s is a JSON object, got %T", what, v)
	var got []string
	for k := range m {
		got = append(got, k)
	}
	want := slices.Clone(capabilityKeys[what])
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got, "keys of a %s object in deviceCapabilities", what)
	return m
}

func list(t *testing.T, what string, v any) []any {
	t.Helper()
	l, ok := v.([]any)
	require.True(t, ok, "%s is a JSON array (never null), got %T", what, v)
	return l
}

// TestCapabilitiesShape checks deviceCapabilities for the demo product
// against the original platform's shape, key for key, and against the
// golden file testdata/capabilities.golden.json (go test -update rewrites
// it).
func TestCapabilitiesShape(t *testing.T) {
	tp := startPlatform(t)
	id, _ := registerDevice(t, tp, "868000000000301")
	var raw json.RawMessage
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.1.0/deviceCapabilities?deviceId="+id, nil, &raw))

	var doc any
	require.NoError(t, json.Unmarshal(raw, &doc))
	ans := requireKeys(t, "answer", doc)
	devs := list(t, "deviceCapabilities", ans["deviceCapabilities"])
	require.Len(t, devs, 1)
	dev := requireKeys(t, "device", devs[0])
	require.Equal(t, id, dev["deviceId"])
	services := list(t, "serviceCapabilities", dev["serviceCapabilities"])
	require.Len(t, services, 3, "Battery, Connectivity and Meter")
	var sawCommand, sawResponse, sawProperty bool
	for _, s := range services {
		sm := requireKeys(t, "service", s)
		for _, c := range list(t, "commands", sm["commands"]) {
			cm := requireKeys(t, "command", c)
			sawCommand = true
			for _, p := range list(t, "paras", cm["paras"]) {
				requireKeys(t, "para", p)
			}
			for _, r := range list(t, "responses", cm["responses"]) {
				rm := requireKeys(t, "response", r)
				sawResponse = true
				for _, p := range list(t, "paras", rm["paras"]) {
					requireKeys(t, "para", p)
				}
			}
		}
		for _, p := range list(t, "properties", sm["properties"]) {
			requireKeys(t, "property", p)
			sawProperty = true
		}
	}
	require.True(t, sawCommand && sawResponse && sawProperty, "the demo product has commands, responses and properties")

	// The golden file, with the generated deviceId replaced.
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, bytes.ReplaceAll(raw, []byte(id), []byte("DEVICE-ID")), "", "  "))
	pretty.WriteByte('\n')
	golden := filepath.Join("testdata", "capabilities.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, pretty.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -run TestCapabilitiesShape -update to write the golden file")
	require.Equal(t, strings.TrimSpace(string(want)), strings.TrimSpace(pretty.String()),
		"deviceCapabilities of the demo product differs from %s", golden)
}
