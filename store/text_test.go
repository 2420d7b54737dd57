package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestStorableText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"unicode ✓ 世界 \U0001F642", "unicode ✓ 世界 \U0001F642"},
		{"NUL\x00here", `NUL\x00here`},
		{"lone \xed\xb3\xa9 surrogate", `lone \udce9 surrogate`}, // U+DCE9 as WTF-8 (pyjson)
		{"high \xed\xa0\x80", `high \ud800`},
		{"bad \xff byte", `bad \xff byte`},
		{"cut \xed\xb3", `cut \xed\xb3`},
		{`"json text \u0000 stays"`, `"json text \u0000 stays"`},
	}
	for _, c := range cases {
		if got := store.StorableText(c.in); got != c.want {
			t.Errorf("StorableText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestTaskTextIsStorable: PostgreSQL refuses NUL and invalid UTF-8 in text columns; the
// store's writes make every task-derived value storable, so the transition applies.
func TestTaskTextIsStorable(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	hostile := "ValueError: NUL\x00 caf\xed\xb3\xa9 \xff"
	want := `ValueError: NUL\x00 caf\udce9 \xff`

	failed := runningRow(t, s, nil)
	ok, err := s.Fail(ctx, failed.Guard(), store.ErrorInfo{Message: hostile, Traceback: &hostile})
	if err != nil || !ok {
		t.Fatalf("Fail: applied %v, %v", ok, err)
	}
	retried := runningRow(t, s, nil)
	if ok, err := s.Retry(ctx, retried.Guard(), 0, store.ErrorInfo{Message: hostile}); err != nil || !ok {
		t.Fatalf("Retry: applied %v, %v", ok, err)
	}
	succeeded := runningRow(t, s, nil)
	if ok, err := s.Succeed(ctx, succeeded.Guard(), store.Result{Data: &hostile}); err != nil || !ok {
		t.Fatalf("Succeed: applied %v, %v", ok, err)
	}
	many := runningRow(t, s, nil)
	if ids, err := s.SucceedMany(ctx, []store.Completion{{Guard: many.Guard(), Result: store.Result{Reference: &hostile}}}); err != nil || len(ids) != 1 {
		t.Fatalf("SucceedMany: %v, %v", ids, err)
	}
	for _, c := range []struct {
		id   int64
		read func(store.Task) *string
	}{
		{failed.ID, func(t store.Task) *string { return t.ErrorMessage }},
		{failed.ID, func(t store.Task) *string { return t.ErrorTraceback }},
		{retried.ID, func(t store.Task) *string { return t.ErrorMessage }},
		{succeeded.ID, func(t store.Task) *string { return t.ResultData }},
		{many.ID, func(t store.Task) *string { return t.ResultReference }},
	} {
		row, err := s.GetTask(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.read(row); got == nil || *got != want {
			t.Errorf("row %d stored %v, want %q", c.id, got, want)
		}
	}
}

// TestRefusedValueIsInvalid: a value PostgreSQL refuses for what it is maps to ErrInvalid, so
// callers can tell it from an outage.
func TestRefusedValueIsInvalid(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	row := runningRow(t, s, nil)
	long := "s3://bucket/" + strings.Repeat("k", 600)
	_, err := s.Succeed(t.Context(), row.Guard(), store.Result{Reference: &long})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a 600-character result_reference: %v, want ErrInvalid", err)
	}
}
