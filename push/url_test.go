package push

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/stretchr/testify/require"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// urlCases is the table of PSH-2 (FAQ §5.8): valid forms and one case per
// broken rule. It also seeds FuzzParseCallbackURL.
var urlCases = []struct {
	raw  string
	want error // nil: valid
}{
	{"http://203.0.113.7:8080/path", nil},
	{"http://203.0.113.7:8080/", nil},
	{"https://203.0.113.7:8443/a/b?x=1", nil},
	{"https://apps.example.com:443/cb", nil}, // §5.4: domain names allowed
	{"HTTP://apps.example.com:80/cb", nil},
	{"http://[2001:db8::1]:8080/cb", nil},
	{"http://203.0.113.7:8080", ErrURLNoPath},         // §5.8 bad example
	{"http://203.0.113.7/path", ErrURLNoPort},         // §5.8 bad example
	{"http://203.0.113.7:/path", ErrURLNoPort},        // empty port
	{"http://203.0.113.7:0/path", ErrURLNoPort},       // port out of range
	{"http://203.0.113.7:70000/path", ErrURLNoPort},   // port out of range
	{"http://203.0.113.7:port/path", ErrURLNoPort},    // not a number
	{"ftp://203.0.113.7:21/path", ErrURLScheme},       // §5.9: http or https only
	{"203.0.113.7:8080/path", ErrURLScheme},           // no scheme
	{"/just/a/path", ErrURLScheme},                    // no scheme, no host
	{"http://:8080/path", ErrURLNoHost},               // no host
	{"http:///path", ErrURLNoHost},                    // no host
	{"http:opaque", ErrURLNoHost},                     // opaque form
	{"http://u:p@203.0.113.7:8080/p", ErrURLUserInfo}, // credentials in URL
	{"http://203.0.113.7:8080/%zz", ErrURLSyntax},     // bad escape
	{"", ErrURLScheme},
	// SEC-3: at most MaxURLLength bytes.
	{"http://203.0.113.7:8080/" + strings.Repeat("a", MaxURLLength-24), nil},
	{"http://203.0.113.7:8080/" + strings.Repeat("a", MaxURLLength-23), ErrURLTooLong},
	{"http://203.0.113.7:8080/" + strings.Repeat("a", 900<<10), ErrURLTooLong},
	// IPv4 in forms other than dotted decimal (resolvers read them as
	// 127.0.0.1; WHATWG URL hosts ending in a number).
	{"http://2130706433:8080/cb", ErrURLSyntax},
	{"http://0x7f000001:8080/cb", ErrURLSyntax},
	{"http://0x7f.1:8080/cb", ErrURLSyntax},
	{"http://0177.0.0.1:8080/cb", ErrURLSyntax},
	{"http://127.1:8080/cb", ErrURLSyntax},
	{"http://127.0.0.1.:8080/cb", ErrURLSyntax},
	{"http://a.b.0x1:8080/cb", ErrURLSyntax},
	{"http://[::ffff:127.0.0.1]:8080/cb", nil}, // syntax fine; the guard refuses it
	{"http://a1.example:8080/cb", nil},
	{"http://1a.example.com:8080/cb", nil},
}

func TestParseCallbackURL(t *testing.T) {
	for _, c := range urlCases {
		t.Run(c.raw, func(t *testing.T) {
			u, err := ParseCallbackURL(c.raw)
			if c.want == nil {
				require.NoError(t, err, "PSH-2: ParseCallbackURL(%q)", c.raw)
				require.NotNil(t, u)
				return
			}
			require.ErrorIs(t, err, c.want, "PSH-2: ParseCallbackURL(%q) = %v", c.raw, err)
			var ue *URLError
			require.True(t, errors.As(err, &ue), "error is a *URLError")
			require.Equal(t, c.raw, ue.URL)
			require.Contains(t, err.Error(), "http(s)://host:port/path", "the error says what is allowed")
			require.Less(t, len(err.Error()), 600, "the error quotes a bounded part of the URL")
		})
	}
}

