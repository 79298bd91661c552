package postgres

import (
	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/otatest"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/push/pushtest"
	"testing"

	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/registry/registrytest"
)

func TestRegistryConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store { return openTest(t).Registry() })
}

func TestCommandsConformance(t *testing.T) {
	commandtest.Run(t, func(t *testing.T) command.Store { return openTest(t).Commands() })
}

func TestPushConformance(t *testing.T) {
	pushtest.Run(t, func(t *testing.T) push.Store { return openTest(t).Push() })
}

func TestOTAConformance(t *testing.T) {
	otatest.Run(t, func(t *testing.T) ota.Store { return openTest(t).OTA() })
}

func TestObservationsConformance(t *testing.T) {
	lwm2mtest.RunObservationStore(t, func(t *testing.T) lwm2m.ObservationStore { return openTest(t).Observations() })
}
