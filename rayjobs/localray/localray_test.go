package localray_test

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/localray"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/worker/workertest"
)

// rayCLI is the venv's ray (scripts/pyenv.sh); without RAYCTL_PYTHON the test skips, or fails
// under CI=true.
func rayCLI(t *testing.T) string {
	t.Helper()
	py := raytest.NeedVenvPython(t)
	ray := filepath.Join(filepath.Dir(py), "ray")
	if _, ok := localray.Available(ray); !ok {
		t.Fatalf("no ray CLI at %s", ray)
	}
	return ray
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestStartAndStop: a head started here answers the Jobs API, runs a job with the ray CLI's
// Python (the venv, so django-ray imports), and Stop leaves none of its processes behind.
func TestStartAndStop(t *testing.T) {
	ray := rayCLI(t)
	port := freePort(t)
	var log bytes.Buffer
	ctx := t.Context()
	h, err := localray.Start(ctx, localray.Options{Ray: ray, Port: port, CPUs: 1, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	if h.Address != "http://127.0.0.1:"+strconv.Itoa(port) {
		t.Fatal(h.Address)
	}
	c, err := rayjobs.New(rayjobs.Options{Address: h.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: `python -c "import django_ray; print('ok')"`})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j, err := c.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Terminal() {
			if j.Status != rayjobs.StatusSucceeded {
				t.Fatalf("job %s: %s", j.Status, j.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s", j.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	marker := localray.Marker + "=" + h.Dir()
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Health(ctx); err == nil {
		t.Fatal("the dashboard still answers after Stop")
	}
	// nothing carrying this head's marker is left
	for _, pid := range workertest.WithEnv(marker) {
		if workertest.Alive(pid) {
			t.Fatalf("process %d of the head survived Stop", pid)
		}
	}
}