// TestURLRulesDistinct checks that each broken URL names one rule only
// (PSH-2, issue 8: a distinct error for each broken rule): its error wraps
// its own sentinel and none of the others.
func TestURLRulesDistinct(t *testing.T) {
	rules := []error{ErrURLTooLong, ErrURLSyntax, ErrURLScheme, ErrURLNoHost, ErrURLNoPort, ErrURLNoPath, ErrURLUserInfo}
	for _, c := range urlCases {
		if c.want == nil {
			continue
		}
		_, err := ParseCallbackURL(c.raw)
		for _, r := range rules {
			if r != c.want {
				require.NotErrorIs(t, err, r, "ParseCallbackURL(%q) = %v", c.raw, err)
			}
		}
	}
}

func FuzzParseCallbackURL(f *testing.F) {
	for _, c := range urlCases {
		f.Add(c.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseCallbackURL(raw)
		if err != nil {
			var ue *URLError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseCallbackURL(%q) error %v is not a *URLError", raw, err)
			}
			return
		}
		// A valid URL has a host, a port and a path, and its string form
		// is valid again.
		if u.Hostname() == "" || u.Port() == "" || (u.Path == "" && u.RawPath == "") {
			t.Fatalf("ParseCallbackURL(%q) accepted %#v", raw, u)
		}
		if _, err := ParseCallbackURL(u.String()); err != nil && !(errors.Is(err, ErrURLTooLong) && len(u.String()) > MaxURLLength) {
			t.Fatalf("ParseCallbackURL(%q) ok, but its String %q fails: %v", raw, u.String(), err)
		}
	})
}

func TestDeniedReason(t *testing.T) {
	cases := []struct {
		ip, want string
	}{
		{"127.0.0.1", "loopback"},
		{"127.9.9.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"}, // IPv4-mapped does not slip through
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"169.254.169.254", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"224.0.0.1", "multicast"},
		{"0.1.2.3", "this network"},
		{"255.255.255.255", "broadcast"},
		// IPv6 addresses carrying a denied IPv4 address (SEC-3).
		{"::ffff:7f00:1", "loopback"},
		{"::127.0.0.1", "loopback (it embeds 127.0.0.1, IPv4-compatible ::a.b.c.d)"},
		{"::169.254.169.254", "cloud metadata (it embeds 169.254.169.254, IPv4-compatible ::a.b.c.d)"},
		{"::ffff:0:127.0.0.1", "loopback (it embeds 127.0.0.1, IPv4-translated ::ffff:0:a.b.c.d)"},
		{"64:ff9b::127.0.0.1", "loopback (it embeds 127.0.0.1, NAT64 64:ff9b::/96)"},
		{"64:ff9b::7f00:1", "loopback (it embeds 127.0.0.1, NAT64 64:ff9b::/96)"},
		{"64:ff9b::a9fe:a9fe", "cloud metadata (it embeds 169.254.169.254, NAT64 64:ff9b::/96)"},
		{"64:ff9b::0.0.0.0", ""}, // 0.0.0.0/8 is no translator's destination
		{"64:ff9b:1::203.0.113.7", ""},
		{"64:ff9b:1::127.0.0.1", "loopback (it embeds 127.0.0.1, NAT64 64:ff9b:1::/48 read as a /96)"},
		{"64:ff9b:1:7f00:0:100::", "loopback (it embeds 127.0.0.1, NAT64 64:ff9b:1::/48 read as a /48)"},
		{"64:ff9b:1:7f:0:1::", "loopback (it embeds 127.0.0.1, NAT64 64:ff9b:1::/48 read as a /56)"},
		{"64:ff9b:1:0:7f:0:100::", "loopback (it embeds 127.0.0.1, NAT64 64:ff9b:1::/48 read as a /64)"},
		{"2002:7f00:1::", "loopback (it embeds 127.0.0.1, 6to4 2002::/16)"},
		{"2002:a9fe:a9fe::1", "cloud metadata (it embeds 169.254.169.254, 6to4 2002::/16)"},
		{"2001:0:7f00:1::", "loopback (it embeds 127.0.0.1, Teredo server)"},
		{"2001:0:cb00:7109::80ff:fffe", "loopback (it embeds 127.0.0.1, Teredo client)"}, // ^0xff
		{"64:ff9b::10.0.0.1", ""},    // NAT64 to a private address: as allowed as 10.0.0.1
		{"64:ff9b::203.0.113.7", ""}, // NAT64 to a public address
		{"2002:cb00:7107::1", ""},    // 6to4 of 203.0.113.7
		{"10.0.0.1", ""},             // private networks are allowed
		{"192.168.1.10", ""},
		{"fd00::1", ""},
		{"203.0.113.7", ""},
		{"2001:db8::1", ""},
	}
	for _, c := range cases {
		require.Equal(t, c.want, DeniedReason(netip.MustParseAddr(c.ip)), "DeniedReason(%s)", c.ip)
	}
}

