package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/resultstore/cloudtest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// awsEnv sets the AWS environment the SDK reads (the in-process rayctl's getenv is not
// the SDK's): the given key, or none at all, and never the instance metadata service.
func awsEnv(t *testing.T, id, secret string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_EC2_METADATA_DISABLED": "true", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_REGION": "", "AWS_ENDPOINT_URL": ""} {
		t.Setenv(k, v)
		if v == "" {
			os.Unsetenv(k)
		}
	}
}

// storeObject stores text the way a worker does and returns its reference.
func storeObject(t *testing.T, b *resultstore.Bucket, text string) string {
	t.Helper()
	ref, err := b.Store(t.Context(), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

type shownObject struct {
	Result struct {
		ReferenceError string `json:"reference_error"`
		Reference      *struct {
			Explanation string                 `json:"explanation"`
			FetchError  string                 `json:"fetch_error"`
			Object      *recovery.ResultObject `json:"object"`
		} `json:"reference"`
	} `json:"result"`
}

func showJSON(t *testing.T, vars map[string]string, id int64, args ...string) shownObject {
	t.Helper()
	r := rayctlWith(t, runOpts{vars: vars}, append([]string{"tasks", "show", strconv.FormatInt(id, 10), "-o", "json"}, args...)...).expect(t, exitOK)
	var d shownObject
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	return d
}

// TestTasksShowReadsS3: tasks show reads an s3:// result with this machine's AWS
// credentials and the workers' endpoint setting, bounded by --fetch-bytes, checks it against
// the reference and the key, shows control characters as escapes, and explains what it could
// not read: no credentials, no object, a key with a .. segment.
func TestTasksShowReadsS3(t *testing.T) {
	srv := cloudtest.S3(t)
	bucket := srv.NewBucket(t)
	s, vars := migrated(t)
	vars["DJANGO_RAY_RESULT_STORAGE_S3_ENDPOINT_URL"] = srv.Endpoint
	b, err := resultstore.OpenS3(t.Context(), resultstore.S3Config{Bucket: bucket, Prefix: resultstore.DefaultPrefix,
		EndpointURL: srv.Endpoint, Credentials: srv.Credentials(), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	text := `{"rows": [` + strings.Repeat(`"h\u00e9llo", `, 300) + `"end"]}`
	ref := storeObject(t, b, text)
	task := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: &ref})
	hostile := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: storetest.Ptr(storeObject(t, b, "\"\x1b]0;pwned\x07\x1b[31mred\u009b\""))})
	missing := storetest.Insert(t, s, store.Task{State: store.StateSucceeded,
		ResultReference: storetest.Ptr("s3://" + bucket + "/django-ray/results/00/00/" + strings.Repeat("0", 64) + ".json?bytes=10")})
	dotdot := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: storetest.Ptr("s3://" + bucket + "/django-ray/../secrets.json?bytes=10")})

	awsEnv(t, srv.AccessKeyID, srv.SecretAccessKey)
	d := showJSON(t, vars, task.ID)
	o := d.Result.Reference.Object
	if o == nil || o.Content != text || o.Size != int64(len(text)) || o.Truncated || o.ContentType != "application/json" ||
		o.SizeMatches == nil || !*o.SizeMatches || o.DigestMatches == nil || !*o.DigestMatches {
		t.Fatalf("object %+v, fetch error %q", o, d.Result.Reference.FetchError)
	}
	d = showJSON(t, vars, task.ID, "--fetch-bytes", "10")
	if o := d.Result.Reference.Object; o == nil || o.Content != text[:10] || !o.Truncated || o.Fetched != 10 || o.DigestMatches != nil {
		t.Fatalf("bounded read %+v", o)
	}
	if d := showJSON(t, vars, task.ID, "--no-fetch"); d.Result.Reference.Object != nil || d.Result.Reference.FetchError != "" {
		t.Fatalf("--no-fetch read it: %+v", d.Result.Reference)
	}
	r := rayctlWith(t, runOpts{vars: vars}, "tasks", "show", strconv.FormatInt(task.ID, 10)).expect(t, exitOK)
	for _, want := range []string{"S3 object " + strings.SplitN(ref, "?", 2)[0], "read " + strconv.Itoa(len(text)) + " of " + strconv.Itoa(len(text)) +
		" bytes (application/json; size matches the reference, sha256 matches the key)", `"h\u00e9llo",`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text lacks %q:\n%s", want, r.stdout)
		}
	}
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "show", strconv.FormatInt(hostile.ID, 10)).expect(t, exitOK)
	if strings.ContainsAny(r.stdout, "\x1b\x07\u009b") || !strings.Contains(r.stdout, `\x1b]0;pwned\x07\x1b[31mred\u009b`) {
		t.Errorf("control characters reach the terminal:\n%q", r.stdout)
	}
	if d := showJSON(t, vars, missing.ID); d.Result.Reference.Object != nil || !strings.Contains(d.Result.Reference.FetchError, "not found") &&
		!strings.Contains(d.Result.Reference.FetchError, "NoSuchKey") {
		t.Errorf("missing object: %+v", d.Result.Reference)
	}
	if d := showJSON(t, vars, dotdot.ID); d.Result.Reference != nil || !strings.Contains(d.Result.ReferenceError, "unsafe key") {
		t.Errorf("a .. key: %+v", d.Result)
	}

	// no credentials anywhere: the reference is explained, and why it was not read
	awsEnv(t, "", "")
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "show", strconv.FormatInt(task.ID, 10)).expect(t, exitOK)
	for _, want := range []string{"S3 object " + strings.SplitN(ref, "?", 2)[0] + " (" + strconv.Itoa(len(text)) + " bytes); get_result() reads it",
		"not read: S3 read " + strings.SplitN(ref, "?", 2)[0] + ": ", "no AWS credentials on this machine"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text lacks %q:\n%s", want, r.stdout)
		}
	}
	// refused credentials: said so, the secret nowhere
	const secret = "Refused-Secret-Never-Shown-0123456789ab"
	awsEnv(t, srv.AccessKeyID, secret)
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "show", strconv.FormatInt(task.ID, 10), "-o", "json").expect(t, exitOK)
	if !strings.Contains(r.stdout, "SignatureDoesNotMatch") || !strings.Contains(r.stdout, "may not read s3://"+bucket) || strings.Contains(r.stdout, secret) {
		t.Errorf("refused credentials: %s", r.stdout)
	}
	rayctlWith(t, runOpts{vars: vars}, "tasks", "show", strconv.FormatInt(task.ID, 10), "--fetch-bytes", "0").expect(t, exitUsage).oneLine(t, "invalid --fetch-bytes 0")
	rayctlWith(t, runOpts{vars: vars}, "tasks", "show", strconv.FormatInt(task.ID, 10), "--result-storage-s3-endpoint-url", "minio:9000").expect(t, exitUsage).
		oneLine(t, `invalid --result-storage-s3-endpoint-url "minio:9000"`)
}

