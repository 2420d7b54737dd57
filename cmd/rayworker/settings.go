package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/rayrunner"
)

// setting is one configuration value: a flag, the environment variable that also sets it,
// its default and what it accepts. The table below is the single source of the flags, their
// help and the README's configuration table.
type setting struct {
	name    string // flag name
	env     string // environment variable
	arg     string // value placeholder; empty for a boolean
	def     string // default, as shown
	accepts string // allowed values, as shown
	usage   string
}

var settings = []setting{
	{"queue", "DJANGO_RAY_QUEUE", "Q[,Q...]", "default", "queue names, comma-separated", "queue(s) to take tasks from"},
	{"queues", "DJANGO_RAY_QUEUES", "Q...", "", "queue names, space- or comma-separated", "queues to take tasks from (wins over --queue)"},
	{"all-queues", "DJANGO_RAY_ALL_QUEUES", "", "false", "true/false", "take tasks from every queue (wins over --queues and --queue)"},
	{"concurrency", "DJANGO_RAY_CONCURRENCY", "N", "10", "1..1000", "tasks run at once"},
	{"sync", "DJANGO_RAY_SYNC", "", "false", "true/false", "run tasks on this machine, without Ray (see --executor)"},
	{"local", "DJANGO_RAY_LOCAL", "", "false", "true/false", "run tasks on a Ray on this machine: as Ray jobs on the Ray at 127.0.0.1:8265, starting a head (and stopping it at exit) if none answers and the ray CLI exists; with --runner ray_core, through a driver's ray.init() (django-ray's --local)"},
	{"cluster", "DJANGO_RAY_CLUSTER", "ADDR", "", "a Ray Jobs API address (http[s]://HOST:PORT), or a Ray Client (ray://HOST:10001) or GCS (HOST:6379) address for --runner ray_core", "run tasks on the Ray cluster at ADDR (ray://... means --runner ray_core, as in django-ray)"},
	{"runner", "DJANGO_RAY_RUNNER", "R", "ray_job", "ray_job, ray_core", "how tasks run on Ray: ray_job = one Ray job per task (Jobs API); ray_core = one remote call per task from a Python driver (django-ray's RUNNER)"},
	{"executor", "DJANGO_RAY_EXECUTOR", "E", "pool", "pool, process", "with --sync: pool = long-lived Python executors that set Django up once, one per --concurrency slot; process = a new process per task running --entrypoint (an explicit --entrypoint selects it)"},
	{"python", "DJANGO_RAY_PYTHON", "PATH", "$VIRTUAL_ENV/bin/python, else python3", "an interpreter (path or name on PATH) that imports django_ray", "Python for the executors (--sync's pool) and the Ray Core driver"},
	{"max-tasks-per-executor", "DJANGO_RAY_MAX_TASKS_PER_EXECUTOR", "N", "0", "0..1000000 (0: never)", "replace an executor after N tasks (bounds leaks)"},
	{"executor-max-rss-mb", "DJANGO_RAY_EXECUTOR_MAX_RSS_MB", "MB", "0", "0..1048576 (0: never)", "replace an executor whose resident memory passes MB after a task"},
	{"executor-start-timeout", "DJANGO_RAY_EXECUTOR_START_TIMEOUT", "D", "2m", "1s..1h (a duration, or seconds)", "time for an executor to become ready (django.setup(); for the Ray Core driver, ray.init() and a probe task on a Ray worker)"},
	{"database-url", "DATABASE_URL", "URL", "libpq PG* variables", "postgres:// URL or key=value DSN", "PostgreSQL holding the django-ray tables"},
	{"ray-address", "RAY_ADDRESS", "ADDR", "http://127.0.0.1:8265", "a Ray Jobs API address (http[s]://HOST:PORT), or a ray:// or HOST:PORT address for --runner ray_core; auto means the default", "Ray for the default mode (Ray jobs; Ray Core: no address or auto means a Ray on this machine)"},
	{"ray-auth-token-file", "RAY_AUTH_TOKEN_PATH", "FILE", "", "a file holding the token", "Ray auth token file (Ray >= 2.52 token auth); else $RAY_AUTH_TOKEN, else ~/.ray/auth_token; never a command-line value"},
	{"ray-ca-file", "DJANGO_RAY_RAY_CA_FILE", "FILE", "", "a PEM file", "certificate authorities to trust for an https Jobs API (a TLS proxy in front of Ray)"},
	{"ray-pending-timeout", "DJANGO_RAY_RAY_PENDING_TIMEOUT", "D", "15m", "1s..24h (a duration, or seconds)", "a Ray job PENDING longer is stopped and its attempt fails (RayJobFailed)"},
	{"ray-entrypoint-num-cpus", "DJANGO_RAY_RAY_ENTRYPOINT_NUM_CPUS", "N", "0", "0..1024 (fractions allowed)", "CPUs each Ray job's driver reserves (entrypoint_num_cpus); none: Ray runs every driver on the head, any: on any node with them free"},
	{"ray-entrypoint-num-gpus", "DJANGO_RAY_RAY_ENTRYPOINT_NUM_GPUS", "N", "0", "0..1024 (fractions allowed)", "GPUs each Ray job's driver reserves (entrypoint_num_gpus)"},
	{"ray-entrypoint-memory-mb", "DJANGO_RAY_RAY_ENTRYPOINT_MEMORY_MB", "MB", "0", "0..16777216", "memory each Ray job's driver reserves (entrypoint_memory)"},
	{"ray-entrypoint-resources", "DJANGO_RAY_RAY_ENTRYPOINT_RESOURCES", "JSON", "{}", `a JSON object of custom resource names to amounts, e.g. {"worker_node": 0.01}`, "custom resources each Ray job's driver reserves (entrypoint_resources)"},
	{"entrypoint", "DJANGO_RAY_ENTRYPOINT", "CMD", lifecycle.DefaultEntrypoint, "a command, split like a shell (no expansion)", "task entrypoint; --payload-b64 <payload> is appended"},
	{"max-task-attempts", "DJANGO_RAY_MAX_TASK_ATTEMPTS", "N", "3", "1..100", "attempts per task, the first included"},
	{"retry-backoff-seconds", "DJANGO_RAY_RETRY_BACKOFF_SECONDS", "N", "60", "0..3600", "retry delay base: min(N * 2^attempt, 3600) s"},
	{"retry-exception-denylist", "DJANGO_RAY_RETRY_EXCEPTION_DENYLIST", "T[,T...]", "", "exception types, comma-separated", "exception types never retried (e.g. builtins.ValueError,RayJobFailed,TaskLost)"},
	{"stuck-task-timeout-seconds", "DJANGO_RAY_STUCK_TASK_TIMEOUT_SECONDS", "N", "300", "30..86400", "a RUNNING task without a heartbeat this long is LOST"},
	{"worker-lease-seconds", "DJANGO_RAY_WORKER_LEASE_SECONDS", "N", "60", "2..86400, more than the heartbeat", "a worker without a lease heartbeat this long is dead"},
	{"worker-heartbeat-seconds", "DJANGO_RAY_WORKER_HEARTBEAT_SECONDS", "N", "15", "1..3600, less than the lease and the stuck timeout", "lease and task heartbeats, and maintenance sweeps, every N s"},
	{"max-result-size-bytes", "DJANGO_RAY_MAX_RESULT_SIZE_BYTES", "N", "1048576", "1024..104857600", "larger results are stored as a reference"},
	{"result-storage-backend", "DJANGO_RAY_RESULT_STORAGE_BACKEND", "B", "digest", resultstore.Backends, "where results too large to inline go"},
	{"result-storage-filesystem-path", "DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH", "DIR", "", "a directory (required for filesystem)", "root of the filesystem result store"},
	// RESULT_STORAGE_S3_* and _GCS_*: defined once in resultstore, shared with rayctl
	cloudSetting(resultstore.S3Bucket),
	cloudSetting(resultstore.S3Prefix),
	cloudSetting(resultstore.S3Region),
	cloudSetting(resultstore.S3EndpointURL),
	cloudSetting(resultstore.GCSBucket),
	cloudSetting(resultstore.GCSPrefix),
	{"ray-runtime-env", "DJANGO_RAY_RAY_RUNTIME_ENV", "JSON", "{}", `a JSON object; "env_vars" maps names to strings`, "Ray runtime_env of every job; with --sync only its env_vars are used, set for each task"},
	{"metrics-addr", "DJANGO_RAY_METRICS_ADDR", "HOST:PORT", "", "host:port (empty: off)", "serve /metrics, /healthz and /readyz"},
	{"log-format", "DJANGO_RAY_LOG_FORMAT", "F", "text", "text, json", "log format (stderr)"},
	{"shutdown-timeout", "DJANGO_RAY_SHUTDOWN_TIMEOUT", "D", "30s", "0s..1h (a duration, or seconds)", "on SIGTERM/SIGINT, time for running tasks to finish before they are handed back"},
}

