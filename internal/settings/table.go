package settings

import "time"

//go:generate go run ./gendoc -o ../../docs/configuration.md

// Defaults other packages fill a zero Config field with: django-ray 0.2.0's where it has one.
// The rows below are written from them, so a default is stated once.
const (
	DefaultConcurrency          = 10
	DefaultMaxTaskAttempts      = 3
	DefaultRetryBackoff         = 60 * time.Second
	DefaultStuckTaskTimeout     = 300 * time.Second
	DefaultWorkerLease          = 60 * time.Second // WORKER_LEASE_SECONDS: a lease without a heartbeat this long is not live
	DefaultWorkerHeartbeat      = 15 * time.Second
	DefaultMaxResultSizeBytes   = 1 << 20
	DefaultShutdownTimeout      = 30 * time.Second
	DefaultExecutorStartTimeout = 2 * time.Minute
	DefaultRayPendingTimeout    = 15 * time.Minute
	// DefaultEntrypoint is django-ray 0.2.0's Ray Job entrypoint command.
	DefaultEntrypoint = "python -m django_ray.runtime.entrypoint"
	// DefaultRayAddress is the Jobs API of a Ray on this machine: --local's, and the default
	// mode's when RAY_ADDRESS is unset or "auto".
	DefaultRayAddress = "http://127.0.0.1:8265"
	// DefaultResultPrefix is RESULT_STORAGE_S3_PREFIX's and RESULT_STORAGE_GCS_PREFIX's.
	DefaultResultPrefix = "django-ray/results"
	// ResultBackends are RESULT_STORAGE_BACKEND's values.
	ResultBackends = "digest, filesystem, s3, gcs"
)

