package store_test

import (
	"context"
	"fmt"
	"os"

	"github.com/rayctl/rayctl/store"
)

// The enqueue / claim / complete flow a worker runs. Every write is fenced by the guard the
// claim returned: if someone else moved the row on meanwhile, Succeed reports false.
func Example() {
	ctx := context.Background()
	pool, err := store.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	s := store.New(pool)

	if _, err := s.Enqueue(ctx, store.NewTask{CallablePath: "myapp.tasks.add", ArgsJSON: "[2, 3]"}); err != nil {
		fmt.Println(err)
		return
	}
	tasks, err := s.Claim(ctx, store.ClaimParams{WorkerID: "worker-1", Queues: []string{"default"}, Limit: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range tasks {
		result := "5"
		applied, err := s.Succeed(ctx, t.Guard(), store.Result{Data: &result})
		fmt.Println(t.ID, applied, err)
	}
}