func cloudSetting(s resultstore.Setting) setting {
	return setting{name: s.Flag, env: s.Env, arg: s.Arg, def: s.Default, accepts: s.Accepts, usage: s.Usage}
}

func settingFlags() []cli.Flag {
	flags := make([]cli.Flag, 0, len(settings))
	for _, s := range settings {
		// urfave/cli shows the first `quoted` word as the value placeholder
		usage := fmt.Sprintf("%s (`%s`: %s; $%s)", s.usage, s.arg, s.accepts, s.env)
		if s.def != "" {
			usage = fmt.Sprintf("%s (`%s`: %s; default %s; $%s)", s.usage, s.arg, s.accepts, s.def, s.env)
		}
		if s.arg == "" {
			flags = append(flags, &cli.BoolFlag{Name: s.name, Usage: fmt.Sprintf("%s ($%s)", s.usage, s.env)})
			continue
		}
		// Values are parsed and range-checked by resolve, for one clear message each.
		flags = append(flags, &cli.StringFlag{Name: s.name, Usage: usage})
	}
	return flags
}

// options is the resolved command line.
type options struct {
	dsn       string
	mode      string // "sync", "local", "cluster" or "ray"
	logJSON   bool
	cfg       worker.Config
	runner    procrunner.Config
	entryText string
	ignored   []string // runtime_env keys --sync does not use
	ray       rayOptions
	exec      execOptions
}

