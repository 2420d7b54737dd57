package store

import (
	"strings"
	"testing"
)

func TestLeaseHostnameCarriesTheMode(t *testing.T) {
	cases := []struct {
		host, mode string
		n          int
		want       string
		wantMode   string
	}{
		{"web-1", "pool", 10, "web-1 (rayworker pool x10)", "pool x10"},
		{"web-1", "ray_core", 1, "web-1 (rayworker ray_core x1)", "ray_core x1"},
		{"web-1", "rayjob", 0, "web-1 (rayworker rayjob)", "rayjob"},
		{strings.Repeat("h", 300), "pool", 4, strings.Repeat("h", 255-len(" (rayworker pool x4)")) + " (rayworker pool x4)", "pool x4"},
	}
	for _, c := range cases {
		got := LeaseHostname(c.host, c.mode, c.n)
		if got != c.want || len(got) > 255 {
			t.Errorf("LeaseHostname(%q...) = %q", c.host[:min(len(c.host), 10)], got)
		}
		l := Lease{Hostname: got}
		if l.Mode() != c.wantMode || !strings.HasPrefix(c.host, l.Host()) {
			t.Errorf("%q: host %q mode %q", got, l.Host(), l.Mode())
		}
	}
	// django-ray's own worker writes the bare host name
	for _, h := range []string{"web-2", "odd (name)", ""} {
		if l := (Lease{Hostname: h}); l.Host() != h || l.Mode() != "" {
			t.Errorf("%q: host %q mode %q", h, l.Host(), l.Mode())
		}
	}
}
