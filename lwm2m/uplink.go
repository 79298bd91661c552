package lwm2m

import (
	"fmt"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
)

// checkLinks checks a registration body is CoRE link format enough to keep.
// TODO(model merge): replace with ParseLinks from linkformat.go.
func checkLinks(body string) error {
	body = strings.TrimSpace(body)
	if body == "" {
		return nil
	}
	for i, l := range strings.Split(body, ",") {
		if !strings.HasPrefix(strings.TrimSpace(l), "<") || !strings.Contains(l, ">") {
			return fmt.Errorf("link %d %q is not <path>;attrs", i+1, l)
		}
	}
	return nil
}

// hasInstance reports whether the registration body lists /obj/inst.
func hasInstance(body string, obj, inst int) bool {
	want := fmt.Sprintf("</%d/%d>", obj, inst)
	for _, l := range strings.Split(body, ",") {
		l = strings.TrimSpace(l)
		if i := strings.IndexByte(l, '>'); i >= 0 {
			l = l[:i+1]
		}
		if l == want {
			return true
		}
	}
	return false
}

type uplinkValue struct {
	path string
	data []byte
}

// uplinkValues extracts the application bytes of a /19/0/0 or /t/d
// notification or a Send.
func uplinkValues(path string, m *message.Message) []uplinkValue {
	return []uplinkValue{{path: path, data: m.Payload}}
}