// Runner kinds: how a mode runs its tasks.
const (
	runnerProcess = "process"  // --sync --executor process
	runnerPool    = "pool"     // --sync (default)
	runnerRayJob  = "ray_job"  // default, --local, --cluster http(s)://
	runnerRayCore = "ray_core" // --runner ray_core, --cluster ray://
)

// execOptions configure the Python executors (the pool and the Ray Core driver).
type execOptions struct {
	runner         string // one of the runner kinds
	python         string // --python as given ("" = $VIRTUAL_ENV/bin/python, else python3)
	maxTasks       int
	maxRSS         int64
	startTimeout   time.Duration
	coreAddress    string // ray.init's address ("" = a Ray on this machine)
	coreAddressSrc string
}

// rayOptions configure the Ray Job modes (default, --cluster, --local).
type rayOptions struct {
	address        string // the Jobs API
	addressSource  string // where it came from, for the configuration log
	tokenFile      string // --ray-auth-token-file; "" means $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token
	caFile         string
	runtimeEnv     map[string]any
	pendingTimeout time.Duration
	resources      rayrunner.Resources // entrypoint resources: where Ray places each job's driver
}

// localAddress is --local's Jobs API, and the default mode's when RAY_ADDRESS is unset or
// "auto" (where Ray's own tools look too).
const localAddress = "http://127.0.0.1:8265"

// resolver reads each setting from its flag, else its environment variable, else the default,
// and turns a bad value into a one-line usage error naming the flag and what it accepts.
type resolver struct {
	c      *cli.Context
	getenv func(string) string
	byName map[string]setting
}

func (r resolver) raw(name string) (value, source string, ok bool) {
	s := r.byName[name]
	if r.c.IsSet(name) {
		if s.arg == "" {
			return strconv.FormatBool(r.c.Bool(name)), "--" + name, true
		}
		return r.c.String(name), "--" + name, true
	}
	if v := r.getenv(s.env); v != "" {
		return v, "$" + s.env, true
	}
	return "", "", false
}

