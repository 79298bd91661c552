package apitime

import (
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	at := time.Date(2017, 2, 11, 11, 40, 3, 999, time.FixedZone("CST", 8*3600))
	s := Format(at)
	if s != "20170211T034003Z" {
		t.Fatalf("Format = %q", s)
	}
	back, err := Parse(s)
	if err != nil || !back.Equal(at.Truncate(time.Second)) || back.Location() != time.UTC {
		t.Fatalf("Parse(%q) = %v, %v", s, back, err)
	}
	if _, err := Parse("2017-02-11T03:40:03Z"); err == nil {
		t.Fatal("Parse took an RFC 3339 time")
	}
}
