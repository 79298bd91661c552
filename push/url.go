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

// MaxURLLength bounds a callback URL, in bytes (SEC-3): the common limit of
// browsers and HTTP servers, far above any real callback.
const MaxURLLength = 2048

// ParseCallbackURL checks raw against the callback URL rules of PSH-2 (FAQ
// §5.4, §5.8, §5.9): at most MaxURLLength bytes, scheme http or https, a
// host (IP address or domain name), an explicit port and a path.
// "http://IP:PORT/path" and "http://IP:PORT/" are valid, "http://IP:PORT"
// and "http://IP/path" are not. Each broken rule gives a *URLError wrapping
// its own sentinel: ErrURLTooLong, ErrURLSyntax, ErrURLScheme,
// ErrURLNoHost, ErrURLNoPort, ErrURLNoPath or ErrURLUserInfo. A host that
// ends in a number but is not a dotted-decimal IPv4 address (2130706433,
// 0x7f.1, 0177.0.0.1, 127.1) is ErrURLSyntax: resolvers read such forms
// differently, so the SSRF guard could not tell where they lead. It does
// not resolve the host; Engine.CheckURL does.
func ParseCallbackURL(raw string) (*url.URL, error) {
	fail := func(err error, detail string) (*url.URL, error) {
		return nil, &URLError{URL: raw, Detail: detail, Err: err}
	}
	if len(raw) > MaxURLLength {
		return fail(ErrURLTooLong, "") // the message gives the length
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
	if h := u.Hostname(); endsInNumber(h) {
		if _, err := netip.ParseAddr(h); err != nil {
			return fail(ErrURLSyntax, fmt.Sprintf("host %q ends in a number but is not an IPv4 address written a.b.c.d in decimal", h))
		}
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

// endsInNumber reports whether host's last label (ignoring one trailing
// dot) is a number in decimal, octal or hex: the WHATWG URL test for a
// host meant as an IPv4 address. No DNS top-level domain is numeric.
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
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
// "cloud metadata", "unspecified", "this network", "broadcast",
// "multicast"), or "" when ip is allowed. An IPv6 address that carries an
// IPv4 address for a translator or tunnel that may deliver to it (IPv4-
// mapped, IPv4-compatible ::a.b.c.d, SIIT ::ffff:0:a.b.c.d, NAT64
// 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32) is
// judged by that IPv4 address too, and the reason names it. Private
// (RFC 1918, unique-local) addresses are allowed: platforms run in private
// networks. Config.Allow overrides the refusal for chosen prefixes.
func DeniedReason(ip netip.Addr) string {
	ip = ip.Unmap()
	if r := deniedDirect(ip); r != "" || !ip.Is6() {
		return r
	}
	for _, e := range embeddedIPv4(ip) {
		if thisNetwork.Contains(e.v4) {
			// Not a destination a translator or tunnel delivers to, and
			// what the wrong readings of 64:ff9b:1::/48 mostly give.
			continue
		}
		if r := deniedDirect(e.v4); r != "" {
			return r + " (it embeds " + e.v4.String() + ", " + e.how + ")"
		}
	}
	return ""
}

// deniedDirect judges ip by its own value.
func deniedDirect(ip netip.Addr) string {
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
	case thisNetwork.Contains(ip):
		return "this network" // 0.0.0.0/8: Linux connects 0.x to the host itself
	case ip == broadcast:
		return "broadcast"
	}
	return ""
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

// An embedding is one place an IPv6 prefix carries an IPv4 address.
type embedding struct {
	prefix netip.Prefix
	how    string
	at     []int // the four bytes of the IPv4 address, in order
	xor    byte  // Teredo obscures the client address
}

// embeddings lists the IPv6 prefixes that carry IPv4 addresses. RFC 8215's
// local-use NAT64 prefix 64:ff9b:1::/48 may be cut at /48, /56, /64 or /96
// (RFC 6052 §2.2, which skips byte 8); every reading is checked, so an
// operator whose /96 sits on bits that another reading finds denied must
// list it in Config.Allow.
var embeddings = []embedding{
	{netip.MustParsePrefix("::/96"), "IPv4-compatible ::a.b.c.d", []int{12, 13, 14, 15}, 0},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated ::ffff:0:a.b.c.d", []int{12, 13, 14, 15}, 0},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 64:ff9b::/96", []int{12, 13, 14, 15}, 0},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 64:ff9b:1::/48 read as a /48", []int{6, 7, 9, 10}, 0},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 64:ff9b:1::/48 read as a /56", []int{7, 9, 10, 11}, 0},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 64:ff9b:1::/48 read as a /64", []int{9, 10, 11, 12}, 0},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 64:ff9b:1::/48 read as a /96", []int{12, 13, 14, 15}, 0},
	{netip.MustParsePrefix("2002::/16"), "6to4 2002::/16", []int{2, 3, 4, 5}, 0},
	{netip.MustParsePrefix("2001::/32"), "Teredo server", []int{4, 5, 6, 7}, 0},
	{netip.MustParsePrefix("2001::/32"), "Teredo client", []int{12, 13, 14, 15}, 0xff},
}

type embedded struct {
	v4  netip.Addr
	how string
}

// embeddedIPv4 returns the IPv4 addresses ip carries, with how.
func embeddedIPv4(ip netip.Addr) []embedded {
	var out []embedded
	b := ip.As16()
	for _, e := range embeddings {
		if !e.prefix.Contains(ip) {
			continue
		}
		var v4 [4]byte
		for i, at := range e.at {
			v4[i] = b[at] ^ e.xor
		}
		out = append(out, embedded{netip.AddrFrom4(v4), e.how})
	}
	return out
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
