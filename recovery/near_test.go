package recovery

import (
	"reflect"
	"testing"
)

func TestNear(t *testing.T) {
	t.Parallel()
	names := []string{"payments", "payroll", "default", "emails", "app.tasks.charge", "app.tasks.send_email", "billing.tasks.charge", "high-priority"}
	tests := []struct {
		value  string
		dotted bool
		want   []string
	}{
		{"payment", false, []string{"payments"}},
		{"Default", false, []string{"default"}},
		{"high_priority", false, []string{"high-priority"}},
		{"emials", false, []string{"emails"}},                                           // a swap of neighbours is one edit
		{"app.task.charge", true, []string{"app.tasks.charge", "billing.tasks.charge"}}, // a typo, then the same last part
		{"charge", true, []string{"app.tasks.charge", "billing.tasks.charge"}},
		{"zzzz", false, nil},
		{"payments", false, nil}, // itself is not near
	}
	for _, tt := range tests {
		got := Near(tt.value, names, tt.dotted)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Near(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
	h, ok := hint("callable", "app.tasks", names, true)
	if !ok || h.Glob != "app.tasks.*" || !reflect.DeepEqual(h.Near, []string{"app.tasks.charge", "app.tasks.send_email"}) {
		t.Errorf("module hint: %+v %v", h, ok)
	}
	if _, ok := hint("queue", "payments", names, false); ok {
		t.Error("a name that exists got a hint")
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{{"kitten", "sitting", 3}, {"ab", "ba", 1}, {"", "abc", 3}, {"abc", "abc", 0}, {"audti", "audit", 1}} {
		if got := editDistance(tt.a, tt.b, 5); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if got := editDistance("aaaaaaaa", "bbbbbbbb", 2); got != 3 {
		t.Errorf("past the limit: %d, want limit+1", got)
	}
}
