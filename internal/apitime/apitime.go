// Package apitime is the one time format of Doze's API, notification
// bodies and device-profile DateTime values: yyyyMMdd'T'HHmmss'Z' in UTC,
// e.g. 20170214T164001Z (second precision).
package apitime

import "time"

// Layout is the time.Format layout of the format.
const Layout = "20060102T150405Z"

// Format formats t in UTC with Layout.
func Format(t time.Time) string { return t.UTC().Format(Layout) }

// Parse reads s written with Layout; the error is time.Parse's.
func Parse(s string) (time.Time, error) { return time.Parse(Layout, s) }
