package rayjobs_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
)

// Submit under a deterministic id, treat a duplicate as already submitted, poll to a terminal
// status, and read the result from the last log line.
func Example() {
	srv := raytest.Start(raytest.WithLifecycle(func(raytest.Submission) []raytest.Step {
		return raytest.Succeeds("Running entrypoint\n" + `{"success": true, "result": 5}` + "\n")
	}))
	defer srv.Close()

	ctx := context.Background()
	c, err := rayjobs.New(rayjobs.Options{Address: srv.URL, UserAgent: "rayctl/example"})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	req := rayjobs.SubmitRequest{Entrypoint: "python -m django_ray.runtime.entrypoint --payload-b64 e30=", SubmissionID: "raysubmit_task42_attempt1"}
	for range 2 { // a retry after a crash sends the same id again
		id, err := c.Submit(ctx, req)
		switch {
		case errors.Is(err, rayjobs.ErrAlreadySubmitted):
			fmt.Println("already submitted:", id)
		case err != nil:
			panic(err)
		default:
			fmt.Println("submitted:", id)
		}
	}
	for {
		j, err := c.Get(ctx, req.SubmissionID)
		if err != nil {
			panic(err)
		}
		fmt.Println("status:", j.Status)
		if j.Status.Terminal() {
			break
		}
	}
	logs, err := c.Logs(ctx, req.SubmissionID)
	if err != nil {
		panic(err)
	}
	line, complete := logs.LastLine()
	fmt.Println("last line:", line, complete)
	// Output:
	// submitted: raysubmit_task42_attempt1
	// already submitted: raysubmit_task42_attempt1
	// status: RUNNING
	// status: SUCCEEDED
	// last line: {"success": true, "result": 5} true
}
