package lwm2mtest_test

import (
	"testing"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
)

func TestMemorySessionStoreConformance(t *testing.T) {
	lwm2mtest.RunSessionStore(t, func(t *testing.T) lwm2m.SessionStore { return lwm2m.NewMemorySessionStore(0) })
}

func TestMemoryRegistrationStoreConformance(t *testing.T) {
	lwm2mtest.RunRegistrationStore(t, func(t *testing.T) lwm2m.RegistrationStore { return lwm2m.NewMemoryRegistrationStore() })
}
