package interop_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/resultstore/cloudtest"
	"github.com/rayctl/rayctl/store/storetest"
)

// needTools is the Django side of the object-storage checks: the tools venv
// (scripts/toolsenv.sh) has django-ray 0.2.0 with the clients its s3 and gcs backends import
// (boto3, google-cloud-storage), which the shared venv does not.
func needTools(t *testing.T) django {
	t.Helper()
	storetest.DSN(t)
	py := os.Getenv("RAYCTL_TOOLS_PYTHON")
	if py == "" {
		msg := "RAYCTL_TOOLS_PYTHON is not set: the object-storage interop checks need the venv of scripts/toolsenv.sh (scripts/test.sh with no arguments sets it up)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so this is a failure, not a skip")
		}
		t.Skip(msg)
	}
	dir, err := filepath.Abs("../python")
	if err != nil {
		t.Fatal(err)
	}
	if v := os.Getenv("RAYCTL_PYTHONPATH"); v != "" {
		dir = v
	}
	out, err := exec.Command(py, "-c", "import boto3, google.cloud.storage, django_ray, importlib.metadata as m; print(m.version('django-ray'))").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0.2.0" {
		t.Fatalf("%s cannot import django-ray 0.2.0 with boto3 and google-cloud-storage: %v\n%s", py, err, out)
	}
	return django{python: py, dir: dir}
}

// cloudCase is one object store both sides are pointed at.
type cloudCase struct {
	name    string
	scheme  string
	bucket  string
	storage []string // the DJANGO_RAY_RESULT_STORAGE_* and credential variables, for every process
}

func cloudCases(t *testing.T) []cloudCase {
	s3srv, gcs := cloudtest.S3(t), cloudtest.GCS(t)
	s3b, gcsb := s3srv.NewBucket(t), gcs.NewBucket(t)
	noMetadata := []string{"AWS_EC2_METADATA_DISABLED=true", "GCE_METADATA_HOST=127.0.0.1:1"}
	return []cloudCase{
		{"s3", "s3", s3b, append([]string{"DJANGO_RAY_RESULT_STORAGE_BACKEND=s3", "DJANGO_RAY_RESULT_STORAGE_S3_BUCKET=" + s3b,
			"DJANGO_RAY_RESULT_STORAGE_S3_ENDPOINT_URL=" + s3srv.Endpoint, "DJANGO_RAY_RESULT_STORAGE_S3_REGION=us-east-1",
			"AWS_ACCESS_KEY_ID=" + s3srv.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3srv.SecretAccessKey}, noMetadata...)},
		{"gcs", "gs", gcsb, append([]string{"DJANGO_RAY_RESULT_STORAGE_BACKEND=gcs", "DJANGO_RAY_RESULT_STORAGE_GCS_BUCKET=" + gcsb,
			"DJANGO_RAY_RESULT_STORAGE_GCS_PREFIX=/team/results/", "STORAGE_EMULATOR_HOST=http://" + gcs.EmulatorHost}, noMetadata...)},
	}
}

// untilDone runs a worker process until every task in the schema has ended.
func untilDone(t *testing.T, sc storetest.Schema, name string, cmd *exec.Cmd) {
	t.Helper()
	p := startGroup(t, name, cmd)
	defer p.kill()
	p.waitEnded(t, sc)
}

// bigEcho is a result over the 1024-byte inline limit whose Python json.dumps text escapes
// non-ASCII ("\u00e9", surrogate pairs): the bytes stored, hashed and counted are Python's.
const bigEcho = `import json, django; django.setup()
from rayctl_testapp import tasks
print(json.dumps([tasks.echo.enqueue(text="h\u00e9llo \u2713 \U0001F600 " * 120, n=[1.5, 0.1 + 0.2, 10**20]).id]))`

// enqueueBigEcho makes a schema with Django's migrations and enqueues bigEcho through
// Django, with c's result storage and a 1024-byte inline limit in env.
func enqueueBigEcho(t *testing.T, d django, c cloudCase) (sc storetest.Schema, env []string, ids []string) {
	t.Helper()
	sc = storetest.EmptySchema(t)
	env = append([]string{"DJANGO_RAY_MAX_RESULT_SIZE_BYTES=1024"}, c.storage...)
	d.run(t, sc.DSN, env, "manage.py", "migrate", "django_ray")
	if err := json.Unmarshal([]byte(d.run(t, sc.DSN, env, "-c", bigEcho)), &ids); err != nil || len(ids) != 1 {
		t.Fatalf("enqueue: %v %v", ids, err)
	}
	return sc, env, ids
}

