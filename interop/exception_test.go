package interop_test

import (
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestExceptionTypeMatchesGetResult: for application failures rayctl's exception type
// (store.ExceptionType, and its SQL twin behind --exception and tasks count --by exception) is
// the exception_class_path django-ray 0.2.0's own get_result() reports for the same row; a row
// without an error_message has no error in either. (The failures the workers record
// themselves, TaskLost, RayJobFailed, ..., are named as the retry policy saw them instead; see
// store.ExceptionType.)
func TestExceptionTypeMatchesGetResult(t *testing.T) {
	t.Parallel()
	d := needDjango(t)
	sc := storetest.EmptySchema(t)
	d.run(t, sc.DSN, nil, "manage.py", "migrate", "django_ray")
	s := store.New(sc.Pool)
	p := storetest.Ptr[string]
	cases := []struct{ message, traceback *string }{
		{p("invalid literal"), p("Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: invalid literal for int() with base 10: 'x'\n")},
		{p("card declined"), p("Traceback...\nmyapp.errors.PaymentDeclined: card declined")},
		{p("k"), p("Traceback\r\nKeyError: 'k'\r\n\r\n")},
		{p("x"), p("Traceback\nSystemExit")},
		{p("x"), p("Traceback\n: odd")},
		{p("something broke: badly"), nil},
		{p("oops"), p("")},
		{p("oops"), p(" \n\t ")},
		{p("x"), p("Traceback\nurllib.error.URLError: <urlopen error: refused>")},
		{p("Failed to submit to Ray: refused"), p("Traceback\nrequests.exceptions.ConnectionError: refused")},
		{nil, p("Traceback\nValueError: v")},
		{p(""), p("Traceback\nValueError: v")},
	}
	ids := map[string]int{}
	var taskIDs []string
	for i, c := range cases {
		row := storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "rayctl_testapp.tasks.add", ErrorMessage: c.message, ErrorTraceback: c.traceback})
		ids[row.TaskID] = i
		taskIDs = append(taskIDs, row.TaskID)
	}
	results := d.results(t, sc.DSN, nil, taskIDs...)
	groups, err := s.CountBy(t.Context(), store.TaskFilter{}, store.ByException, 100)
	if err != nil {
		t.Fatal(err)
	}
	sqlCount := map[string]int64{}
	for _, g := range groups {
		sqlCount[g.Key] = g.Count
	}
	want := map[string]int64{}
	for _, id := range taskIDs {
		c := cases[ids[id]]
		python := ""
		if errs := results[id].Errors; len(errs) > 0 {
			python = errs[0].ExceptionClassPath
		}
		ours := store.ExceptionType(c.traceback, c.message)
		if ours != python {
			t.Errorf("message %v, traceback %q: rayctl says %q, django-ray's get_result %q", deref(c.message), deref(c.traceback), ours, python)
		}
		want[python]++
	}
	for k, n := range want {
		if sqlCount[k] != n {
			t.Errorf("tasks count --by exception: %q counts %d, get_result %d (all: %v)", k, sqlCount[k], n, sqlCount)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
