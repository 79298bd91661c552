package main

import (
	"net"
	"net/http"
)

// deviceAddress is one socket devices connect to. Host is empty when the
// platform listens on every address: a device then uses the host it was
// given for the platform (the simulator uses -api's).
type deviceAddress struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// deviceAddresses answers GET /doze/v1/deviceAddresses: where devices
// connect, for the sockets that are on (a simulator or a provisioning
// tool reads it rather than assume the default ports).
func (p *Platform) deviceAddresses(w http.ResponseWriter, _ *http.Request) error {
	out := map[string]deviceAddress{}
	add := func(name string, a net.Addr) {
		if da, ok := addressOf(a); ok {
			out[name] = da
		}
	}
	add("coap", p.lwm.UDPAddr())
	add("coaps", p.lwm.DTLSAddr())
	if p.bs != nil {
		add("bootstrap", p.bs.UDPAddr())
		add("bootstrapDtls", p.bs.DTLSAddr())
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// addressOf is a's host and port, the host empty for a wildcard address.
func addressOf(a net.Addr) (deviceAddress, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok || u == nil {
		return deviceAddress{}, false
	}
	da := deviceAddress{Port: u.Port}
	if u.IP != nil && !u.IP.IsUnspecified() {
		da.Host = u.IP.String()
	}
	return da, true
}
