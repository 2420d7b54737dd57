package main

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestBinaryRayEntrypointResources: the entrypoint resource settings reach every job the
// binary submits (they decide which Ray node runs the driver: without them, the head).
func TestBinaryRayEntrypointResources(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	srv := raytest.New(t)
	task := enqueueE2E(t, s, "add", "[2, 3]")
	w := startRayWorker(t, dsn, []string{`DJANGO_RAY_RAY_ENTRYPOINT_RESOURCES={"worker_node": 0.01}`},
		"--cluster", srv.URL, "--ray-entrypoint-num-cpus", "0.5", "--ray-entrypoint-memory-mb", "64")
	w.workerID()
	row := waitRow(t, s, task.ID, "the claim", func(r store.Task) bool { return r.State == store.StateRunning && r.RayJobID != nil })
	workertest.Eventually(t, 30*time.Second, "the job in Ray", func() bool { _, ok := srv.Job(*row.RayJobID); return ok })
	var got struct {
		CPUs      float64            `json:"entrypoint_num_cpus"`
		GPUs      *float64           `json:"entrypoint_num_gpus"`
		Memory    int64              `json:"entrypoint_memory"`
		Resources map[string]float64 `json:"entrypoint_resources"`
	}
	found := false
	for _, r := range srv.Requests() {
		if r.Endpoint == raytest.Submit {
			if err := json.Unmarshal(r.Body, &got); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no submission")
	}
	if got.CPUs != 0.5 || got.GPUs != nil || got.Memory != 64<<20 || !reflect.DeepEqual(got.Resources, map[string]float64{"worker_node": 0.01}) {
		t.Fatalf("submitted entrypoint resources %+v", got)
	}
	srv.Set(t, *row.RayJobID, raytest.Succeeded, "", `{"success": true, "result": 5}`+"\n")
	waitRow(t, s, task.ID, "success", func(r store.Task) bool { return r.State == store.StateSucceeded })
}