func (r resolver) bad(name, value, source string) error {
	s := r.byName[name]
	from := ""
	if strings.HasPrefix(source, "$") {
		from = " (from " + source + ")"
	}
	return usageErrorf("invalid --%s %q%s: want %s", name, value, from, s.accepts)
}

func (r resolver) str(name string) string {
	v, _, _ := r.raw(name)
	return v
}

func (r resolver) boolean(name string) (bool, error) {
	v, src, ok := r.raw(name)
	if !ok {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, r.bad(name, v, src)
}

// integer reads a whole number in lo..hi, or the default.
func (r resolver) integer(name string, def, lo, hi int64) (int64, error) {
	v, src, ok := r.raw(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, usageErrorf("invalid --%s %q%s: want an integer in %s", name, v, fromEnv(src), r.byName[name].accepts)
	}
	return n, nil
}

func list(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" && !containsStr(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func containsStr(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

var listenAddr = regexp.MustCompile(`^[^\s/]*:[0-9]{1,5}$`)

// resolve turns flags and environment into options, refusing invalid values.
func resolve(c *cli.Context, getenv func(string) string) (options, error) {
	r := resolver{c: c, getenv: getenv, byName: map[string]setting{}}
	for _, s := range settings {
		r.byName[s.name] = s
	}
	var o options
	var err error
	cfg := &o.cfg

	// queues: --all-queues > --queues > --queue > default, as django_ray_worker
	all, err := r.boolean("all-queues")
	if err != nil {
		return o, err
	}
	for _, name := range []string{"queues", "queue"} {
		v, src, ok := r.raw(name)
		if !ok {
			continue
		}
		qs := list(v)
		if len(qs) == 0 {
			return o, r.bad(name, v, src)
		}
		for _, q := range qs {
			if len(q) > 100 {
				return o, usageErrorf("invalid --%s: queue name %q is longer than 100 characters", name, q[:20]+"...")
			}
		}
		if cfg.Queues == nil {
			cfg.Queues = qs
		}
	}
	if cfg.Queues == nil {
		cfg.Queues = []string{"default"}
	}
	if all {
		cfg.Queues = nil
	}

	n, err := r.integer("concurrency", 10, worker.MinConcurrency, worker.MaxConcurrency)
	if err != nil {
		return o, err
	}
	cfg.Concurrency = int(n)

	// mode: --sync > --local > --cluster > the default Ray Job mode
	sync, err := r.boolean("sync")
	if err != nil {
		return o, err
	}
	local, err := r.boolean("local")
	if err != nil {
		return o, err
	}
	cluster, clusterSrc, hasCluster := r.raw("cluster")
	if hasCluster && strings.TrimSpace(cluster) == "" {
		return o, r.bad("cluster", cluster, clusterSrc)
	}
	switch {
	case sync:
		o.mode = "sync"
	case local:
		o.mode = "local"
	case hasCluster:
		o.mode = "cluster"
	default:
		o.mode = "ray"
	}

	o.dsn = r.str("database-url")
	if err := r.execOptions(&o, cluster); err != nil {
		return o, err
	}

	o.entryText = lifecycle.DefaultEntrypoint
	if v, src, ok := r.raw("entrypoint"); ok {
		o.entryText = v
		if _, err := procrunner.SplitCommand(v); err != nil {
			return o, usageErrorf("invalid --entrypoint %q%s: %v", v, fromEnv(src), err)
		}
	}
	if o.runner.Entrypoint, err = procrunner.SplitCommand(o.entryText); err != nil {
		return o, usageErrorf("invalid --entrypoint: %v", err)
	}

	attempts, err := r.integer("max-task-attempts", 3, worker.MinAttempts, worker.MaxAttempts)
	if err != nil {
		return o, err
	}
	backoff, err := r.integer("retry-backoff-seconds", 60, 0, 3600)
	if err != nil {
		return o, err
	}
	cfg.Policy = lifecycle.Policy{MaxAttempts: int(attempts), Backoff: time.Duration(backoff) * time.Second,
		Denylist: list(r.str("retry-exception-denylist"))}

	stuck, err := r.integer("stuck-task-timeout-seconds", 300, 30, 86400)
	if err != nil {
		return o, err
	}
	lease, err := r.integer("worker-lease-seconds", 60, 2, 86400)
	if err != nil {
		return o, err
	}
	hb, err := r.integer("worker-heartbeat-seconds", 15, 1, 3600)
	if err != nil {
		return o, err
	}
	if hb >= lease {
		return o, usageErrorf("invalid --worker-heartbeat-seconds %d: want less than --worker-lease-seconds (%d)", hb, lease)
	}
	if hb >= stuck {
		return o, usageErrorf("invalid --worker-heartbeat-seconds %d: want less than --stuck-task-timeout-seconds (%d)", hb, stuck)
	}
	cfg.StuckAfter, cfg.LeaseTTL, cfg.HeartbeatInterval = time.Duration(stuck)*time.Second, time.Duration(lease)*time.Second, time.Duration(hb)*time.Second

	maxInline, err := r.integer("max-result-size-bytes", lifecycle.DefaultMaxInline, worker.MinResultSize, worker.MaxResultSize)
	if err != nil {
		return o, err
	}
	cfg.Results.MaxInline = maxInline
	if cfg.Results.Backend, err = r.resultBackend(c.Context); err != nil {
		return o, err
	}

	if v, src, ok := r.raw("ray-runtime-env"); ok {
		env, ignored, err := parseRuntimeEnv(v)
		if err != nil {
			return o, usageErrorf("invalid --ray-runtime-env%s: %v", fromEnv(src), err)
		}
		o.runner.Env, o.ignored = env, ignored
		if err := json.Unmarshal([]byte(v), &o.ray.runtimeEnv); err != nil {
			return o, usageErrorf("invalid --ray-runtime-env%s: %v", fromEnv(src), err)
		}
		if len(o.ray.runtimeEnv) == 0 {
			o.ray.runtimeEnv = nil // send no runtime_env rather than an empty one
		}
	}
	if err := r.rayOptions(&o, cluster); err != nil {
		return o, err
	}

	if v, src, ok := r.raw("metrics-addr"); ok && v != "" {
		if !listenAddr.MatchString(v) {
			return o, r.bad("metrics-addr", v, src)
		}
		if p, _ := strconv.Atoi(v[strings.LastIndexByte(v, ':')+1:]); p > 65535 {
			return o, r.bad("metrics-addr", v, src)
		}
		cfg.MetricsAddr = v
	}

	switch v, src, _ := r.raw("log-format"); strings.ToLower(v) {
	case "", "text":
	case "json":
		o.logJSON = true
	default:
		return o, r.bad("log-format", v, src)
	}

	cfg.ShutdownTimeout = 30 * time.Second
	if v, src, ok := r.raw("shutdown-timeout"); ok {
		d, ok := parseDuration(v)
		if !ok || d < 0 || d > time.Hour {
			return o, r.bad("shutdown-timeout", v, src)
		}
		cfg.ShutdownTimeout = d
		if d == 0 {
			cfg.ShutdownTimeout = -1 // stop running tasks at once
		}
	}
	return o, nil
}

// resultBackend resolves RESULT_STORAGE_BACKEND and its companion settings (the cloud ones
// with django-ray's defaults) and opens the backend, which contacts nothing yet.
func (r resolver) resultBackend(ctx context.Context) (lifecycle.Backend, error) {
	str := func(s resultstore.Setting) string {
		if v, _, ok := r.raw(s.Flag); ok {
			return v
		}
		return s.Default
	}
	rc := resultstore.Config{
		Backend:        r.str("result-storage-backend"),
		FilesystemPath: r.str("result-storage-filesystem-path"),
		S3: resultstore.S3Config{Bucket: strings.TrimSpace(str(resultstore.S3Bucket)), Prefix: str(resultstore.S3Prefix),
			Region: strings.TrimSpace(str(resultstore.S3Region)), EndpointURL: strings.TrimSpace(str(resultstore.S3EndpointURL))},
		GCS: resultstore.GCSConfig{Bucket: strings.TrimSpace(str(resultstore.GCSBucket)), Prefix: str(resultstore.GCSPrefix),
			Emulator: strings.TrimSpace(r.getenv("STORAGE_EMULATOR_HOST"))},
	}
	b, err := resultstore.Open(ctx, rc)
	var ce *resultstore.ConfigError
	if errors.As(err, &ce) {
		_, src, _ := r.raw(ce.Flag)
		return nil, usageErrorf("%s%s", ce.Msg, fromEnv(src))
	}
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return b, nil
}

// execOptions resolves which runner the mode uses (django-ray 0.2.0: --sync runs in-process,
// --local and --cluster ray://... use Ray Core, RUNNER picks for the default mode) and the
// executors' settings.
func (r resolver) execOptions(o *options, cluster string) error {
	x := &o.exec
	runner, runnerSrc, hasRunner := r.raw("runner")
	runner = strings.ToLower(strings.TrimSpace(runner))
	if hasRunner && runner != runnerRayJob && runner != runnerRayCore {
		return r.bad("runner", runner, runnerSrc)
	}
	executor, executorSrc, hasExecutor := r.raw("executor")
	executor = strings.ToLower(strings.TrimSpace(executor))
	if hasExecutor && executor != runnerPool && executor != runnerProcess {
		return r.bad("executor", executor, executorSrc)
	}
	_, entrySrc, hasEntry := r.raw("entrypoint")
	switch o.mode {
	case "sync":
		x.runner = runnerPool
		if hasEntry {
			x.runner = runnerProcess // a per-task command: django-ray's entrypoint or a test script
		}
		if hasExecutor {
			if executor == runnerPool && hasEntry {
				return usageErrorf("--executor pool runs django-ray's execution function in the executors; --entrypoint (from %s) applies to --executor process", entrySrc)
			}
			x.runner = executor
		}
	default:
		if hasExecutor {
			return usageErrorf("--executor (from %s) applies to --sync; on Ray, choose with --runner ray_job|ray_core", executorSrc)
		}
		x.runner = runnerRayJob
		if o.mode == "cluster" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(cluster)), "ray://") {
			x.runner = runnerRayCore // a Ray Client address: django-ray's --cluster
			if hasRunner && runner == runnerRayJob {
				return usageErrorf("--cluster %s is a Ray Client address, which --runner ray_job cannot use; the Jobs API is the dashboard's http://HOST:8265", strings.TrimSpace(cluster))
			}
		}
		if hasRunner {
			x.runner = runner
		}
	}
	x.python = strings.TrimSpace(r.str("python"))
	n, err := r.integer("max-tasks-per-executor", 0, 0, 1_000_000)
	if err != nil {
		return err
	}
	x.maxTasks = int(n)
	mb, err := r.integer("executor-max-rss-mb", 0, 0, 1<<20)
	if err != nil {
		return err
	}
	x.maxRSS = mb << 20
	x.startTimeout = 2 * time.Minute
	if v, src, ok := r.raw("executor-start-timeout"); ok {
		d, ok := parseDuration(v)
		if !ok || d < time.Second || d > time.Hour {
			return r.bad("executor-start-timeout", v, src)
		}
		x.startTimeout = d
	}
	if x.runner != runnerRayCore {
		return nil
	}
	// ray.init's address: --cluster, --local (none), else RAY_ADDRESS unless it is "auto", as
	// django-ray 0.2.0's RUNNER=ray_core does.
	switch o.mode {
	case "cluster":
		x.coreAddress, x.coreAddressSrc = strings.TrimSpace(cluster), "--cluster"
		if _, src, _ := r.raw("cluster"); src != "" {
			x.coreAddressSrc = src
		}
	case "local":
		x.coreAddress, x.coreAddressSrc = "", "--local"
	default:
		v, src, ok := r.raw("ray-address")
		x.coreAddress, x.coreAddressSrc = strings.TrimSpace(v), src
		if !ok || strings.EqualFold(x.coreAddress, "auto") {
			x.coreAddress, x.coreAddressSrc = "", "default"
		}
	}
	if lower := strings.ToLower(x.coreAddress); strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
		return usageErrorf("--runner ray_core connects a Ray driver: %s (from %s) is a Jobs API address; want a Ray Client address (ray://HOST:10001) or the GCS address (HOST:6379)",
			x.coreAddress, x.coreAddressSrc)
	}
	return nil
}

