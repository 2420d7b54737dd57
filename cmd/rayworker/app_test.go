package main

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker/procgroup"
	"github.com/rayctl/rayctl/worker/rayrunner"
)

// appMu serialises in-process runs: urfave/cli v2 mutates package-level flags while parsing.
var appMu sync.Mutex

type result struct {
	stdout, stderr string
	code           int
}

// rayworker runs the app in-process. vars is the whole environment it sees.
func rayworker(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	appMu.Lock()
	defer appMu.Unlock()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code := run(ctx, append([]string{"rayworker"}, args...), func(k string) string { return vars[k] }, &out, &errb)
	return result{out.String(), errb.String(), code}
}

// TestRefusedAtStart: every invalid value is refused before anything starts, with exit 2 and
// one line naming the flag (and the variable it came from) and what it accepts.
func TestRefusedAtStart(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"concurrency 0", nil, []string{"--sync", "--concurrency", "0"}, `invalid --concurrency "0": want an integer in 1..1000`},
		{"concurrency too big", nil, []string{"--sync", "--concurrency=1001"}, `invalid --concurrency "1001": want an integer in 1..1000`},
		{"concurrency from env", map[string]string{"DJANGO_RAY_CONCURRENCY": "ten"}, []string{"--sync"},
			`invalid --concurrency "ten" (from $DJANGO_RAY_CONCURRENCY): want an integer in 1..1000`},
		{"attempts", nil, []string{"--sync", "--max-task-attempts", "0"}, `invalid --max-task-attempts "0": want an integer in 1..100`},
		{"attempts from env", map[string]string{"DJANGO_RAY_MAX_TASK_ATTEMPTS": "101"}, []string{"--sync"},
			`invalid --max-task-attempts "101" (from $DJANGO_RAY_MAX_TASK_ATTEMPTS): want an integer in 1..100`},
		{"backoff", nil, []string{"--sync", "--retry-backoff-seconds", "-1"}, `invalid --retry-backoff-seconds "-1": want an integer in 0..3600`},
		{"stuck", nil, []string{"--sync", "--stuck-task-timeout-seconds", "29"}, `invalid --stuck-task-timeout-seconds "29": want an integer in 30..86400`},
		{"lease", nil, []string{"--sync", "--worker-lease-seconds", "1"}, `invalid --worker-lease-seconds "1": want an integer in 2..86400`},
		{"entrypoint cpus", nil, []string{"--ray-entrypoint-num-cpus", "-1"}, `invalid --ray-entrypoint-num-cpus "-1": want 0..1024 (fractions allowed)`},
		{"entrypoint gpus from env", map[string]string{"DJANGO_RAY_RAY_ENTRYPOINT_NUM_GPUS": "NaN"}, nil,
			`invalid --ray-entrypoint-num-gpus "NaN" (from $DJANGO_RAY_RAY_ENTRYPOINT_NUM_GPUS): want 0..1024 (fractions allowed)`},
		{"entrypoint memory", nil, []string{"--ray-entrypoint-memory-mb", "1.5"}, `invalid --ray-entrypoint-memory-mb "1.5": want an integer in 0..16777216`},
		{"entrypoint resources JSON", nil, []string{"--ray-entrypoint-resources", `["x"]`}, `invalid --ray-entrypoint-resources: want a JSON object`},
		{"entrypoint resources amount", nil, []string{"--ray-entrypoint-resources", `{"x": 0}`}, `invalid --ray-entrypoint-resources: resource "x": want a name and an amount above 0`},
		{"heartbeat vs lease", nil, []string{"--sync", "--worker-lease-seconds", "10", "--worker-heartbeat-seconds", "10"},
			`invalid --worker-heartbeat-seconds 10: want less than --worker-lease-seconds (10)`},
		{"heartbeat vs stuck", nil, []string{"--sync", "--worker-lease-seconds", "600", "--worker-heartbeat-seconds", "40", "--stuck-task-timeout-seconds", "30"},
			`invalid --worker-heartbeat-seconds 40: want less than --stuck-task-timeout-seconds (30)`},
		{"result size", nil, []string{"--sync", "--max-result-size-bytes", "1023"}, `invalid --max-result-size-bytes "1023": want an integer in 1024..104857600`},
		{"backend unknown", nil, []string{"--sync", "--result-storage-backend", "ftp"}, `invalid --result-storage-backend "ftp": want one of digest, filesystem, s3, gcs`},
		{"backend unknown from env", map[string]string{"DJANGO_RAY_RESULT_STORAGE_BACKEND": "azure"}, []string{"--sync"},
			`invalid --result-storage-backend "azure": want one of digest, filesystem, s3, gcs (from $DJANGO_RAY_RESULT_STORAGE_BACKEND)`},
		{"s3 without bucket", nil, []string{"--sync", "--result-storage-backend", "s3"}, `--result-storage-backend s3 needs --result-storage-s3-bucket (or $DJANGO_RAY_RESULT_STORAGE_S3_BUCKET)`},
		{"gcs without bucket", map[string]string{"DJANGO_RAY_RESULT_STORAGE_BACKEND": "GCS"}, []string{"--sync"}, `--result-storage-backend gcs needs --result-storage-gcs-bucket (or $DJANGO_RAY_RESULT_STORAGE_GCS_BUCKET)`},
		{"s3 prefix with ..", map[string]string{"DJANGO_RAY_RESULT_STORAGE_S3_PREFIX": "results/../other"}, []string{"--sync", "--result-storage-backend", "s3", "--result-storage-s3-bucket", "b"},
			`invalid --result-storage-s3-prefix "results/../other": a .. segment is refused (django-ray refuses such keys) (from $DJANGO_RAY_RESULT_STORAGE_S3_PREFIX)`},
		{"gcs prefix with ?", nil, []string{"--sync", "--result-storage-backend", "gcs", "--result-storage-gcs-bucket", "b", "--result-storage-gcs-prefix", "a?b"},
			`invalid --result-storage-gcs-prefix "a?b": a ? or # would cut the reference short`},
		{"s3 bucket with slash", nil, []string{"--sync", "--result-storage-backend", "s3", "--result-storage-s3-bucket", "b/c"}, `invalid --result-storage-s3-bucket "b/c": want a bucket name`},
		{"s3 endpoint not a URL", nil, []string{"--sync", "--result-storage-backend", "s3", "--result-storage-s3-bucket", "b", "--result-storage-s3-endpoint-url", "minio:9000"},
			`invalid --result-storage-s3-endpoint-url "minio:9000": want http(s)://HOST[:PORT]`},
		{"s3 endpoint with credentials", nil, []string{"--sync", "--result-storage-backend", "s3", "--result-storage-s3-bucket", "b", "--result-storage-s3-endpoint-url", "http://admin:hunter2secret@minio:9000"},
			`invalid --result-storage-s3-endpoint-url "http://%5BREDACTED%5D@minio:9000": credentials in the URL are not used`},
		{"filesystem without path", nil, []string{"--sync", "--result-storage-backend", "filesystem"}, `--result-storage-backend filesystem needs --result-storage-filesystem-path`},
		{"runtime env not JSON", nil, []string{"--sync", "--ray-runtime-env", "{nope"}, `invalid --ray-runtime-env: want a JSON object`},
		{"runtime env array", map[string]string{"DJANGO_RAY_RAY_RUNTIME_ENV": "[]"}, []string{"--sync"}, `invalid --ray-runtime-env (from $DJANGO_RAY_RAY_RUNTIME_ENV): want a JSON object`},
		{"runtime env non-string var", nil, []string{"--sync", "--ray-runtime-env", `{"env_vars": {"N": 1}}`}, `"env_vars": "N" must be a string`},
		{"metrics address", nil, []string{"--sync", "--metrics-addr", "localhost"}, `invalid --metrics-addr "localhost": want host:port`},
		{"log format", nil, []string{"--sync", "--log-format", "xml"}, `invalid --log-format "xml": want text, json`},
		{"shutdown timeout", nil, []string{"--sync", "--shutdown-timeout", "2h"}, `invalid --shutdown-timeout "2h": want 0s..1h`},
		{"shutdown timeout negative", nil, []string{"--sync", "--shutdown-timeout", "-1s"}, `invalid --shutdown-timeout "-1s": want 0s..1h`},
		{"entrypoint quote", nil, []string{"--sync", "--entrypoint", `python "x`}, `invalid --entrypoint "python \"x": unterminated double quote`},
		{"empty queue", nil, []string{"--sync", "--queue", ","}, `invalid --queue ",": want queue names`},
		{"bool env", map[string]string{"DJANGO_RAY_SYNC": "maybe"}, nil, `invalid --sync "maybe" (from $DJANGO_RAY_SYNC): want true/false`},
		{"unknown flag", nil, []string{"--sync", "--concurency", "3"}, `flag provided but not defined: -concurency (see rayworker --help)`},
		{"stray argument", nil, []string{"--sync", "default"}, `unexpected argument "default" (see rayworker --help)`},
		{"Ray Client address for Ray jobs", nil, []string{"--cluster", "ray://head:10001", "--runner", "ray_job"}, `ray://head:10001 is a Ray Client address, which --runner ray_job cannot use; the Jobs API is the dashboard's http://HOST:8265`},
		{"Jobs API address for Ray Core", nil, []string{"--cluster", "http://head:8265", "--runner", "ray_core"}, `--runner ray_core connects a Ray driver: http://head:8265 (from --cluster) is a Jobs API address`},
		{"RAY_ADDRESS for Ray Core", map[string]string{"RAY_ADDRESS": "http://head:8265", "DJANGO_RAY_RUNNER": "ray_core"}, nil, `http://head:8265 (from $RAY_ADDRESS) is a Jobs API address`},
		{"unknown runner", nil, []string{"--runner", "ray_actor"}, `invalid --runner "ray_actor": want ray_job, ray_core`},
		{"unknown executor", nil, []string{"--sync", "--executor", "thread"}, `invalid --executor "thread": want pool, process`},
		{"executor without --sync", nil, []string{"--executor", "pool"}, `--executor (from --executor) applies to --sync`},
		{"pool with an entrypoint", nil, []string{"--sync", "--executor", "pool", "--entrypoint", "python3 x.py"}, `--entrypoint (from --entrypoint) applies to --executor process`},
		{"max tasks per executor", nil, []string{"--sync", "--max-tasks-per-executor", "-1"}, `invalid --max-tasks-per-executor "-1": want an integer in 0..1000000`},
		{"max rss", map[string]string{"DJANGO_RAY_EXECUTOR_MAX_RSS_MB": "lots"}, []string{"--sync"}, `invalid --executor-max-rss-mb "lots" (from $DJANGO_RAY_EXECUTOR_MAX_RSS_MB)`},
		{"start timeout", nil, []string{"--sync", "--executor-start-timeout", "0"}, `invalid --executor-start-timeout "0": want 1s..1h`},
		{"no such python", nil, []string{"--sync", "--python", "/nonexistent/python3"}, `python interpreter not found (/nonexistent/python3: `},
		// what the error echoes (a path, a server's message, an executor's last line) reaches the
		// terminal only through termtext: no raw escape sequence, still one line
		{"escape sequence echoed", nil, []string{"--sync", "--python", "/nonexistent/\x1b]0;pwned\x07py\nthon"},
			`python interpreter not found (/nonexistent/\x1b]0;pwned\x07py\nthon: `},
		{"RAY_ADDRESS not http", map[string]string{"RAY_ADDRESS": "ftp://head:8265"}, nil, `scheme must be http or https`},
		{"token file missing", nil, []string{"--ray-auth-token-file", "/nonexistent/token"}, `Ray auth token: rayjobs: auth token file: open /nonexistent/token`},
		{"token path from env missing", map[string]string{"RAY_AUTH_TOKEN_PATH": "/nonexistent/token"}, nil, `Ray auth token: rayjobs: auth token file`},
		{"CA file missing", nil, []string{"--cluster", "https://ray.example", "--ray-ca-file", "/nonexistent/ca.pem"}, `rayjobs: CA file: open /nonexistent/ca.pem`},
		{"pending timeout", nil, []string{"--ray-pending-timeout", "0"}, `invalid --ray-pending-timeout "0": want 1s..24h`},
		{"empty cluster", map[string]string{"DJANGO_RAY_CLUSTER": " "}, nil, `invalid --cluster " " (from $DJANGO_RAY_CLUSTER)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rayworker(t, c.env, c.args...)
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if r.code != exitUsage || len(lines) != 1 || !strings.HasPrefix(lines[0], "rayworker: ") || !strings.Contains(lines[0], c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line with %q", r.code, r.stderr, c.want)
			}
		})
	}
}

// TestResolve: values reach the worker configuration; defaults are django-ray's; flags win
// over variables; queue and mode precedence are django_ray_worker's.
func TestResolve(t *testing.T) {
	resolveArgs := func(t *testing.T, vars map[string]string, args ...string) options {
		t.Helper()
		appMu.Lock()
		defer appMu.Unlock()
		var got options
		var rerr error
		app := env{getenv: func(k string) string { return vars[k] }}.newApp()
		app.Action = func(c *cli.Context) error {
			got, rerr = resolve(c, func(k string) string { return vars[k] })
			return nil
		}
		if err := app.Run(expandNargs(append([]string{"rayworker"}, args...), "queues")); err != nil || rerr != nil {
			t.Fatalf("%v %v", err, rerr)
		}
		return got
	}
	d := resolveArgs(t, nil)
	cfg := d.cfg
	if !reflect.DeepEqual(cfg.Queues, []string{"default"}) || cfg.Concurrency != 10 || cfg.Policy.MaxAttempts != 3 ||
		cfg.Policy.Backoff != time.Minute || len(cfg.Policy.Denylist) != 0 || cfg.StuckAfter != 300*time.Second ||
		cfg.LeaseTTL != time.Minute || cfg.HeartbeatInterval != 15*time.Second || cfg.Results.MaxInline != 1<<20 ||
		cfg.Results.Backend.Name() != "digest" || cfg.ShutdownTimeout != 30*time.Second || d.mode != "ray" || d.logJSON ||
		!reflect.DeepEqual(d.runner.Entrypoint, []string{"python", "-m", "django_ray.runtime.entrypoint"}) || cfg.MetricsAddr != "" {
		t.Fatalf("defaults: %+v %+v", d, cfg)
	}
	cases := []struct {
		name  string
		vars  map[string]string
		args  []string
		check func(o options) bool
	}{
		{"--queues takes several words", nil, []string{"--queues", "a", "b", "--sync"}, func(o options) bool {
			return reflect.DeepEqual(o.cfg.Queues, []string{"a", "b"}) && o.mode == "sync"
		}},
		{"--queues wins over --queue", nil, []string{"--queue", "x", "--queues", "a,b"}, func(o options) bool { return reflect.DeepEqual(o.cfg.Queues, []string{"a", "b"}) }},
		{"--all-queues wins", map[string]string{"DJANGO_RAY_QUEUE": "x"}, []string{"--all-queues"}, func(o options) bool { return o.cfg.Queues == nil }},
		{"queue list from env", map[string]string{"DJANGO_RAY_QUEUE": "high-priority,default"}, nil, func(o options) bool {
			return reflect.DeepEqual(o.cfg.Queues, []string{"high-priority", "default"})
		}},
		{"flag wins over env", map[string]string{"DJANGO_RAY_CONCURRENCY": "5"}, []string{"--concurrency", "7"}, func(o options) bool { return o.cfg.Concurrency == 7 }},
		{"env when no flag", map[string]string{"DJANGO_RAY_CONCURRENCY": "5", "DJANGO_RAY_SYNC": "true"}, nil, func(o options) bool {
			return o.cfg.Concurrency == 5 && o.mode == "sync"
		}},
		{"mode precedence", nil, []string{"--cluster", "ray://h:10001", "--local", "--sync"}, func(o options) bool { return o.mode == "sync" }},
		{"local over cluster", nil, []string{"--cluster", "ray://h:10001", "--local"}, func(o options) bool { return o.mode == "local" && o.exec.runner == runnerRayJob }},
		{"--sync is the pool", nil, []string{"--sync"}, func(o options) bool {
			return o.exec.runner == runnerPool && o.exec.python == "" && o.exec.maxTasks == 0 && o.exec.maxRSS == 0 && o.exec.startTimeout == 2*time.Minute
		}},
		{"--sync with an entrypoint runs a process per task", nil, []string{"--sync", "--entrypoint", "python3 t.py"}, func(o options) bool { return o.exec.runner == runnerProcess }},
		{"--executor process", map[string]string{"DJANGO_RAY_EXECUTOR": "process"}, []string{"--sync"}, func(o options) bool { return o.exec.runner == runnerProcess }},
		{"executor settings", map[string]string{"DJANGO_RAY_PYTHON": "/opt/venv/bin/python"}, []string{"--sync", "--max-tasks-per-executor", "500", "--executor-max-rss-mb", "512", "--executor-start-timeout", "30"}, func(o options) bool {
			return o.exec.python == "/opt/venv/bin/python" && o.exec.maxTasks == 500 && o.exec.maxRSS == 512<<20 && o.exec.startTimeout == 30*time.Second
		}},
		{"--cluster ray:// is Ray Core (django-ray's --cluster)", nil, []string{"--cluster", "ray://h:10001"}, func(o options) bool {
			return o.mode == "cluster" && o.exec.runner == runnerRayCore && o.exec.coreAddress == "ray://h:10001"
		}},
		{"--runner ray_core --cluster GCS", nil, []string{"--runner", "ray_core", "--cluster", "10.0.0.5:6379"}, func(o options) bool {
			return o.exec.runner == runnerRayCore && o.exec.coreAddress == "10.0.0.5:6379" && o.exec.coreAddressSrc == "--cluster"
		}},
		{"--runner ray_core --local: ray.init() on this machine", map[string]string{"RAY_ADDRESS": "ray://x:10001"}, []string{"--runner", "ray_core", "--local"}, func(o options) bool {
			return o.exec.runner == runnerRayCore && o.exec.coreAddress == ""
		}},
		{"RUNNER=ray_core with RAY_ADDRESS", map[string]string{"DJANGO_RAY_RUNNER": "ray_core", "RAY_ADDRESS": "ray://x:10001"}, nil, func(o options) bool {
			return o.mode == "ray" && o.exec.runner == runnerRayCore && o.exec.coreAddress == "ray://x:10001" && o.exec.coreAddressSrc == "$RAY_ADDRESS"
		}},
		{"RUNNER=ray_core, RAY_ADDRESS auto: local", map[string]string{"DJANGO_RAY_RUNNER": "ray_core", "RAY_ADDRESS": "auto"}, nil, func(o options) bool {
			return o.exec.runner == runnerRayCore && o.exec.coreAddress == ""
		}},
		{"retry settings", map[string]string{"DJANGO_RAY_RETRY_EXCEPTION_DENYLIST": "builtins.ValueError, TaskLost"},
			[]string{"--max-task-attempts", "5", "--retry-backoff-seconds", "0"}, func(o options) bool {
				return o.cfg.Policy.MaxAttempts == 5 && o.cfg.Policy.Backoff == 0 && reflect.DeepEqual(o.cfg.Policy.Denylist, []string{"builtins.ValueError", "TaskLost"})
			}},
		{"filesystem storage", nil, []string{"--result-storage-backend", "filesystem", "--result-storage-filesystem-path", "/srv/results"}, func(o options) bool {
			fs, ok := o.cfg.Results.Backend.(lifecycle.FilesystemBackend)
			return ok && fs.Root == "/srv/results"
		}},
		{"s3 storage with django-ray's defaults", map[string]string{"DJANGO_RAY_RESULT_STORAGE_BACKEND": "s3", "DJANGO_RAY_RESULT_STORAGE_S3_BUCKET": "results-bucket"}, nil, func(o options) bool {
			b, ok := o.cfg.Results.Backend.(*resultstore.Bucket)
			return ok && b.Name() == "s3" && b.Location() == "s3://results-bucket/django-ray/results/"
		}},
		{"s3 storage settings", map[string]string{"DJANGO_RAY_RESULT_STORAGE_S3_PREFIX": "env/prefix"}, []string{"--result-storage-backend", "s3", "--result-storage-s3-bucket", "b1x",
			"--result-storage-s3-prefix", "/flag/prefix/", "--result-storage-s3-region", "eu-west-1", "--result-storage-s3-endpoint-url", "http://127.0.0.1:9000"}, func(o options) bool {
			b, ok := o.cfg.Results.Backend.(*resultstore.Bucket)
			return ok && b.Location() == "s3://b1x/flag/prefix/"
		}},
		{"an empty prefix flag means no prefix", nil, []string{"--result-storage-backend", "s3", "--result-storage-s3-bucket", "b1x", "--result-storage-s3-prefix", ""}, func(o options) bool {
			b, ok := o.cfg.Results.Backend.(*resultstore.Bucket)
			return ok && b.Location() == "s3://b1x/"
		}},
		{"runtime env", nil, []string{"--ray-runtime-env", `{"env_vars": {"DJANGO_SETTINGS_MODULE": "app.settings"}, "working_dir": "."}`}, func(o options) bool {
			return o.runner.Env["DJANGO_SETTINGS_MODULE"] == "app.settings" && reflect.DeepEqual(o.ignored, []string{"working_dir"})
		}},
		{"entrypoint split", nil, []string{"--entrypoint", `"/opt/my venv/bin/python" -m django_ray.runtime.entrypoint`}, func(o options) bool {
			return reflect.DeepEqual(o.runner.Entrypoint, []string{"/opt/my venv/bin/python", "-m", "django_ray.runtime.entrypoint"})
		}},
		{"shutdown 0 stops at once", nil, []string{"--shutdown-timeout", "0"}, func(o options) bool { return o.cfg.ShutdownTimeout < 0 }},
		{"shutdown seconds", map[string]string{"DJANGO_RAY_SHUTDOWN_TIMEOUT": "90"}, nil, func(o options) bool { return o.cfg.ShutdownTimeout == 90*time.Second }},
		{"json logs and metrics", nil, []string{"--log-format", "json", "--metrics-addr", ":9464"}, func(o options) bool { return o.logJSON && o.cfg.MetricsAddr == ":9464" }},
		{"database url", map[string]string{"DATABASE_URL": "postgres://db/app"}, nil, func(o options) bool { return o.dsn == "postgres://db/app" }},
		{"Ray defaults", nil, nil, func(o options) bool {
			return o.mode == "ray" && o.ray.address == "http://127.0.0.1:8265" && o.ray.addressSource == "default" &&
				o.ray.pendingTimeout == 15*time.Minute && o.ray.tokenFile == "" && o.ray.caFile == "" && o.ray.runtimeEnv == nil
		}},
		{"RAY_ADDRESS", map[string]string{"RAY_ADDRESS": "http://head:8265"}, nil, func(o options) bool {
			return o.mode == "ray" && o.ray.address == "http://head:8265" && o.ray.addressSource == "$RAY_ADDRESS"
		}},
		{"RAY_ADDRESS auto", map[string]string{"RAY_ADDRESS": "auto"}, nil, func(o options) bool { return o.ray.address == "http://127.0.0.1:8265" }},
		{"--cluster wins over RAY_ADDRESS", map[string]string{"RAY_ADDRESS": "http://a:8265"}, []string{"--cluster", "https://b/proxy"}, func(o options) bool {
			return o.mode == "cluster" && o.ray.address == "https://b/proxy" && o.ray.addressSource == "--cluster"
		}},
		{"--local", map[string]string{"RAY_ADDRESS": "http://a:8265"}, []string{"--local"}, func(o options) bool {
			return o.mode == "local" && o.ray.address == "http://127.0.0.1:8265"
		}},
		{"Ray settings", map[string]string{"RAY_AUTH_TOKEN_PATH": "/run/secrets/ray", "DJANGO_RAY_RAY_CA_FILE": "/etc/ca.pem"}, []string{"--ray-pending-timeout", "90"}, func(o options) bool {
			return o.ray.tokenFile == "/run/secrets/ray" && o.ray.caFile == "/etc/ca.pem" && o.ray.pendingTimeout == 90*time.Second
		}},
		{"no entrypoint resources by default", nil, nil, func(o options) bool {
			return reflect.DeepEqual(o.ray.resources, rayrunner.Resources{})
		}},
		{"entrypoint resources", map[string]string{"DJANGO_RAY_RAY_ENTRYPOINT_RESOURCES": `{"worker_node": 0.01}`},
			[]string{"--ray-entrypoint-num-cpus", "0.5", "--ray-entrypoint-num-gpus=1", "--ray-entrypoint-memory-mb", "512"}, func(o options) bool {
				return reflect.DeepEqual(o.ray.resources, rayrunner.Resources{NumCPUs: 0.5, NumGPUs: 1, Memory: 512 << 20, Custom: map[string]float64{"worker_node": 0.01}})
			}},
		{"whole runtime env for Ray", nil, []string{"--ray-runtime-env", `{"env_vars": {"A": "1"}, "pip": ["x==1"]}`}, func(o options) bool {
			return reflect.DeepEqual(o.ray.runtimeEnv, map[string]any{"env_vars": map[string]any{"A": "1"}, "pip": []any{"x==1"}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if o := resolveArgs(t, c.vars, c.args...); !c.check(o) {
				t.Fatalf("%+v", o)
			}
		})
	}
}

func TestDatabaseErrors(t *testing.T) {
	r := rayworker(t, map[string]string{"DATABASE_URL": "postgres://app:hunter2secret@127.0.0.1:1/app"}, "--sync")
	if r.code != exitFailed || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "cannot connect to database 127.0.0.1:1/app (user app): connection refused") ||
		strings.Contains(r.stderr+r.stdout, "hunter2secret") {
		t.Fatalf("%+v", r)
	}
	sc := storetest.EmptySchema(t)
	// --executor process: the pool would first start its executors, and this test is about
	// the database's message.
	r = rayworker(t, map[string]string{"DATABASE_URL": sc.DSN}, "--sync", "--executor", "process", "--log-format", "json")
	if r.code != exitFailed || !strings.Contains(r.stderr, "rayworker: cannot create the worker lease: the django-ray tables do not exist in this database (run `rayctl migrate up`)") {
		t.Fatalf("%+v", r)
	}
}

func TestHelpAndVersion(t *testing.T) {
	r := rayworker(t, nil, "--help")
	if r.code != exitOK {
		t.Fatalf("%+v", r)
	}
	for _, s := range settings.Worker {
		if !strings.Contains(r.stdout, "--"+s.Name) || !strings.Contains(r.stdout, "$"+s.Env) {
			t.Errorf("--help does not show --%s / $%s", s.Name, s.Env)
		}
	}
	for _, code := range []string{"130", "143"} {
		if !strings.Contains(r.stdout, code) {
			t.Errorf("--help does not document exit code %s", code)
		}
	}
	if r := rayworker(t, nil, "--version"); r.code != exitOK || !strings.Contains(r.stdout, "rayworker version dev") {
		t.Fatalf("%+v", r)
	}
}

// TestMain checks the in-process runs leave no goroutine behind (storetest's shared admin
// pool is expected).
func TestMain(m *testing.M) {
	procgroup.Main() // in-process workers re-execute this binary as procgroup's supervisor
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}
