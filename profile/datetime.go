package profile

import (
	"fmt"
	"time"

	"github.com/doze-io/doze/internal/apitime"
)

// FormatDateTime formats t as a DateTime value, the platform's one time
// format: yyyyMMdd'T'HHmmss'Z' in UTC, e.g. 20170214T164001Z (PRF-4).
func FormatDateTime(t time.Time) string { return apitime.Format(t) }

// ParseDateTime reads a DateTime value. It wants exactly 16 characters:
// eight digits of date, 'T', six digits of time, 'Z'.
func ParseDateTime(s string) (time.Time, error) {
	if !dateTimeShape(s) {
		return time.Time{}, fmt.Errorf("profile: %q is not a DateTime; want yyyyMMdd'T'HHmmss'Z' in UTC such as 20170214T164001Z", s)
	}
	t, err := apitime.Parse(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("profile: %q is not a valid DateTime (%v); want yyyyMMdd'T'HHmmss'Z' in UTC such as 20170214T164001Z", s, err)
	}
	return t, nil
}

// dateTimeShape checks the layout's shape without allocating.
func dateTimeShape(s string) bool {
	if len(s) != 16 || s[8] != 'T' || s[15] != 'Z' {
		return false
	}
	for i := 0; i < 15; i++ {
		if i == 8 {
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validDateTime reports whether s is a DateTime, checking ranges (month
// 1-12, day within the month, 00-23 hours, 00-59 minutes and seconds)
// without allocating.
func validDateTime(s string) bool {
	if !dateTimeShape(s) {
		return false
	}
	d := func(i, n int) int {
		v := 0
		for j := i; j < i+n; j++ {
			v = v*10 + int(s[j]-'0')
		}
		return v
	}
	year, month, day := d(0, 4), d(4, 2), d(6, 2)
	hh, mm, ss := d(9, 2), d(11, 2), d(13, 2)
	if month < 1 || month > 12 || day < 1 || hh > 23 || mm > 59 || ss > 59 {
		return false
	}
	return day <= daysIn(time.Month(month), year)
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