// rayOptions resolves the Jobs API address and the Ray-only settings.
func (r resolver) rayOptions(o *options, cluster string) error {
	ro := &o.ray
	if o.exec.runner == runnerRayCore {
		return nil // no Jobs API: the driver connects with exec.coreAddress
	}
	switch o.mode {
	case "local":
		ro.address, ro.addressSource = localAddress, "--local"
	case "cluster":
		_, src, _ := r.raw("cluster")
		ro.address, ro.addressSource = strings.TrimSpace(cluster), src
	default:
		v, src, ok := r.raw("ray-address")
		ro.address, ro.addressSource = strings.TrimSpace(v), src
		if !ok || strings.EqualFold(ro.address, "auto") || ro.address == "" {
			ro.address, ro.addressSource = localAddress, "default"
		}
	}
	ro.tokenFile = strings.TrimSpace(r.str("ray-auth-token-file"))
	ro.caFile = strings.TrimSpace(r.str("ray-ca-file"))
	ro.pendingTimeout = rayrunner.DefaultPendingTimeout
	if v, src, ok := r.raw("ray-pending-timeout"); ok {
		d, ok := parseDuration(v)
		if !ok || d < time.Second || d > 24*time.Hour {
			return r.bad("ray-pending-timeout", v, src)
		}
		ro.pendingTimeout = d
	}
	var err error
	if ro.resources.NumCPUs, err = r.amount("ray-entrypoint-num-cpus", 1024); err != nil {
		return err
	}
	if ro.resources.NumGPUs, err = r.amount("ray-entrypoint-num-gpus", 1024); err != nil {
		return err
	}
	mb, err := r.integer("ray-entrypoint-memory-mb", 0, 0, 16<<20)
	if err != nil {
		return err
	}
	ro.resources.Memory = mb << 20
	if v, src, ok := r.raw("ray-entrypoint-resources"); ok {
		var custom map[string]float64
		if err := json.Unmarshal([]byte(v), &custom); err != nil {
			return usageErrorf("invalid --ray-entrypoint-resources%s: want %s (%v)", fromEnv(src), r.byName["ray-entrypoint-resources"].accepts, err)
		}
		for k, n := range custom {
			if k == "" || n <= 0 || math.IsInf(n, 0) {
				return usageErrorf("invalid --ray-entrypoint-resources%s: resource %q: want a name and an amount above 0", fromEnv(src), k)
			}
		}
		if len(custom) > 0 {
			ro.resources.Custom = custom
		}
	}
	return nil
}