func TestGuardAllowList(t *testing.T) {
	g := guard{allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	require.NoError(t, g.check(netip.MustParseAddr("127.0.0.1")))
	require.NoError(t, g.check(netip.MustParseAddr("::ffff:127.0.0.1")))
	require.ErrorIs(t, g.check(netip.MustParseAddr("127.0.0.2")), ErrAddressDenied)
	require.ErrorIs(t, g.check(netip.MustParseAddr("169.254.169.254")), ErrAddressDenied)
	require.ErrorIs(t, g.control("tcp4", "169.254.169.254:80", nil), ErrAddressDenied)
	require.NoError(t, g.control("tcp4", "127.0.0.1:80", nil))
	require.ErrorIs(t, g.control("tcp", "garbage", nil), ErrAddressDenied)
}

// TestCheckURLResolves checks the guard after DNS (PSH-2): a name that
// resolves to a denied address is refused at subscription time.
func TestCheckURLResolves(t *testing.T) {
	e, err := New(NewMemoryStore(), Config{Resolver: fakeResolver{
		"evil.test":  "169.254.169.254",
		"local.test": "127.0.0.1",
		"good.test":  "203.0.113.9",
	}})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, e.CheckURL(ctx, "http://good.test:8080/cb"))
	err = e.CheckURL(ctx, "http://evil.test:8080/cb")
	require.ErrorIs(t, err, ErrAddressDenied)
	require.Contains(t, err.Error(), "169.254.169.254")
	require.ErrorIs(t, e.CheckURL(ctx, "http://local.test:8080/cb"), ErrAddressDenied)
	require.ErrorIs(t, e.CheckURL(ctx, "http://missing.test:8080/cb"), ErrResolve)
	require.ErrorIs(t, e.CheckURL(ctx, "http://127.0.0.1:8080/cb"), ErrAddressDenied)
	require.ErrorIs(t, e.CheckURL(ctx, "http://[fd00:ec2::254]:80/"), ErrAddressDenied)
	require.ErrorIs(t, e.CheckURL(ctx, "http://127.0.0.1:8080"), ErrURLNoPath, "syntax first")
}

// fakeResolver answers from a map of host names to one address each.
type fakeResolver map[string]string

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

func TestDeniedMessage(t *testing.T) {
	e, err := New(NewMemoryStore(), Config{})
	require.NoError(t, err)
	err = e.CheckURL(context.Background(), "http://127.0.0.1:8080/cb")
	require.EqualError(t, err, `push: callback address is not allowed: "http://127.0.0.1:8080/cb" (127.0.0.1 is loopback; add it to Config.Allow to permit it); want http(s)://host:port/path`)
}