// The settings, by name. Worker lists them in the order rayworker's --help shows them.
var (
	Queue       = Setting{"queue", "DJANGO_RAY_QUEUE", "Q[,Q...]", "default", "queue names, comma-separated", "queue(s) to take tasks from"}
	Queues      = Setting{"queues", "DJANGO_RAY_QUEUES", "Q...", "", "queue names, space- or comma-separated", "queues to take tasks from (wins over --queue)"}
	AllQueues   = Bool("all-queues", "DJANGO_RAY_ALL_QUEUES", "take tasks from every queue (wins over --queues and --queue)")
	Concurrency = Int{Name: "concurrency", Env: "DJANGO_RAY_CONCURRENCY", Arg: "N", Default: DefaultConcurrency, Min: 1, Max: 1000,
		Usage: "tasks run at once"}
	Sync    = Bool("sync", "DJANGO_RAY_SYNC", "run tasks on this machine, without Ray (see --executor)")
	Local   = Bool("local", "DJANGO_RAY_LOCAL", "run tasks on a Ray on this machine: as Ray jobs on the Ray at 127.0.0.1:8265, starting a head (and stopping it at exit) if none answers and the ray CLI exists; with --runner ray_core, through a driver's ray.init() (django-ray's --local)")
	Cluster = Setting{"cluster", "DJANGO_RAY_CLUSTER", "ADDR", "", "a Ray Jobs API address (http[s]://HOST:PORT), or a Ray Client (ray://HOST:10001) or GCS (HOST:6379) address for --runner ray_core",
		"run tasks on the Ray cluster at ADDR (ray://... means --runner ray_core, as in django-ray)"}
	Runner = Setting{"runner", "DJANGO_RAY_RUNNER", "R", "ray_job", "ray_job, ray_core",
		"how tasks run on Ray: ray_job = one Ray job per task (Jobs API); ray_core = one remote call per task from a Python driver (django-ray's RUNNER)"}
	Executor = Setting{"executor", "DJANGO_RAY_EXECUTOR", "E", "pool", "pool, process",
		"with --sync: pool = long-lived Python executors that set Django up once, one per --concurrency slot; process = a new process per task running --entrypoint (an explicit --entrypoint selects it)"}
	Python = Setting{"python", "DJANGO_RAY_PYTHON", "PATH", "$VIRTUAL_ENV/bin/python, else python3", "an interpreter (path or name on PATH) that imports django_ray",
		"Python for the executors (--sync's pool) and the Ray Core driver"}
	MaxTasksPerExecutor = Int{Name: "max-tasks-per-executor", Env: "DJANGO_RAY_MAX_TASKS_PER_EXECUTOR", Arg: "N", Min: 0, Max: 1_000_000, Note: " (0: never)",
		Usage: "replace an executor after N tasks (bounds leaks)"}
	ExecutorMaxRSSMB = Int{Name: "executor-max-rss-mb", Env: "DJANGO_RAY_EXECUTOR_MAX_RSS_MB", Arg: "MB", Min: 0, Max: 1 << 20, Note: " (0: never)",
		Usage: "replace an executor whose resident memory passes MB after a task"}
	ExecutorStartTimeout = Duration{Name: "executor-start-timeout", Env: "DJANGO_RAY_EXECUTOR_START_TIMEOUT", Arg: "D", Default: DefaultExecutorStartTimeout, Min: time.Second, Max: time.Hour,
		Usage: "time for an executor to become ready (django.setup(); for the Ray Core driver, ray.init() and a probe task on a Ray worker)"}
	DatabaseURL = Setting{"database-url", "DATABASE_URL", "URL", "libpq PG* variables", "postgres:// URL or key=value DSN", "PostgreSQL holding the django-ray tables"}
	RayAddress  = Setting{"ray-address", "RAY_ADDRESS", "ADDR", DefaultRayAddress, "a Ray Jobs API address (http[s]://HOST:PORT), or a ray:// or HOST:PORT address for --runner ray_core; auto means the default",
		"Ray for the default mode (Ray jobs; Ray Core: no address or auto means a Ray on this machine)"}
	RayAuthTokenFile = Setting{"ray-auth-token-file", "RAY_AUTH_TOKEN_PATH", "FILE", "", "a file holding the token",
		"Ray auth token file (Ray >= 2.52 token auth); else $RAY_AUTH_TOKEN, else ~/.ray/auth_token; never a command-line value"}
	RayCAFile         = Setting{"ray-ca-file", "DJANGO_RAY_RAY_CA_FILE", "FILE", "", "a PEM file", "certificate authorities to trust for an https Jobs API (a TLS proxy in front of Ray)"}
	RayPendingTimeout = Duration{Name: "ray-pending-timeout", Env: "DJANGO_RAY_RAY_PENDING_TIMEOUT", Arg: "D", Default: DefaultRayPendingTimeout, Min: time.Second, Max: 24 * time.Hour,
		Usage: "a Ray job PENDING longer is stopped and its attempt fails (RayJobFailed)"}
	RayEntrypointNumCPUs = Float{Name: "ray-entrypoint-num-cpus", Env: "DJANGO_RAY_RAY_ENTRYPOINT_NUM_CPUS", Arg: "N", Max: 1024,
		Usage: "CPUs each Ray job's driver reserves (entrypoint_num_cpus); none: Ray runs every driver on the head, any: on any node with them free"}
	RayEntrypointNumGPUs = Float{Name: "ray-entrypoint-num-gpus", Env: "DJANGO_RAY_RAY_ENTRYPOINT_NUM_GPUS", Arg: "N", Max: 1024,
		Usage: "GPUs each Ray job's driver reserves (entrypoint_num_gpus)"}
	RayEntrypointMemoryMB = Int{Name: "ray-entrypoint-memory-mb", Env: "DJANGO_RAY_RAY_ENTRYPOINT_MEMORY_MB", Arg: "MB", Min: 0, Max: 16 << 20,
		Usage: "memory each Ray job's driver reserves (entrypoint_memory)"}
	RayEntrypointResources = Setting{"ray-entrypoint-resources", "DJANGO_RAY_RAY_ENTRYPOINT_RESOURCES", "JSON", "{}", `a JSON object of custom resource names to amounts, e.g. {"worker_node": 0.01}`,
		"custom resources each Ray job's driver reserves (entrypoint_resources)"}
	Entrypoint = Setting{"entrypoint", "DJANGO_RAY_ENTRYPOINT", "CMD", DefaultEntrypoint, "a command, split like a shell (no expansion)",
		"task entrypoint; --payload-b64 <payload> is appended"}
	MaxTaskAttempts = Int{Name: "max-task-attempts", Env: "DJANGO_RAY_MAX_TASK_ATTEMPTS", Arg: "N", Default: DefaultMaxTaskAttempts, Min: 1, Max: 100,
		Usage: "attempts per task, the first included"}
	RetryBackoffSeconds = Int{Name: "retry-backoff-seconds", Env: "DJANGO_RAY_RETRY_BACKOFF_SECONDS", Arg: "N", Default: int64(DefaultRetryBackoff / time.Second), Min: 0, Max: 3600,
		Usage: "retry delay base: min(N * 2^attempt, 3600) s"}
	RetryExceptionDenylist = Setting{"retry-exception-denylist", "DJANGO_RAY_RETRY_EXCEPTION_DENYLIST", "T[,T...]", "", "exception types, comma-separated",
		"exception types never retried (e.g. builtins.ValueError,RayJobFailed,TaskLost)"}
	StuckTaskTimeoutSeconds = Int{Name: "stuck-task-timeout-seconds", Env: "DJANGO_RAY_STUCK_TASK_TIMEOUT_SECONDS", Arg: "N", Default: int64(DefaultStuckTaskTimeout / time.Second), Min: 30, Max: 86400,
		Usage: "a RUNNING task without a heartbeat this long is LOST"}
	WorkerLeaseSeconds = Int{Name: "worker-lease-seconds", Env: "DJANGO_RAY_WORKER_LEASE_SECONDS", Arg: "N", Default: int64(DefaultWorkerLease / time.Second), Min: 2, Max: 86400,
		Note: ", more than the heartbeat", Usage: "a worker without a lease heartbeat this long is dead"}
	WorkerHeartbeatSeconds = Int{Name: "worker-heartbeat-seconds", Env: "DJANGO_RAY_WORKER_HEARTBEAT_SECONDS", Arg: "N", Default: int64(DefaultWorkerHeartbeat / time.Second), Min: 1, Max: 3600,
		Note: ", less than the lease and the stuck timeout", Usage: "lease and task heartbeats, and maintenance sweeps, every N s"}
	MaxResultSizeBytes = Int{Name: "max-result-size-bytes", Env: "DJANGO_RAY_MAX_RESULT_SIZE_BYTES", Arg: "N", Default: DefaultMaxResultSizeBytes, Min: 1024, Max: 100 << 20,
		Usage: "larger results are stored as a reference"}
	ResultStorageBackend = Setting{"result-storage-backend", "DJANGO_RAY_RESULT_STORAGE_BACKEND", "B", "digest", ResultBackends, "where results too large to inline go"}
	// ResultStorageFilesystemPath is the directory resultfs:// references are relative to.
	// Readers of results (rayctl tasks show) also take django-ray's own name,
	// RESULT_STORAGE_FILESYSTEM_PATH (FilesystemPathDjangoEnv).
	ResultStorageFilesystemPath = Setting{"result-storage-filesystem-path", "DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH", "DIR", "", "a directory (required for filesystem)",
		"root of the filesystem result store"}
	ResultStorageS3Bucket = Setting{"result-storage-s3-bucket", "DJANGO_RAY_RESULT_STORAGE_S3_BUCKET", "BUCKET", "",
		"a bucket name (required for s3)", "bucket of the s3 result store"}
	ResultStorageS3Prefix = Setting{"result-storage-s3-prefix", "DJANGO_RAY_RESULT_STORAGE_S3_PREFIX", "PREFIX", DefaultResultPrefix,
		"a key prefix; leading and trailing / are dropped; no .. segment, ? or #", "key prefix of the s3 result store"}
	ResultStorageS3Region = Setting{"result-storage-s3-region", "DJANGO_RAY_RESULT_STORAGE_S3_REGION", "REGION", "",
		"an AWS region (unset: the AWS configuration's, else us-east-1)", "region of the s3 bucket"}
	ResultStorageS3EndpointURL = Setting{"result-storage-s3-endpoint-url", "DJANGO_RAY_RESULT_STORAGE_S3_ENDPOINT_URL", "URL", "",
		"http(s)://HOST[:PORT] (unset: AWS)", "an S3-compatible service (MinIO, Ceph), addressed path-style"}
	ResultStorageGCSBucket = Setting{"result-storage-gcs-bucket", "DJANGO_RAY_RESULT_STORAGE_GCS_BUCKET", "BUCKET", "",
		"a bucket name (required for gcs)", "bucket of the gcs result store"}
	ResultStorageGCSPrefix = Setting{"result-storage-gcs-prefix", "DJANGO_RAY_RESULT_STORAGE_GCS_PREFIX", "PREFIX", DefaultResultPrefix,
		"a key prefix; leading and trailing / are dropped; no .. segment, ? or #", "key prefix of the gcs result store"}
	RayRuntimeEnv = Setting{"ray-runtime-env", "DJANGO_RAY_RAY_RUNTIME_ENV", "JSON", "{}", `a JSON object; "env_vars" maps names to strings`,
		"Ray runtime_env of every job; with --sync only its env_vars are used, set for each task"}
	MetricsAddr     = Setting{"metrics-addr", "DJANGO_RAY_METRICS_ADDR", "HOST:PORT", "", "host:port (empty: off)", "serve /metrics, /healthz and /readyz"}
	LogFormat       = Setting{"log-format", "DJANGO_RAY_LOG_FORMAT", "F", "text", "text, json", "log format (stderr)"}
	ShutdownTimeout = Duration{Name: "shutdown-timeout", Env: "DJANGO_RAY_SHUTDOWN_TIMEOUT", Arg: "D", Default: DefaultShutdownTimeout, Min: 0, Max: time.Hour,
		Usage: "on SIGTERM/SIGINT, time for running tasks to finish before they are handed back"}
)