// amount reads a resource amount in 0..hi (fractions allowed), 0 when unset.
func (r resolver) amount(name string, hi float64) (float64, error) {
	v, src, ok := r.raw(name)
	if !ok {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > hi {
		return 0, r.bad(name, v, src)
	}
	return f, nil
}

func fromEnv(src string) string {
	if strings.HasPrefix(src, "$") {
		return " (from " + src + ")"
	}
	return ""
}

// parseDuration accepts a Go duration (90s, 2m) or a number of seconds.
func parseDuration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// parseRuntimeEnv validates a Ray runtime_env and returns its env_vars and the keys the
// process runner does not use.
func parseRuntimeEnv(text string) (map[string]string, []string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &raw); err != nil || raw == nil {
		return nil, nil, fmt.Errorf("want a JSON object, like {\"env_vars\": {\"DJANGO_SETTINGS_MODULE\": \"app.settings\"}}")
	}
	env := map[string]string{}
	var ignored []string
	for k, v := range raw {
		if k != "env_vars" {
			ignored = append(ignored, k)
			continue
		}
		var vars map[string]any
		if err := json.Unmarshal(v, &vars); err != nil || vars == nil {
			return nil, nil, fmt.Errorf(`"env_vars" must be a JSON object of strings`)
		}
		for name, val := range vars {
			s, ok := val.(string)
			if !ok {
				return nil, nil, fmt.Errorf(`"env_vars": %q must be a string (Ray requires string values)`, name)
			}
			if name == "" || strings.ContainsAny(name, "=\x00") {
				return nil, nil, fmt.Errorf(`"env_vars": invalid variable name %q`, name)
			}
			env[name] = s
		}
	}
	return env, ignored, nil
}
