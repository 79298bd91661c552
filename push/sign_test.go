package push

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSignVector checks Sign against the Standard Webhooks example vector (PSH-7).
func TestSignVector(t *testing.T) {
	sig, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)
}

func TestSignVerifyRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"notifyType":"deviceDeleted","deviceId":"d1","gatewayId":"d1"}`)
	for _, s := range []Secret{"whsec_c2VjcmV0LWtleS1ieXRlcw==", "a raw secret"} {
		sig, err := Sign(s, "msg_1", now, body)
		require.NoError(t, err)
		h := http.Header{}
		h.Set(HeaderID, "msg_1")
		h.Set(HeaderTimestamp, "1700000000")
		h.Set(HeaderSignature, "v1,bm90IGl0 "+sig) // several signatures, one matches
		require.NoError(t, Verify(s, h, body, now.Add(time.Minute), 5*time.Minute))
		require.ErrorIs(t, Verify(s, h, append(body, ' '), now, 5*time.Minute), ErrSignature, "changed body")
		require.ErrorIs(t, Verify(s, h, body, now.Add(10*time.Minute), 5*time.Minute), ErrSignature, "old timestamp")
		require.ErrorIs(t, Verify("another secret", h, body, now, 5*time.Minute), ErrSignature, "other secret")
		h.Set(HeaderID, "msg_2")
		require.ErrorIs(t, Verify(s, h, body, now, 5*time.Minute), ErrSignature, "other id")
	}
	require.ErrorIs(t, Verify("k", http.Header{}, nil, now, time.Minute), ErrSignature)
}

func TestSecretKey(t *testing.T) {
	k, err := Secret("whsec_AAEC").Key()
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 2}, k)
	k, err = Secret("plain").Key()
	require.NoError(t, err)
	require.Equal(t, []byte("plain"), k)
	_, err = Secret("whsec_!!notbase64").Key()
	require.ErrorIs(t, err, ErrSecret)
	_, err = Secret("whsec_").Key()
	require.ErrorIs(t, err, ErrSecret)
	_, err = Secret("").Key()
	require.ErrorIs(t, err, ErrSecret)
}

// TestSecretRedacted checks that a Secret never prints (STYLE 9).
func TestSecretRedacted(t *testing.T) {
	var b strings.Builder
	l := slog.New(slog.NewTextHandler(&b, nil))
	s := Secret("whsec_c2VjcmV0")
	l.Info("x", "secret", s)
	require.NotContains(t, b.String(), "c2VjcmV0")
	require.Contains(t, b.String(), "REDACTED")
	require.Equal(t, "REDACTED", s.String())
}

// FuzzVerify: Verify parses three headers; it must never panic, and must
// accept only what Sign produced for the same id, time and body.
func FuzzVerify(f *testing.F) {
	f.Add("msg_1", "1700000000", "v1,abc", []byte(`{}`))
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`))
	f.Add("", "x", "v2,,, v1", []byte(nil))
	secret := Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		unix, perr := strconv.ParseInt(ts, 10, 64)
		now := time.Unix(unix, 0)
		if Verify(secret, h, body, now, time.Minute) == nil {
			if perr != nil {
				t.Fatalf("accepted a timestamp %q that is not a number", ts)
			}
			want, _ := Sign(secret, h.Get(HeaderID), now, body)
			if !strings.Contains(h.Get(HeaderSignature), want) {
				t.Fatalf("accepted %q, which does not contain %q", sig, want)
			}
		}
	})
}
