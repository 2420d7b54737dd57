package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/rayrunner"
)

// settingFlags are rayworker's flags, one per row of settings.Worker: the table is the single
// source of the flags, their help and docs/configuration.md.
func settingFlags() []cli.Flag {
	flags := make([]cli.Flag, 0, len(settings.Worker))
	for _, s := range settings.Worker {
		if s.Arg == "" {
			flags = append(flags, &cli.BoolFlag{Name: s.Name, Usage: fmt.Sprintf("%s ($%s)", s.Usage, s.Env)})
			continue
		}
		// urfave/cli shows the first `quoted` word as the value placeholder
		usage := fmt.Sprintf("%s (`%s`: %s; $%s)", s.Usage, s.Arg, s.Accepts, s.Env)
		if s.Default != "" {
			usage = fmt.Sprintf("%s (`%s`: %s; default %s; $%s)", s.Usage, s.Arg, s.Accepts, s.Default, s.Env)
		}
		// Values are parsed and range-checked by resolve, for one clear message each.
		flags = append(flags, &cli.StringFlag{Name: s.Name, Usage: usage})
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

// resolver reads each setting from its flag, else its environment variable, else the default,
// and turns a bad value into a one-line usage error naming the flag and what it accepts.
type resolver struct {
	c      *cli.Context
	getenv func(string) string
	byName map[string]settings.Setting
}

func newResolver(c *cli.Context, getenv func(string) string) resolver {
	r := resolver{c: c, getenv: getenv, byName: make(map[string]settings.Setting, len(settings.Worker))}
	for _, s := range settings.Worker {
		r.byName[s.Name] = s
	}
	return r
}

func (r resolver) raw(name string) (value, source string, ok bool) {
	s := r.byName[name]
	if r.c.IsSet(name) {
		if s.Arg == "" {
			return strconv.FormatBool(r.c.Bool(name)), "--" + name, true
		}
		return r.c.String(name), "--" + name, true
	}
	if v := r.getenv(s.Env); v != "" {
		return v, "$" + s.Env, true
	}
	return "", "", false
}

// bad is the usage error for a value the setting does not accept.
func (r resolver) bad(name, value, source string) error {
	return r.invalid(name, value, source, errors.New("want "+r.byName[name].Accepts))
}

// invalid is the usage error for a value refused by a settings parser (its error says what is
// wanted).
func (r resolver) invalid(name, value, source string, err error) error {
	return usageErrorf("invalid --%s %q%s: %v", name, value, fromEnv(source), err)
}

func (r resolver) str(name string) string {
	v, _, _ := r.raw(name)
	return v
}

func (r resolver) boolean(name string) (bool, error) {
	return value(r, name, false, settings.ParseBool)
}

// value reads a setting with its parser (which says what it wants), or its default.
func value[T any](r resolver, name string, def T, parse func(string) (T, error)) (T, error) {
	v, src, ok := r.raw(name)
	if !ok {
		return def, nil
	}
	x, err := parse(v)
	if err != nil {
		var zero T
		return zero, r.invalid(name, v, src, err)
	}
	return x, nil
}

// integer reads a whole number in the setting's range, or its default.
func (r resolver) integer(s settings.Int) (int64, error) { return value(r, s.Name, s.Default, s.Parse) }

// seconds reads a whole number of seconds in the setting's range, or its default.
func (r resolver) seconds(s settings.Int) (time.Duration, error) {
	n, err := r.integer(s)
	return time.Duration(n) * time.Second, err
}

// duration reads a duration in the setting's range, or its default.
func (r resolver) duration(s settings.Duration) (time.Duration, error) {
	return value(r, s.Name, s.Default, s.Parse)
}

// amount reads a resource amount in the setting's range (fractions allowed), or its default.
func (r resolver) amount(s settings.Float) (float64, error) {
	return value(r, s.Name, s.Default, s.Parse)
}

func list(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

var listenAddr = regexp.MustCompile(`^[^\s/]*:[0-9]{1,5}$`)

// resolve turns flags and environment into options, refusing invalid values. Each step reads
// a group of settings, in the order their errors are reported.
func resolve(c *cli.Context, getenv func(string) string) (options, error) {
	r := newResolver(c, getenv)
	var o options
	for _, step := range []func(*options) error{
		r.queues, r.mode, r.execOptions, r.entrypoint, r.policy, r.heartbeats, r.results, r.runtimeEnv, r.rayOptions, r.serving,
	} {
		if err := step(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// queues: --all-queues > --queues > --queue > default, as django_ray_worker.
func (r resolver) queues(o *options) error {
	all, err := r.boolean(settings.AllQueues.Name)
	if err != nil {
		return err
	}
	for _, name := range []string{settings.Queues.Name, settings.Queue.Name} {
		v, src, ok := r.raw(name)
		if !ok {
			continue
		}
		qs := list(v)
		if len(qs) == 0 {
			return r.bad(name, v, src)
		}
		for _, q := range qs {
			if len(q) > 100 {
				return usageErrorf("invalid --%s: queue name %q is longer than 100 characters", name, q[:20]+"...")
			}
		}
		if o.cfg.Queues == nil {
			o.cfg.Queues = qs
		}
	}
	if o.cfg.Queues == nil {
		o.cfg.Queues = []string{settings.Queue.Default}
	}
	if all {
		o.cfg.Queues = nil
	}
	n, err := r.integer(settings.Concurrency)
	o.cfg.Concurrency = int(n)
	return err
}

// mode: --sync > --local > --cluster > the default Ray Job mode; and the database.
func (r resolver) mode(o *options) error {
	sync, err := r.boolean(settings.Sync.Name)
	if err != nil {
		return err
	}
	local, err := r.boolean(settings.Local.Name)
	if err != nil {
		return err
	}
	cluster, clusterSrc, hasCluster := r.raw(settings.Cluster.Name)
	if hasCluster && strings.TrimSpace(cluster) == "" {
		return r.bad(settings.Cluster.Name, cluster, clusterSrc)
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
	o.dsn = r.str(settings.DatabaseURL.Name)
	return nil
}

// entrypoint is the per-task command of the process runner and of every Ray job.
func (r resolver) entrypoint(o *options) error {
	o.entryText = settings.Entrypoint.Default
	if v, src, ok := r.raw(settings.Entrypoint.Name); ok {
		o.entryText = v
		if _, err := procrunner.SplitCommand(v); err != nil {
			return usageErrorf("invalid --entrypoint %q%s: %v", v, fromEnv(src), err)
		}
	}
	var err error
	if o.runner.Entrypoint, err = procrunner.SplitCommand(o.entryText); err != nil {
		return usageErrorf("invalid --entrypoint: %v", err)
	}
	return nil
}

// policy is the retry policy: MAX_TASK_ATTEMPTS, RETRY_BACKOFF_SECONDS, RETRY_EXCEPTION_DENYLIST.
func (r resolver) policy(o *options) error {
	attempts, err := r.integer(settings.MaxTaskAttempts)
	if err != nil {
		return err
	}
	backoff, err := r.seconds(settings.RetryBackoffSeconds)
	if err != nil {
		return err
	}
	o.cfg.Policy = lifecycle.Policy{MaxAttempts: int(attempts), Backoff: backoff,
		Denylist: list(r.str(settings.RetryExceptionDenylist.Name))}
	return nil
}

// heartbeats are the stuck timeout, the lease and the heartbeat that must beat inside both.
func (r resolver) heartbeats(o *options) error {
	stuck, err := r.seconds(settings.StuckTaskTimeoutSeconds)
	if err != nil {
		return err
	}
	lease, err := r.seconds(settings.WorkerLeaseSeconds)
	if err != nil {
		return err
	}
	hb, err := r.seconds(settings.WorkerHeartbeatSeconds)
	if err != nil {
		return err
	}
	s := func(d time.Duration) int64 { return int64(d / time.Second) }
	if hb >= lease {
		return usageErrorf("invalid --%s %d: want less than --%s (%d)", settings.WorkerHeartbeatSeconds.Name, s(hb), settings.WorkerLeaseSeconds.Name, s(lease))
	}
	if hb >= stuck {
		return usageErrorf("invalid --%s %d: want less than --%s (%d)", settings.WorkerHeartbeatSeconds.Name, s(hb), settings.StuckTaskTimeoutSeconds.Name, s(stuck))
	}
	o.cfg.StuckAfter, o.cfg.LeaseTTL, o.cfg.HeartbeatInterval = stuck, lease, hb
	return nil
}

// results: MAX_RESULT_SIZE_BYTES and the backend for larger results.
func (r resolver) results(o *options) error {
	maxInline, err := r.integer(settings.MaxResultSizeBytes)
	if err != nil {
		return err
	}
	o.cfg.Results.MaxInline = maxInline
	o.cfg.Results.Backend, err = r.resultBackend(r.c.Context)
	return err
}

// runtimeEnv is RAY_RUNTIME_ENV: the Ray jobs' runtime_env, and --sync's environment.
func (r resolver) runtimeEnv(o *options) error {
	v, src, ok := r.raw(settings.RayRuntimeEnv.Name)
	if !ok {
		return nil
	}
	env, ignored, err := parseRuntimeEnv(v)
	if err != nil {
		return usageErrorf("invalid --ray-runtime-env%s: %v", fromEnv(src), err)
	}
	o.runner.Env, o.ignored = env, ignored
	if err := json.Unmarshal([]byte(v), &o.ray.runtimeEnv); err != nil {
		return usageErrorf("invalid --ray-runtime-env%s: %v", fromEnv(src), err)
	}
	if len(o.ray.runtimeEnv) == 0 {
		o.ray.runtimeEnv = nil // send no runtime_env rather than an empty one
	}
	return nil
}

// serving: the metrics address, the log format and the shutdown timeout.
func (r resolver) serving(o *options) error {
	if v, src, ok := r.raw(settings.MetricsAddr.Name); ok && v != "" {
		if !listenAddr.MatchString(v) {
			return r.bad(settings.MetricsAddr.Name, v, src)
		}
		if p, _ := strconv.Atoi(v[strings.LastIndexByte(v, ':')+1:]); p > 65535 {
			return r.bad(settings.MetricsAddr.Name, v, src)
		}
		o.cfg.MetricsAddr = v
	}

	switch v, src, _ := r.raw(settings.LogFormat.Name); strings.ToLower(v) {
	case "", "text":
	case "json":
		o.logJSON = true
	default:
		return r.bad(settings.LogFormat.Name, v, src)
	}

	d, err := r.duration(settings.ShutdownTimeout)
	if err != nil {
		return err
	}
	o.cfg.ShutdownTimeout = d
	if d == 0 {
		o.cfg.ShutdownTimeout = -1 // stop running tasks at once
	}
	return nil
}

// resultBackend resolves RESULT_STORAGE_BACKEND and its companion settings (the cloud ones
// with django-ray's defaults) and opens the backend, which contacts nothing yet.
func (r resolver) resultBackend(ctx context.Context) (lifecycle.Backend, error) {
	rc := resultstore.ConfigFrom(func(s settings.Setting) string {
		if v, _, ok := r.raw(s.Name); ok {
			return v
		}
		return s.Default
	}, r.getenv("STORAGE_EMULATOR_HOST"))
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
func (r resolver) execOptions(o *options) error {
	x := &o.exec
	cluster, _, _ := r.raw(settings.Cluster.Name)
	runner, runnerSrc, hasRunner := r.raw(settings.Runner.Name)
	runner = strings.ToLower(strings.TrimSpace(runner))
	if hasRunner && runner != runnerRayJob && runner != runnerRayCore {
		return r.bad(settings.Runner.Name, runner, runnerSrc)
	}
	executor, executorSrc, hasExecutor := r.raw(settings.Executor.Name)
	executor = strings.ToLower(strings.TrimSpace(executor))
	if hasExecutor && executor != runnerPool && executor != runnerProcess {
		return r.bad(settings.Executor.Name, executor, executorSrc)
	}
	_, entrySrc, hasEntry := r.raw(settings.Entrypoint.Name)
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
	x.python = strings.TrimSpace(r.str(settings.Python.Name))
	n, err := r.integer(settings.MaxTasksPerExecutor)
	if err != nil {
		return err
	}
	x.maxTasks = int(n)
	mb, err := r.integer(settings.ExecutorMaxRSSMB)
	if err != nil {
		return err
	}
	x.maxRSS = mb << 20
	if x.startTimeout, err = r.duration(settings.ExecutorStartTimeout); err != nil {
		return err
	}
	if x.runner != runnerRayCore {
		return nil
	}
	// ray.init's address: --cluster, --local (none), else RAY_ADDRESS unless it is "auto", as
	// django-ray 0.2.0's RUNNER=ray_core does.
	switch o.mode {
	case "cluster":
		x.coreAddress, x.coreAddressSrc = strings.TrimSpace(cluster), "--cluster"
		if _, src, _ := r.raw(settings.Cluster.Name); src != "" {
			x.coreAddressSrc = src
		}
	case "local":
		x.coreAddress, x.coreAddressSrc = "", "--local"
	default:
		v, src, ok := r.raw(settings.RayAddress.Name)
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
func (r resolver) rayOptions(o *options) error {
	ro := &o.ray
	if o.exec.runner == runnerRayCore {
		return nil // no Jobs API: the driver connects with exec.coreAddress
	}
	cluster, _, _ := r.raw(settings.Cluster.Name)
	switch o.mode {
	case "local":
		ro.address, ro.addressSource = settings.DefaultRayAddress, "--local"
	case "cluster":
		_, src, _ := r.raw(settings.Cluster.Name)
		ro.address, ro.addressSource = strings.TrimSpace(cluster), src
	default:
		v, src, ok := r.raw(settings.RayAddress.Name)
		ro.address, ro.addressSource = strings.TrimSpace(v), src
		if !ok || strings.EqualFold(ro.address, "auto") || ro.address == "" {
			ro.address, ro.addressSource = settings.DefaultRayAddress, "default"
		}
	}
	ro.tokenFile = strings.TrimSpace(r.str(settings.RayAuthTokenFile.Name))
	ro.caFile = strings.TrimSpace(r.str(settings.RayCAFile.Name))
	var err error
	if ro.pendingTimeout, err = r.duration(settings.RayPendingTimeout); err != nil {
		return err
	}
	if ro.resources.NumCPUs, err = r.amount(settings.RayEntrypointNumCPUs); err != nil {
		return err
	}
	if ro.resources.NumGPUs, err = r.amount(settings.RayEntrypointNumGPUs); err != nil {
		return err
	}
	mb, err := r.integer(settings.RayEntrypointMemoryMB)
	if err != nil {
		return err
	}
	ro.resources.Memory = mb << 20
	if v, src, ok := r.raw(settings.RayEntrypointResources.Name); ok {
		var custom map[string]float64
		if err := json.Unmarshal([]byte(v), &custom); err != nil {
			return usageErrorf("invalid --ray-entrypoint-resources%s: want %s (%v)", fromEnv(src), settings.RayEntrypointResources.Accepts, err)
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

func fromEnv(src string) string {
	if strings.HasPrefix(src, "$") {
		return " (from " + src + ")"
	}
	return ""
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
