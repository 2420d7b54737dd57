// Package cloudtest is for tests only: the local S3 and GCS servers scripts/s3.sh and
// scripts/gcs.sh start (scripts/test.sh starts both), and a fresh bucket per test on them.
// A test that needs a server it does not have skips, except under CI=true, where it fails: CI
// must never pass by skipping.
package cloudtest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/api/option"
	storage "google.golang.org/api/storage/v1"
)

// S3Server is the S3 server of scripts/s3.sh (moto's, checking credentials and signatures).
type S3Server struct {
	Endpoint        string // http://127.0.0.1:PORT
	AccessKeyID     string // a key it accepts, allowed s3:*
	SecretAccessKey string
}

// S3 returns the S3 server from RAYCTL_S3_ENDPOINT, RAYCTL_S3_ACCESS_KEY_ID and
// RAYCTL_S3_SECRET_ACCESS_KEY.
func S3(t testing.TB) S3Server {
	t.Helper()
	s := S3Server{Endpoint: os.Getenv("RAYCTL_S3_ENDPOINT"), AccessKeyID: os.Getenv("RAYCTL_S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("RAYCTL_S3_SECRET_ACCESS_KEY")}
	if s.Endpoint == "" || s.AccessKeyID == "" || s.SecretAccessKey == "" {
		need(t, "RAYCTL_S3_ENDPOINT is not set: the S3 tests need the server scripts/s3.sh starts (scripts/test.sh starts it)")
	}
	return s
}

// Credentials are the server's accepted key as a provider.
func (s S3Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, "")
}

// Client is an S3 client of the server with its accepted key, for a test's own checks; its
// connections close when the test ends (goleak).
func (s S3Server) Client(t testing.TB) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: s.Credentials(), HTTPClient: httpClient(t)})
}

// httpClient is an HTTP client whose idle connections close when the test ends.
func httpClient(t testing.TB) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// NewBucket creates a bucket of a fresh name on the server and returns its name.
func (s S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := BucketName()
	if _, err := s.Client(t).CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// BucketName is a fresh bucket name, valid on S3 and GCS.
func BucketName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rayctl-test-" + hex.EncodeToString(b[:])
}

func need(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so this is a failure, not a skip")
	}
	t.Skip(msg)
}

// GCSServer is the GCS server of scripts/gcs.sh (fake-gcs-server).
type GCSServer struct {
	EmulatorHost string // 127.0.0.1:PORT: the STORAGE_EMULATOR_HOST value for it
}

// GCS returns the GCS server from RAYCTL_GCS_EMULATOR_HOST.
func GCS(t testing.TB) GCSServer {
	t.Helper()
	s := GCSServer{EmulatorHost: os.Getenv("RAYCTL_GCS_EMULATOR_HOST")}
	if s.EmulatorHost == "" {
		need(t, "RAYCTL_GCS_EMULATOR_HOST is not set: the GCS tests need the server scripts/gcs.sh starts (scripts/test.sh starts it)")
	}
	return s
}

// Client is a GCS JSON API client of the server, for a test's own checks.
func (s GCSServer) Client(t testing.TB) *storage.Service {
	t.Helper()
	svc, err := storage.NewService(t.Context(), option.WithEndpoint("http://"+s.EmulatorHost+"/storage/v1/"),
		option.WithoutAuthentication(), option.WithHTTPClient(httpClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// NewBucket creates a bucket of a fresh name on the server and returns its name.
func (s GCSServer) NewBucket(t testing.TB) string {
	t.Helper()
	name := BucketName()
	if _, err := s.Client(t).Buckets.Insert("rayctl-test", &storage.Bucket{Name: name}).Do(); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}
