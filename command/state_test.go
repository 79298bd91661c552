package command

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// allowed is CMD-1's table written out as pairs, independently of the
// moves map, so that a change to either shows up here.
var allowed = map[[2]Status]bool{
	{Pending, Sent}:         true,
	{Pending, Expired}:      true,
	{Pending, Canceled}:     true,
	{Pending, Failed}:       true, // encode error, or an immediate command that cannot go out
	{Sent, Sent}:            true, // CMD-4 re-send
	{Sent, Delivered}:       true,
	{Sent, Timeout}:         true,
	{Delivered, Successful}: true,
	{Delivered, Failed}:     true,
	{Delivered, Timeout}:    true,
}

// TestMovesExhaustive checks every pair of states, the invalid zero and an
// out-of-range value included (CMD-1): the table's moves succeed and stamp
// their time, every other move is refused with a *MoveError and leaves the
// command untouched.
func TestMovesExhaustive(t *testing.T) {
	states := append([]Status{0, Status(99)}, Statuses()...)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := 0
	for _, from := range states {
		for _, to := range states {
			name := fmt.Sprintf("%v→%v", from, to)
			c := Command{ID: "c1", Status: from, IssuedTimes: 1}
			before := c
			err := c.Move(to, now)
			require.Equal(t, allowed[[2]Status{from, to}], CanMove(from, to), "CanMove(%s)", name)
			if !allowed[[2]Status{from, to}] {
				var me *MoveError
				require.ErrorAs(t, err, &me, "Move(%s) must be refused", name)
				require.ErrorIs(t, err, ErrBadMove)
				require.Equal(t, MoveError{ID: "c1", From: from, To: to}, *me)
				require.Equal(t, before, c, "a refused Move(%s) changes nothing", name)
				continue
			}
			n++
			require.NoError(t, err, "Move(%s)", name)
			require.Equal(t, to, c.Status)
			switch {
			case to == Sent:
				require.Equal(t, now, c.PlatformIssuedTime, "%s stamps platformIssuedTime", name)
				require.Equal(t, 2, c.IssuedTimes, "%s counts issuedTimes", name)
			case to == Delivered:
				require.Equal(t, now, c.DeliveredTime, "%s stamps deliveredTime", name)
			case to.Final():
				require.Equal(t, now, c.ExecuteTime, "%s stamps executeTime", name)
				require.Equal(t, 1, c.IssuedTimes)
			}
		}
	}
	require.Equal(t, len(allowed), n, "every allowed move was exercised")
	for _, s := range Statuses() {
		require.Equal(t, s.Final(), len(Moves(s)) == 0, "%v: end states have no moves", s)
	}
}

func TestStatusNames(t *testing.T) {
	for _, s := range Statuses() {
		b, err := s.MarshalText()
		require.NoError(t, err)
		got, err := ParseStatus(string(b))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	for _, bad := range []string{"", "pending", "DONE", "PENDING "} {
		_, err := ParseStatus(bad)
		require.ErrorIs(t, err, ErrBadStatus, "ParseStatus(%q)", bad)
	}
	_, err := Status(0).MarshalText()
	require.Error(t, err)
	require.Equal(t, "Status(0)", Status(0).String())
	require.False(t, Pending.Notifies(), "creation is not pushed")
	for _, s := range Statuses()[1:] {
		require.True(t, s.Notifies(), "%v is pushed (CMD-6)", s)
	}
}

// TestStatusesIsACopy: changing the returned slice changes nothing.
func TestStatusesIsACopy(t *testing.T) {
	a := Statuses()
	a[0] = Canceled
	require.Equal(t, Pending, Statuses()[0])
	require.Equal(t, "PENDING", Pending.String())
}