// TestTasksShowReadsGCS: a gs:// result is read from the GCS STORAGE_EMULATOR_HOST names.
func TestTasksShowReadsGCS(t *testing.T) {
	t.Parallel()
	srv := cloudtest.GCS(t)
	bucket := srv.NewBucket(t)
	s, vars := migrated(t)
	vars["STORAGE_EMULATOR_HOST"] = srv.EmulatorHost
	b, err := resultstore.OpenGCS(t.Context(), resultstore.GCSConfig{Bucket: bucket, Prefix: "team", Emulator: srv.EmulatorHost})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	text := `[` + strings.Repeat(`1.5, `, 500) + `null]`
	ref := storeObject(t, b, text)
	task := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: &ref})
	d := showJSON(t, vars, task.ID)
	if o := d.Result.Reference.Object; o == nil || o.Content != text || o.DigestMatches == nil || !*o.DigestMatches || o.SizeMatches == nil || !*o.SizeMatches {
		t.Fatalf("object %+v, fetch error %q", o, d.Result.Reference.FetchError)
	}
}

// TestDoctorResultsCheck: the doctor probes the configured result store: a probe object is
// written under the prefix, read back and removed; a bucket that cannot be written fails the
// check (exit 6); digest has nothing to probe; a bad setting is a usage error.
func TestDoctorResultsCheck(t *testing.T) {
	s3srv, gcs := cloudtest.S3(t), cloudtest.GCS(t)
	s3b, gcsb := s3srv.NewBucket(t), gcs.NewBucket(t)
	_, sc := storetest.New(t)
	awsEnv(t, s3srv.AccessKeyID, s3srv.SecretAccessKey)
	dir := t.TempDir()
	base := map[string]string{"DATABASE_URL": sc.DSN, "DJANGO_RAY_RESULT_STORAGE_S3_ENDPOINT_URL": s3srv.Endpoint, "STORAGE_EMULATOR_HOST": gcs.EmulatorHost}
	for _, c := range []struct {
		name   string
		args   []string
		status recovery.Status
		want   string
	}{
		{"s3", []string{"--result-storage-backend", "s3", "--result-storage-s3-bucket", s3b}, recovery.StatusOK,
			"s3://" + s3b + "/django-ray/results/ is reachable and writable: a probe object was written, read back and removed (credentials: AWS EnvConfigCredentials)"},
		{"gcs", []string{"--result-storage-backend", "gcs", "--result-storage-gcs-bucket", gcsb, "--result-storage-gcs-prefix", "p/"}, recovery.StatusOK,
			"gs://" + gcsb + "/p/ is reachable and writable"},
		{"filesystem", []string{"--result-storage-backend", "filesystem", "--result-storage-filesystem-path", dir}, recovery.StatusOK,
			"filesystem " + dir + " is reachable and writable"},
		{"digest", nil, recovery.StatusOK, "RESULT_STORAGE_BACKEND digest"},
		{"s3 missing bucket", []string{"--result-storage-backend", "s3", "--result-storage-s3-bucket", "rayctl-no-such-bucket"}, recovery.StatusFail,
			"s3 backend cannot write to s3://rayctl-no-such-bucket/django-ray/results/: S3 probe write"},
		{"filesystem missing directory", []string{"--result-storage-backend", "filesystem", "--result-storage-filesystem-path", filepath.Join(dir, "nope")}, recovery.StatusFail,
			"no such file or directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code := exitOK
			if c.status == recovery.StatusFail {
				code = exitUnhealthy
			}
			r := rayctlWith(t, runOpts{vars: base}, append([]string{"doctor", "-o", "jsonl"}, c.args...)...).expect(t, code)
			var got *recovery.CheckResult
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				var cr recovery.CheckResult
				if err := json.Unmarshal([]byte(l), &cr); err == nil && cr.Name == "results" {
					got = &cr
				}
			}
			if got == nil || got.Status != c.status || !strings.Contains(got.Summary, c.want) {
				t.Fatalf("results check %+v, want %s with %q", got, c.status, c.want)
			}
			if code == exitUnhealthy {
				r.oneLine(t, "doctor: unhealthy: results")
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("the filesystem probe left %d files", len(entries))
	}
	rayctlWith(t, runOpts{vars: base}, "doctor", "--result-storage-backend", "gcs").expect(t, exitUsage).oneLine(t, "doctor: --result-storage-backend gcs needs --result-storage-gcs-bucket")
}

// TestReconcileJobsStoresResultsInS3: reconcile-jobs --apply records a finished job's large
// result through the workers' s3 backend, and falls back to the digest reference (reported)
// when the bucket cannot be written.
func TestReconcileJobsStoresResultsInS3(t *testing.T) {
	srv := cloudtest.S3(t)
	bucket := srv.NewBucket(t)
	awsEnv(t, srv.AccessKeyID, srv.SecretAccessKey)
	text := `"` + strings.Repeat("y", 2000) + `"`
	for _, c := range []struct {
		bucket, wantPrefix string
	}{{bucket, "s3://" + bucket + "/django-ray/results/"}, {"rayctl-no-such-bucket", "oversize://sha256/"}} {
		s, sc := storetest.New(t)
		fake := raytest.New(t)
		if err := s.UpsertLease(t.Context(), store.Lease{WorkerID: "w-dead", Hostname: "b", QueueName: "default"}); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Pool.Exec(t.Context(), `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes'`); err != nil {
			t.Fatal(err)
		}
		task := storetest.Insert(t, s, store.Task{State: store.StateRunning, AttemptNumber: 1, ClaimedByWorker: storetest.Ptr("w-dead"),
			StartedAt: storetest.Ago(20 * time.Minute), LastHeartbeatAt: storetest.Ago(10 * time.Minute), RayJobID: storetest.Ptr("raysubmit_big"), RayAddress: storetest.Ptr(fake.URL)})
		fake.AddJob(raytest.Job{SubmissionID: "raysubmit_big", Status: raytest.Succeeded, EndTime: time.Now().Add(-10 * time.Minute), Logs: envelope(true, text, "", "") + "\n"})
		vars := map[string]string{"DATABASE_URL": sc.DSN, "RAY_ADDRESS": fake.URL, "DJANGO_RAY_MAX_RESULT_SIZE_BYTES": "1024",
			"DJANGO_RAY_RESULT_STORAGE_BACKEND": "s3", "DJANGO_RAY_RESULT_STORAGE_S3_BUCKET": c.bucket, "DJANGO_RAY_RESULT_STORAGE_S3_ENDPOINT_URL": srv.Endpoint}
		r := rayctlWith(t, runOpts{vars: vars}, "reconcile-jobs")
		if !strings.Contains(r.stdout, "record the "+strconv.Itoa(len(text))+"-byte result as a s3 reference") {
			t.Errorf("plan: %s", r.stdout)
		}
		r = rayctlWith(t, runOpts{vars: vars}, "reconcile-jobs", "--apply", "--yes").expect(t, exitOK)
		got, err := s.GetTask(t.Context(), task.ID)
		if err != nil || got.State != store.StateSucceeded || got.ResultReference == nil || !strings.HasPrefix(*got.ResultReference, c.wantPrefix) ||
			!strings.HasSuffix(*got.ResultReference, "?bytes="+strconv.Itoa(len(text))) {
			t.Fatalf("row %+v %v; want a reference starting %s", got, err, c.wantPrefix)
		}
		if fallback := strings.Contains(r.stdout, "storage failed: S3 store"); fallback != strings.HasPrefix(c.wantPrefix, "oversize") {
			t.Errorf("fallback reported %v:\n%s", fallback, r.stdout)
		}
	}
}