// TestDjangoReadsObjectsGoStored: with RESULT_STORAGE_BACKEND s3 (moto's S3, credentials
// checked) and gcs (fake-gcs-server), the Go rayworker stores an oversized result where
// django-ray 0.2.0 would, byte for byte and with the same Content-Type as django-ray's own
// backend writes, and Django's get_result() reads it back through django-ray's S3/GCS
// backends (boto3 / google-cloud-storage).
func TestDjangoReadsObjectsGoStored(t *testing.T) {
	t.Parallel()
	d := needTools(t)
	rayworker := binary(t, "rayworker")
	for _, c := range cloudCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sc, env, ids := enqueueBigEcho(t, d, c)
			worker := exec.Command(rayworker, "--sync", "--entrypoint", d.python+" -m django_ray.runtime.entrypoint",
				"--max-task-attempts", "1", "--worker-heartbeat-seconds", "1", "--shutdown-timeout", "5s")
			worker.Env = d.env(sc.DSN, env...)
			untilDone(t, sc, "rayworker", worker)

			r := d.results(t, sc.DSN, env, ids...)[ids[0]]
			if r.Status != "SUCCESSFUL" || r.ReturnValueMissing || r.ResultReference == nil || !strings.HasPrefix(*r.ResultReference, c.scheme+"://"+c.bucket+"/") {
				t.Fatalf("Django reads %+v", r)
			}
			if r.ReferenceIsPython == nil || !*r.ReferenceIsPython {
				t.Errorf("the reference %s is not the one django-ray writes for this result", *r.ResultReference)
			}
			if !strings.HasSuffix(*r.ResultReference, "/"+r.ReturnValueSHA256+".json?bytes="+strconv.Itoa(r.ReturnValueBytes)) {
				t.Errorf("reference %s does not name the result's digest %s and size %d", *r.ResultReference, r.ReturnValueSHA256, r.ReturnValueBytes)
			}
			if r.Object == nil || r.PythonObject == nil || r.Object.SHA256 != r.ReturnValueSHA256 || r.Object.Bytes != r.ReturnValueBytes ||
				r.Object.ContentType != r.PythonObject.ContentType || r.Object.SHA256 != r.PythonObject.SHA256 || r.Object.ContentType != "application/json" {
				t.Errorf("stored object %+v; django-ray's own backend stores %+v", r.Object, r.PythonObject)
			}
		})
	}
}

// TestRayctlReadsObjectsDjangoStored: django-ray 0.2.0's own worker (django_ray_worker --sync)
// stores an oversized result in S3 and GCS, and rayctl tasks show reads it back: the content,
// its size against the reference and its digest against the key.
func TestRayctlReadsObjectsDjangoStored(t *testing.T) {
	t.Parallel()
	d := needTools(t)
	rayctl := binary(t, "rayctl")
	for _, c := range cloudCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sc, env, ids := enqueueBigEcho(t, d, c)
			worker := exec.Command(d.python, "manage.py", "django_ray_worker", "--sync", "--concurrency", "1")
			worker.Dir, worker.Env = d.dir, d.env(sc.DSN, env...)
			untilDone(t, sc, "django_ray_worker", worker)

			var id int64
			var ref string
			if err := sc.Pool.QueryRow(t.Context(), `SELECT id, result_reference FROM django_ray_raytaskexecution WHERE task_id = $1 AND state = 'SUCCEEDED'`, ids[0]).Scan(&id, &ref); err != nil {
				t.Fatalf("django_ray_worker's row: %v", err)
			}
			if !strings.HasPrefix(ref, c.scheme+"://"+c.bucket+"/") {
				t.Fatalf("django_ray_worker stored %q", ref)
			}
			stdout, stderr, code := runIn(t, d, sc.DSN, c.storage, rayctl, "tasks", "show", strconv.FormatInt(id, 10), "-o", "json", "--fetch-bytes", "1000000")
			if code != 0 {
				t.Fatalf("rayctl tasks show: exit %d\n%s", code, stderr)
			}
			var doc struct {
				Result struct {
					Reference struct {
						FetchError string `json:"fetch_error"`
						Object     *struct {
							Size          int64  `json:"size"`
							ContentType   string `json:"content_type"`
							Content       string `json:"content"`
							Truncated     bool   `json:"truncated"`
							SizeMatches   *bool  `json:"size_matches"`
							DigestMatches *bool  `json:"digest_matches"`
						} `json:"object"`
					} `json:"reference"`
				} `json:"result"`
			}
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			o := doc.Result.Reference.Object
			if o == nil {
				t.Fatalf("tasks show did not read %s: %s", ref, doc.Result.Reference.FetchError)
			}
			sum := sha256.Sum256([]byte(o.Content))
			if o.Truncated || o.SizeMatches == nil || !*o.SizeMatches || o.DigestMatches == nil || !*o.DigestMatches ||
				!strings.Contains(ref, hex.EncodeToString(sum[:])) || o.ContentType != "application/json" ||
				!strings.HasPrefix(o.Content, `{"text": "h\u00e9llo \u2713 \ud83d\ude00 `) {
				t.Errorf("tasks show read %+v of %s", o, ref)
			}
			// the text view shows the start of it and says it was checked
			text, _, code := runIn(t, d, sc.DSN, c.storage, rayctl, "tasks", "show", strconv.FormatInt(id, 10))
			if code != 0 || !strings.Contains(text, "sha256 matches the key") || !strings.Contains(text, `"text": "h\u00e9llo`) {
				t.Errorf("tasks show (text):\n%s", text)
			}
		})
	}
}
