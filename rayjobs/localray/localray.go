// Package localray starts a single-node Ray head on this machine for rayworker --local when
// none answers, and stops exactly what it started.
//
// The head runs from the `ray` CLI (`ray start --head`) with its dashboard (the Jobs API) on
// 127.0.0.1 and every other port chosen free, in a private temp dir, so it does not clash with
// another Ray on the machine. Stop ends the head's process group and every process whose
// environment carries this head's marker (job drivers run in sessions of their own but
// inherit it); it never runs `ray stop`, which would stop every Ray of the user.
package localray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Marker is the environment variable that tags every process of a head this package started
// (its value is the head's directory).
const Marker = "RAYWORKER_LOCAL_RAY"

// Options configure Start.
type Options struct {
	// Ray is the ray CLI; default "ray" on PATH.
	Ray string
	// Port is the dashboard (Jobs API) port on 127.0.0.1; default 8265.
	Port int
	// GCSPort is the head's GCS port (--port), the address Ray Core drivers connect to;
	// 0 picks a free one. A head restarted on the same GCSPort is reachable at the same
	// address again.
	GCSPort int
	// CPUs for the head (--num-cpus); 0 lets Ray count them.
	CPUs int
	// StartTimeout bounds the wait for the dashboard to answer; default 2 minutes.
	StartTimeout time.Duration
	// Log receives `ray start`'s output; nil discards it.
	Log io.Writer
}

// Head is a Ray head this process started.
type Head struct {
	// Address is the Jobs API: http://127.0.0.1:<port>.
	Address string
	// GCSAddress is the GCS (127.0.0.1:<port>): ray.init's address for a Ray Core driver.
	GCSAddress string
	dir        string
	pgid       int
}

// Dir is the head's private directory (Ray's --temp-dir is under it); "" once stopped.
func (h *Head) Dir() string { return h.dir }

// Available reports whether the ray CLI can be found, and its path.
func Available(ray string) (string, bool) {
	if ray == "" {
		ray = "ray"
	}
	p, err := exec.LookPath(ray)
	return p, err == nil
}

// Start runs `ray start --head` and waits until the dashboard answers /api/version.
func Start(ctx context.Context, o Options) (*Head, error) {
	ray, ok := Available(o.Ray)
	if !ok {
		return nil, fmt.Errorf("localray: the ray CLI (%q) is not on PATH: install ray[default] or point to a running Ray", o.Ray)
	}
	if o.Port == 0 {
		o.Port = 8265
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	dir, err := os.MkdirTemp("", "rayworker-ray-")
	if err != nil {
		return nil, err
	}
	h := &Head{Address: "http://127.0.0.1:" + strconv.Itoa(o.Port), dir: dir}
	// The worker range first: Ray refuses to start when another of its ports falls inside it.
	wbase := workerPortBase()
	ports, err := freePorts(8, func(p int) bool { return p == o.Port || p == o.GCSPort || (p >= wbase && p < wbase+workerPorts) })
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ports = append(ports, wbase)
	if o.GCSPort > 0 {
		ports[0] = o.GCSPort
	}
	h.GCSAddress = "127.0.0.1:" + strconv.Itoa(ports[0])
	args := []string{"start", "--head", "--disable-usage-stats",
		"--node-ip-address", "127.0.0.1", "--temp-dir", filepath.Join(dir, "t"),
		"--dashboard-host", "127.0.0.1", "--dashboard-port", strconv.Itoa(o.Port),
		"--port", strconv.Itoa(ports[0]), "--ray-client-server-port", strconv.Itoa(ports[1]),
		"--node-manager-port", strconv.Itoa(ports[2]), "--object-manager-port", strconv.Itoa(ports[3]),
		"--metrics-export-port", strconv.Itoa(ports[4]), "--dashboard-agent-listen-port", strconv.Itoa(ports[5]),
		"--dashboard-agent-grpc-port", strconv.Itoa(ports[6]), "--runtime-env-agent-port", strconv.Itoa(ports[7]),
		"--min-worker-port", strconv.Itoa(ports[8]), "--max-worker-port", strconv.Itoa(ports[8] + workerPorts - 1)}
	if o.CPUs > 0 {
		args = append(args, "--num-cpus", strconv.Itoa(o.CPUs))
	}
	cmd := exec.CommandContext(ctx, ray, args...)
	// The ray CLI's directory first on PATH: job entrypoints (`python -m ...`) then run the
	// Python that has Ray (and, in a venv, django-ray).
	cmd.Env = append(os.Environ(), Marker+"="+dir, "RAY_USAGE_STATS_ENABLED=0",
		"PATH="+filepath.Dir(ray)+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // its daemons share this group
	if o.Log != nil {
		cmd.Stdout, cmd.Stderr = o.Log, o.Log
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("localray: ray start: %w", err)
	}
	h.pgid = cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		h.Stop(context.Background())
		return nil, fmt.Errorf("localray: ray start --head failed: %w", err)
	}
	if err := h.wait(ctx, o.StartTimeout); err != nil {
		h.Stop(context.Background())
		return nil, err
	}
	return h, nil
}

func (h *Head) wait(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.Address+"/api/version", nil)
		if resp, err := c.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localray: the Ray dashboard at %s did not answer within %s", h.Address, timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Stop ends every process of the head (SIGTERM, SIGKILL after 5 s or when ctx ends) and
// removes its directory. Safe to call more than once.
func (h *Head) Stop(ctx context.Context) error {
	if h == nil || h.dir == "" {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	signal := syscall.SIGTERM
	for {
		pids := h.processes()
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			_ = syscall.Kill(p, signal)
		}
		if signal == syscall.SIGKILL && time.Now().After(deadline.Add(5*time.Second)) {
			return fmt.Errorf("localray: %d process(es) of the Ray head would not die", len(pids))
		}
		select {
		case <-ctx.Done():
			signal = syscall.SIGKILL
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			signal = syscall.SIGKILL
		}
	}
	err := os.RemoveAll(h.dir)
	h.dir = ""
	return err
}

// processes lists the live processes of this head: its process group and anything carrying
// its marker (zombies excluded).
func (h *Head) processes() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	marker := []byte(Marker + "=" + h.dir + "\x00")
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		fields := strings.Fields(s[i+2:])
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		if pgrp, _ := strconv.Atoi(fields[2]); pgrp == h.pgid {
			out = append(out, pid)
			continue
		}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && containsEnv(env, marker) {
			out = append(out, pid)
		}
	}
	return out
}

func containsEnv(env, entry []byte) bool {
	s := "\x00" + string(env)
	if !strings.HasSuffix(s, "\x00") {
		s += "\x00"
	}
	return strings.Contains(s, "\x00"+string(entry))
}

// workerPorts is the size of the worker port range.
const workerPorts = 100

// freePorts returns n distinct ports free on 127.0.0.1 now, none of them one that avoid rejects.
func freePorts(n int, avoid func(int) bool) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for len(out) < n {
		if len(ls) > 10*n {
			return nil, errors.New("localray: no free port outside the worker range")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(errors.New("localray: no free port"), err)
		}
		ls = append(ls, l) // held open until the end, so the kernel never hands it out twice
		if p := l.Addr().(*net.TCPAddr).Port; !avoid(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// workerPortBase picks a range of 100 worker ports whose first port is free, below the
// usual ephemeral range (as scripts/ray.sh does).
func workerPortBase() int {
	for range 50 {
		base := 40000 + rand.IntN(200)*100
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base)); err == nil {
			l.Close()
			return base
		}
	}
	return 40000
}
