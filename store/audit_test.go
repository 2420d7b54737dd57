package store_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	if ok, err := s.AuditAvailable(ctx); !ok || err != nil {
		t.Fatalf("audit available after migrate: %v %v", ok, err)
	}
	sel, _ := json.Marshal(map[string]any{"states": []string{"FAILED"}})
	id, err := s.StartAudit(ctx, store.AuditEntry{Action: "requeue", Actor: "op@host", Reason: storetest.Ptr("INC-42 fixed"),
		Selection: sel, Options: json.RawMessage(`{"batch":100}`), Matched: 3, Selected: 2})
	if err != nil {
		t.Fatal(err)
	}
	changes := []store.AuditChange{{ID: 11, From: store.StateFailed, To: store.StateQueued}, {ID: 12, From: store.StateLost, To: store.StateQueued}}
	if err := s.RecordAuditChanges(ctx, id, changes); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAudit(ctx, id, 2, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAudit(ctx, 999999, 0, 0, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("finish a missing entry: %v", err)
	}
	other, _ := s.StartAudit(ctx, store.AuditEntry{Action: "cancel", Actor: "op@host", Selection: sel, Options: json.RawMessage(`{}`)})
	// A reason or an error (Ray's text, for reconcile-jobs) that PostgreSQL would refuse is
	// stored through StorableText, not lost with the entry left unfinished.
	odd, err := s.StartAudit(ctx, store.AuditEntry{Action: "reconcile-jobs", Actor: "op@host", Reason: storetest.Ptr("nul\x00 \xff"),
		Selection: sel, Options: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("start with an unstorable reason: %v", err)
	}
	if err := s.FinishAudit(ctx, odd, 0, 0, storetest.Ptr("ray said \x00 \xed\xb2\x80")); err != nil {
		t.Fatalf("finish with an unstorable error: %v", err)
	}
	if e, err := s.GetAudit(ctx, odd); err != nil || e.FinishedAt == nil || e.Error == nil || *e.Reason != store.StorableText("nul\x00 \xff") {
		t.Fatalf("odd entry: %+v %v", e, err)
	}
	if _, err := sc.Pool.Exec(ctx, `DELETE FROM rayctl_audit WHERE id = $1`, odd); err != nil {
		t.Fatal(err)
	}

	all, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(all) != 2 || all[0].ID != other || all[1].ID != id {
		t.Fatalf("list newest first: %+v %v", all, err)
	}
	e := all[1]
	if e.Action != "requeue" || *e.Reason != "INC-42 fixed" || e.Changed != 2 || e.FinishedAt == nil || e.Error != nil || e.Matched != 3 {
		t.Fatalf("entry: %+v", e)
	}
	var selBack map[string]any
	if err := json.Unmarshal(e.Selection, &selBack); err != nil || selBack["states"] == nil {
		t.Fatalf("selection round trip: %s %v", e.Selection, err)
	}
	byTask, _ := s.ListAudit(ctx, store.AuditFilter{TaskID: 12})
	if len(byTask) != 1 || byTask[0].ID != id {
		t.Fatalf("by task: %+v", byTask)
	}
	byAction, _ := s.ListAudit(ctx, store.AuditFilter{Action: "cancel"})
	if len(byAction) != 1 || byAction[0].ID != other {
		t.Fatalf("by action: %+v", byAction)
	}
	if one, err := s.GetAudit(ctx, id); err != nil || one.ID != id || one.Changed != 2 || *one.Reason != "INC-42 fixed" {
		t.Fatalf("get: %+v %v", one, err)
	}
	if _, err := s.GetAudit(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get a missing entry: %v", err)
	}
	got, err := s.AuditChanges(ctx, id)
	if err != nil || !reflect.DeepEqual(got, changes) {
		t.Fatalf("changes %+v %v", got, err)
	}

	// without migration 0002 the store says so
	if _, err := sc.Pool.Exec(ctx, `DROP TABLE rayctl_audit_task, rayctl_audit`); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AuditAvailable(ctx); ok {
		t.Fatal("audit available after dropping it")
	}
	if _, err := s.ListAudit(ctx, store.AuditFilter{}); !errors.Is(err, store.ErrNoAudit) {
		t.Fatalf("list without the table: %v", err)
	}
}
