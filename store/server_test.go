package store_test

import (
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestServer(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	i, err := s.Server(ctx)
	if err != nil || i.Version == "" || !i.Tables || time.Since(i.Clock).Abs() > time.Minute {
		t.Fatalf("server: %+v %v", i, err)
	}
	empty := store.New(storetest.EmptySchema(t).Pool)
	if i, err := empty.Server(ctx); err != nil || i.Tables {
		t.Fatalf("empty schema: %+v %v", i, err)
	}
}
