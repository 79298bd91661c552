package lwm2mtest_test

import (
	"testing"

	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
)

func TestMemorySessionStoreConformance(t *testing.T) {
	lwm2mtest.RunSessionStore(t, func(t *testing.T) transport.SessionStore { return transport.NewMemorySessionStore(0) })
}

func TestMemoryRegistrationStoreConformance(t *testing.T) {
	lwm2mtest.RunRegistrationStore(t, func(t *testing.T) transport.RegistrationStore { return transport.NewMemoryRegistrationStore() })
}