// FilesystemPathDjangoEnv is the name django-ray's settings module uses for
// ResultStorageFilesystemPath; rayctl tasks show reads it after the DJANGO_RAY_ one.
const FilesystemPathDjangoEnv = "RESULT_STORAGE_FILESYSTEM_PATH"

// Worker is rayworker's settings, in the order of its --help and of docs/configuration.md.
var Worker = []Setting{
	Queue, Queues, AllQueues, Concurrency.Setting(), Sync, Local, Cluster, Runner, Executor, Python,
	MaxTasksPerExecutor.Setting(), ExecutorMaxRSSMB.Setting(), ExecutorStartTimeout.Setting(),
	DatabaseURL, RayAddress, RayAuthTokenFile, RayCAFile, RayPendingTimeout.Setting(),
	RayEntrypointNumCPUs.Setting(), RayEntrypointNumGPUs.Setting(), RayEntrypointMemoryMB.Setting(), RayEntrypointResources,
	Entrypoint, MaxTaskAttempts.Setting(), RetryBackoffSeconds.Setting(), RetryExceptionDenylist,
	StuckTaskTimeoutSeconds.Setting(), WorkerLeaseSeconds.Setting(), WorkerHeartbeatSeconds.Setting(),
	MaxResultSizeBytes.Setting(), ResultStorageBackend, ResultStorageFilesystemPath,
	ResultStorageS3Bucket, ResultStorageS3Prefix, ResultStorageS3Region, ResultStorageS3EndpointURL,
	ResultStorageGCSBucket, ResultStorageGCSPrefix,
	RayRuntimeEnv, MetricsAddr, LogFormat, ShutdownTimeout.Setting(),
}

// CloudStorage is the s3 and gcs settings, in the order they are documented.
var CloudStorage = []Setting{ResultStorageS3Bucket, ResultStorageS3Prefix, ResultStorageS3Region, ResultStorageS3EndpointURL,
	ResultStorageGCSBucket, ResultStorageGCSPrefix}

// ResultStorage is RESULT_STORAGE_BACKEND and its companions: rayctl doctor checks the store
// they name, reconcile-jobs writes to it.
var ResultStorage = append([]Setting{ResultStorageBackend, ResultStorageFilesystemPath}, CloudStorage...)

// Policy is the workers' settings rayctl reconcile-jobs records outcomes with, as a worker
// would: the retry policy and where results go.
var Policy = append([]Setting{MaxTaskAttempts.Setting(), RetryBackoffSeconds.Setting(), RetryExceptionDenylist, MaxResultSizeBytes.Setting()},
	ResultStorage...)
