package push

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// ParseCallbackURL checks raw against the callback URL rules of PSH-2 (FAQ
// §5.4, §5.8, §5.9): scheme http or https, a host (IP address or domain
// name), an explicit port and a path. "http://IP:PORT/path" and
// "http://IP:PORT/" are valid, "http://IP:PORT" and "http://IP/path" are
// not. Each broken rule gives a *URLError wrapping its own sentinel:
// ErrURLSyntax, ErrURLScheme, ErrURLNoHost, ErrURLNoPort, ErrURLNoPath or
// ErrURLUserInfo. It does not resolve the host; Engine.CheckURL does.
func ParseCallbackURL(raw string) (*url.URL, error) {
	fail := func(err error, detail string) (*url.URL, error) {
		return nil, &URLError{URL: raw, Detail: detail, Err: err}
	}
	u, err := url.Parse(raw)
	if err != nil {
		detail := err.Error()
		if ue, ok := err.(*url.Error); ok {
			detail = ue.Err.Error()
		}
		if strings.Contains(detail, "first path segment") || strings.Contains(detail, "missing protocol scheme") {
			return fail(ErrURLScheme, "no scheme")
		}
		if strings.Contains(detail, "port") {
			return fail(ErrURLNoPort, detail)
		}
		return fail(ErrURLSyntax, detail)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return fail(ErrURLScheme, "no scheme")
	default:
		return fail(ErrURLScheme, "scheme "+u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return fail(ErrURLNoHost, "")
	}
	if u.User != nil {
		return fail(ErrURLUserInfo, "")
	}
	port := u.Port()
	if port == "" {
		return fail(ErrURLNoPort, "")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fail(ErrURLNoPort, "port "+port+" is not in 1–65535")
	}
	if u.Path == "" && u.RawPath == "" {
		return fail(ErrURLNoPath, "")
	}
	return u, nil
}

// origin returns the lower-case host:port of a parsed callback URL, the part
// that all URLs of one application share.
func origin(u *url.URL) string {
	return net.JoinHostPort(strings.ToLower(u.Hostname()), u.Port())
}

// Cloud metadata addresses refused by the SSRF guard (PSH-2). The IPv4 one
// is also link-local; the IPv6 one (AWS) is a unique-local address.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
}

// DeniedReason says why the SSRF guard refuses ip ("loopback", "link-local",
// "cloud metadata", "unspecified", "multicast"), or "" when ip is allowed.
// Private (RFC 1918, unique-local) addresses are allowed: platforms run in
// private networks. Config.Allow overrides the refusal for chosen prefixes.
func DeniedReason(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid address"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified():
		return "unspecified"
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return "cloud metadata"
		}
	}
	switch {
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	}
	return ""
}

// guard is the SSRF guard: it refuses denied addresses not covered by allow.
type guard struct {
	allow []netip.Prefix
}

// denied says why ip may not be reached, or "" when it may.
func (g guard) denied(ip netip.Addr) string {
	ip = ip.Unmap()
	reason := DeniedReason(ip)
	if reason == "" {
		return ""
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return ""
		}
	}
	return ip.String() + " is " + reason + "; add it to Config.Allow to permit it"
}

// check returns an error wrapping ErrAddressDenied when ip may not be reached.
func (g guard) check(ip netip.Addr) error {
	if why := g.denied(ip); why != "" {
		return fmt.Errorf("%w: %s", ErrAddressDenied, why)
	}
	return nil
}

// control is a net.Dialer Control function: it checks the address the
// socket is about to connect to, after DNS, so a name that resolved to a
// public address at subscription time cannot be re-pointed at a denied one
// (DNS rebinding, PSH-2).
func (g guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dial address %q: %v", ErrAddressDenied, address, err)
	}
	return g.check(ap.Addr())
}

// resolve checks u's host: an IP literal directly, a name after resolving
// every address it has.
func (g guard) resolve(ctx context.Context, r Resolver, u *url.URL, raw string) error {
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := g.denied(ip); why != "" {
			return &URLError{URL: raw, Detail: why, Err: ErrAddressDenied}
		}
		return nil
	}
	if r == nil {
		return nil
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return &URLError{URL: raw, Detail: err.Error(), Err: ErrResolve}
	}
	for _, ip := range ips {
		if why := g.denied(ip); why != "" {
			return &URLError{URL: raw, Detail: host + " resolves to " + why, Err: ErrAddressDenied}
		}
	}
	return nil
}
