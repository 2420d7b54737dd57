package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/resultstore/cloudtest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker/workertest"
)

// startWorkerEnv runs the binary with --sync over the contract entrypoint, JSON logs, extra
// environment and args.
func startWorkerEnv(t *testing.T, dsn string, env []string, args ...string) *proc {
	t.Helper()
	return startBinary(t, dsn, append([]string{"AWS_EC2_METADATA_DISABLED=true", "GCE_METADATA_HOST=127.0.0.1:1"}, env...),
		append([]string{"--sync", "--log-format", "json", "--entrypoint", workertest.EntrypointCommand(t)}, args...)...)
}

// TestBinaryCloudResults: with --result-storage-backend s3 or gcs, a result over
// --max-result-size-bytes is stored as an object under django-ray's key and recorded as its
// s3:// or gs:// reference; a write the store refuses (a missing bucket, a wrong secret)
// leaves the task SUCCEEDED with the digest reference, and the secret appears nowhere in the
// log.
func TestBinaryCloudResults(t *testing.T) {
	t.Parallel()
	s3srv, gcs := cloudtest.S3(t), cloudtest.GCS(t)
	s3b, gcsb := s3srv.NewBucket(t), gcs.NewBucket(t)
	text := `"` + strings.Repeat("x", 3000) + `"` // big_result(3000) as Python's json.dumps writes it
	sum := sha256.Sum256([]byte(text))
	digest := hex.EncodeToString(sum[:])
	key := resultstore.ObjectKey(resultstore.DefaultPrefix, digest)
	size := strconv.Itoa(len(text))
	s3creds := []string{"AWS_ACCESS_KEY_ID=" + s3srv.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3srv.SecretAccessKey}
	const wrongSecret = "Wrong-Secret-Never-Logged-0123456789abcd"
	for _, c := range []struct {
		name    string
		env     []string
		args    []string
		wantRef string
	}{
		{"s3", s3creds, []string{"--result-storage-backend", "s3", "--result-storage-s3-bucket", s3b, "--result-storage-s3-endpoint-url", s3srv.Endpoint},
			"s3://" + s3b + "/" + key + "?bytes=" + size},
		{"gcs from the environment", []string{"STORAGE_EMULATOR_HOST=" + gcs.EmulatorHost, "DJANGO_RAY_RESULT_STORAGE_BACKEND=gcs",
			"DJANGO_RAY_RESULT_STORAGE_GCS_BUCKET=" + gcsb}, nil, "gs://" + gcsb + "/" + key + "?bytes=" + size},
		{"s3 missing bucket", s3creds, []string{"--result-storage-backend", "s3", "--result-storage-s3-bucket", "rayctl-no-such-bucket",
			"--result-storage-s3-endpoint-url", s3srv.Endpoint}, lifecycle.DigestReference(digest, int64(len(text)))},
		{"s3 wrong secret", []string{"AWS_ACCESS_KEY_ID=" + s3srv.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + wrongSecret},
			[]string{"--result-storage-backend", "s3", "--result-storage-s3-bucket", s3b, "--result-storage-s3-endpoint-url", s3srv.Endpoint},
			lifecycle.DigestReference(digest, int64(len(text)))},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, dsn := migratedDSN(t)
			p := startWorkerEnv(t, dsn, c.env, append([]string{"--max-result-size-bytes", "1024"}, c.args...)...)
			task := enqueueE2E(t, s, "big_result", "[3000]")
			got := waitRow(t, s, task.ID, "the task to succeed", func(x store.Task) bool { return x.State == store.StateSucceeded })
			if got.ResultData != nil || got.ResultReference == nil || *got.ResultReference != c.wantRef {
				t.Fatalf("result_data %v, result_reference %v; want %s", got.ResultData, got.ResultReference, c.wantRef)
			}
			if strings.HasPrefix(c.wantRef, "oversize://") {
				if _, ok := p.logField("result storage failed; stored a digest reference instead", "error"); !ok {
					t.Errorf("no warning about the failed write")
				}
			}
			if strings.Contains(p.logs.String(), wrongSecret) || strings.Contains(p.logs.String(), s3srv.SecretAccessKey) {
				t.Errorf("the log shows a secret")
			}
			if c.name != "s3" {
				return
			}
			out, err := s3srv.Client(t).GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(s3b), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if string(body) != text || aws.ToString(out.ContentType) != "application/json" {
				t.Errorf("stored %d bytes as %q", len(body), aws.ToString(out.ContentType))
			}
			if src, ok := p.logField("result storage credentials", "credentials"); !ok || src != "AWS EnvConfigCredentials" {
				t.Errorf("the start log does not say where the credentials come from: %q", src)
			}
		})
	}
}
