package registry_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/doze-io/doze/registry"
)

var nodeIDSeeds = []string{"861234567890123", "urn:imei:861234567890123", "URN:IMEI:1", "urn:imei:", "", "AA:BB:CC:DD:EE:FF", "86 1", "a\x00b", strings.Repeat("8", 257), "\xff"}

// FuzzRegisterNodeID: any nodeId either registers (and is then found by
// both of its forms) or fails with a *FieldError; nothing panics.
func FuzzRegisterNodeID(f *testing.F) {
	for _, s := range nodeIDSeeds {
		f.Add(s)
	}
	r, err := registry.New(registry.NewMemStore(), catalog, registry.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, nodeID string) {
		d, err := r.Register(ctx, registry.Enrollment{NodeID: nodeID, Info: meterInfo})
		if err != nil {
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != "nodeId" {
				t.Fatalf("Register(%q): %v, want a nodeId *FieldError", nodeID, err)
			}
			if utf8.RuneCountInString(err.Error()) > 400 {
				t.Fatalf("error too long: %d", len(err.Error()))
			}
			return
		}
		defer r.Delete(ctx, d.ID)
		key := registry.NodeKey(nodeID)
		for _, form := range []string{key, "urn:imei:" + key} {
			got, err := r.GetByNodeID(ctx, form)
			if err != nil || got.ID != d.ID {
				t.Fatalf("GetByNodeID(%q) after Register(%q): %v, %v", form, nodeID, got.ID, err)
			}
		}
	})
}
