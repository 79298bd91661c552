package transport_test

import (
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
)

// LWM-9: the in-memory ObservationStore passes the conformance suite.
func TestMemoryObservationStore(t *testing.T) {
	lwm2mtest.RunObservationStore(t, func(t *testing.T) transport.ObservationStore { return transport.NewMemoryObservationStore() })
}

// TestImportsServer checks the import rules of docs/architecture.md for package lwm2m
// (only it imports go-coap and pion; no sibling packages).
func TestImportsServer(t *testing.T) { deptest.Check(t) }