// TestCheckURLEmbeddedIPv4 drives the embedded forms through CheckURL and
// the dial-time check (SEC-3): refused with ErrAddressDenied naming the
// embedded address; Config.Allow of 127.0.0.1/32 does not open them.
func TestCheckURLEmbeddedIPv4(t *testing.T) {
	e, err := New(NewMemoryStore(), Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	require.NoError(t, err)
	for _, host := range []string{"::127.0.0.1", "::ffff:0:127.0.0.1", "64:ff9b::127.0.0.1", "64:ff9b:1::127.0.0.1",
		"2002:7f00:1::", "64:ff9b::169.254.169.254", "::169.254.169.254"} {
		raw := "http://[" + host + "]:8080/cb"
		err := e.CheckURL(context.Background(), raw)
		require.ErrorIs(t, err, ErrAddressDenied, "CheckURL(%s)", raw)
		require.Contains(t, err.Error(), "it embeds", "CheckURL(%s) names the embedded address: %v", raw, err)
		_, err = e.Send(context.Background(), raw, []byte(`{}`), "")
		require.ErrorIs(t, err, ErrAddressDenied, "Send(%s)", raw)
		require.ErrorIs(t, e.guard.control("tcp6", "["+host+"]:8080", nil), ErrAddressDenied, "dial to %s", host)
	}
	require.NoError(t, e.CheckURL(context.Background(), "http://[::ffff:127.0.0.1]:8080/cb"),
		"the IPv4-mapped form of an allowed address is that address")
}

// TestURLTooLongEverywhere: a 900 KB callback URL is refused with
// ErrURLTooLong by every way a URL enters (SEC-3), and nothing is stored.
func TestURLTooLongEverywhere(t *testing.T) {
	st := NewMemoryStore()
	e, err := New(st, Config{})
	require.NoError(t, err)
	ctx := context.Background()
	long := "http://203.0.113.7:8080/" + strings.Repeat("a", 900<<10)
	require.ErrorIs(t, e.CheckURL(ctx, long), ErrURLTooLong)
	require.ErrorIs(t, e.CheckCallback(ctx, "app", long), ErrURLTooLong)
	_, err = e.Subscribe(ctx, Subscription{AppID: "app", NotifyType: DeviceAdded, CallbackURL: long})
	require.ErrorIs(t, err, ErrURLTooLong)
	_, err = e.Send(ctx, long, []byte(`{}`), "")
	require.ErrorIs(t, err, ErrURLTooLong)
	require.Contains(t, err.Error(), "921624 bytes")
	subs, err := st.Subscriptions(ctx, Filter{AnyApp: true})
	require.NoError(t, err)
	require.Empty(t, subs)
	msgs, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs)
}

// TestEmbeddedIPv4RFC6052 takes the address table of RFC 6052 §2.4
// (192.0.2.33 under 2001:db8:122:344::/32 … /96), moves it into the
// local-use prefix 64:ff9b:1::/48 (RFC 8215) by replacing the first 48
// bits, and checks that the reading of each prefix length finds 192.0.2.33.
func TestEmbeddedIPv4RFC6052(t *testing.T) {
	want := netip.MustParseAddr("192.0.2.33")
	local := netip.MustParseAddr("64:ff9b:1::").As16()
	for _, c := range []struct{ addr, reading string }{
		{"2001:db8:122:c000:2:2100::", "/48"},
		{"2001:db8:122:3c0:0:221::", "/56"},
		{"2001:db8:122:344:c0:2:2100::", "/64"},
		{"2001:db8:122:344::192.0.2.33", "/96"},
	} {
		b := netip.MustParseAddr(c.addr).As16()
		copy(b[:6], local[:6])
		ip := netip.AddrFrom16(b)
		found := false
		for _, e := range embeddedIPv4(ip) {
			if strings.HasSuffix(e.how, "read as a "+c.reading) {
				require.Equal(t, want, e.v4, "%s (%s from RFC 6052) read as %s", ip, c.addr, c.reading)
				found = true
			}
		}
		require.True(t, found, "%s has a %s reading", ip, c.reading)
	}
	// The /96 example under 64:ff9b::/96 itself (RFC 6052 §2.4, last row).
	e := embeddedIPv4(netip.MustParseAddr("64:ff9b::192.0.2.33"))
	require.Len(t, e, 1)
	require.Equal(t, want, e[0].v4)
}
