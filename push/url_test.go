package push

import (
	"context"
	"errors"
	"net"
	"net/netip"
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
		})
	}
}

// TestURLRulesDistinct checks that each broken rule has its own error (PSH-2).
func TestURLRulesDistinct(t *testing.T) {
	rules := []error{ErrURLScheme, ErrURLNoHost, ErrURLNoPort, ErrURLNoPath}
	for i, a := range rules {
		for j, b := range rules {
			if i != j {
				require.NotErrorIs(t, a, b)
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
		if _, err := ParseCallbackURL(u.String()); err != nil {
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
		{"10.0.0.1", ""}, // private networks are allowed
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
