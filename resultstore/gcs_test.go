package resultstore

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/resultstore/cloudtest"
)

func openGCS(t *testing.T, srv cloudtest.GCSServer, bucket, prefix string) *Bucket {
	t.Helper()
	b, err := OpenGCS(t.Context(), GCSConfig{Bucket: bucket, Prefix: prefix, Emulator: srv.EmulatorHost, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestGCSStoreWritesWhatDjangoRayWrites: key, reference, bytes and Content-Type as
// django-ray 0.2.0's GCSResultStorage writes them; Load reads back whole or bounded.
func TestGCSStoreWritesWhatDjangoRayWrites(t *testing.T) {
	t.Parallel()
	srv := cloudtest.GCS(t)
	bucket := srv.NewBucket(t)
	hexd := sha(pythonText)
	for _, c := range []struct{ prefix, key string }{
		{DefaultPrefix, "django-ray/results/" + hexd[:2] + "/" + hexd[2:4] + "/" + hexd + ".json"},
		{"/team/results/", "team/results/" + hexd[:2] + "/" + hexd[2:4] + "/" + hexd + ".json"},
		{"", hexd[:2] + "/" + hexd[2:4] + "/" + hexd + ".json"},
	} {
		b := openGCS(t, srv, bucket, c.prefix)
		checkStoresWhatDjangoRayStores(t, b, "gs", bucket, c.prefix, c.key, func() ([]byte, string, error) {
			attrs, err := srv.Client(t).Objects.Get(bucket, c.key).Do()
			if err != nil {
				return nil, "", err
			}
			resp, err := srv.Client(t).Objects.Get(bucket, c.key).Download()
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return body, attrs.ContentType, nil
		})
	}
}

// TestGCSLargeResult: a result larger than the client's upload chunk (16 MiB) is written
// with a resumable upload and read back intact.
func TestGCSLargeResult(t *testing.T) {
	t.Parallel()
	srv := cloudtest.GCS(t)
	bucket := srv.NewBucket(t)
	b := openGCS(t, srv, bucket, DefaultPrefix)
	text := `"` + strings.Repeat("x", 17<<20) + `"`
	ref, err := b.Store(t.Context(), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	key := ObjectKey(DefaultPrefix, sha(text))
	if ref != "gs://"+bucket+"/"+key+"?bytes="+strconv.Itoa(len(text)) {
		t.Fatalf("reference %q", ref)
	}
	o, err := b.Load(t.Context(), bucket, key, int64(len(text)))
	if err != nil || string(o.Data) != text {
		t.Fatalf("read back %d bytes of %d: %v", len(o.Data), len(text), err)
	}
}

// TestGCSFallsBackToDigest: a missing bucket fails the write with ErrNotFound and lifecycle
// stores the digest reference; a key with a ".." segment is never requested.
func TestGCSFallsBackToDigest(t *testing.T) {
	t.Parallel()
	srv := cloudtest.GCS(t)
	b := openGCS(t, srv, "rayctl-no-such-bucket", DefaultPrefix)
	if _, err := b.Store(t.Context(), []byte(pythonText)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Store to a missing bucket: %v, want ErrNotFound", err)
	}
	st := lifecycle.Results{MaxInline: 10, Backend: b}.Place(t.Context(), lifecycle.Result{JSON: []byte(pythonText)})
	if want := lifecycle.DigestReference(sha(pythonText), int64(len(pythonText))); st.Reference != want || st.Fallback == nil {
		t.Errorf("Place = %+v, want the digest reference %s", st, want)
	}
	for _, key := range []string{"../x.json", "a/../../b.json"} {
		if _, err := b.Load(t.Context(), "any-bucket", key, 100); !errors.Is(err, ErrUnsafeKey) {
			t.Errorf("Load(%q) = %v, want ErrUnsafeKey", key, err)
		}
	}
}

// TestGCSProbe writes, reads back and removes a probe object under the prefix.
func TestGCSProbe(t *testing.T) {
	t.Parallel()
	srv := cloudtest.GCS(t)
	bucket := srv.NewBucket(t)
	checkProbe(t, openGCS(t, srv, bucket, "probe/"), "gs", bucket, "probe/", "emulator", func() (int, error) {
		list, err := srv.Client(t).Objects.List(bucket).Do()
		if err != nil {
			return 0, err
		}
		return len(list.Items), nil
	})
}

// googleADC writes a service account key file whose token_uri is a local token service
// (grant decides its answer) and points GOOGLE_APPLICATION_CREDENTIALS at it. It returns the
// file's private key PEM.
func googleADC(t *testing.T, grant http.HandlerFunc) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	tokens := httptest.NewServer(grant)
	t.Cleanup(tokens.Close)
	file, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "rayctl-test", "private_key_id": "pkid-never-printed-0123456789",
		"private_key": pemKey, "client_email": "results@rayctl-test.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokens.URL})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	os.Unsetenv("STORAGE_EMULATOR_HOST")
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1") // never the real metadata address
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	return pemKey
}

// openADC opens the gcs backend with Application Default Credentials against a local GCS
// endpoint (no network).
func openADC(t *testing.T, endpoint string) *Bucket {
	t.Helper()
	b, err := OpenGCS(t.Context(), GCSConfig{Bucket: "bucket-one", Prefix: DefaultPrefix, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b.cl.(*gcsClient).endpoint = endpoint
	t.Cleanup(func() { b.Close() })
	return b
}

// TestGCSCredentialsRefused: Application Default Credentials from a service account file
// whose token service refuses the key: the write fails with ErrDenied before GCS is asked,
// falls back to the digest reference, and no part of the key shows in the error.
func TestGCSCredentialsRefused(t *testing.T) {
	pemKey := googleADC(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}`)
	})
	var asked atomic.Bool
	gcs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Store(true) }))
	defer gcs.Close()
	b := openADC(t, gcs.URL+"/storage/v1/")
	_, err := b.Store(t.Context(), []byte(pythonText))
	if !errors.Is(err, ErrDenied) && !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("Store = %v, want the credentials refused", err)
	}
	if asked.Load() {
		t.Error("GCS was asked without a token")
	}
	for _, s := range []string{pemKey[40:80], "pkid-never-printed-0123456789"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
	st := lifecycle.Results{MaxInline: 10, Backend: b}.Place(t.Context(), lifecycle.Result{JSON: []byte(pythonText)})
	if !strings.HasPrefix(st.Reference, "oversize://") || st.Fallback == nil {
		t.Errorf("Place = %+v, want the digest reference", st)
	}
	if src, err := b.Credentials(t.Context()); err == nil {
		t.Errorf("Credentials = %q, want an error", src)
	}
}

// TestGCSErrorsNeverShowSecrets: a GCS endpoint that echoes the access token back in its
// error has it scrubbed; the credentials are reported as the service account file's.
func TestGCSErrorsNeverShowSecrets(t *testing.T) {
	const token = "ya29.access-token-never-printed-abcdef"
	googleADC(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token": "`+token+`", "token_type": "Bearer", "expires_in": 3600}`)
	})
	gcs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error": {"code": 403, "message": "caller `+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+
			` does not have storage.objects.create access", "errors": [{"reason": "forbidden", "message": "token `+token+`"}]}}`)
	}))
	defer gcs.Close()
	b := openADC(t, gcs.URL+"/storage/v1/")
	src, err := b.Credentials(t.Context())
	if err != nil || !strings.Contains(src, "service_account") {
		t.Fatalf("Credentials = %q, %v", src, err)
	}
	_, err = b.Store(t.Context(), []byte(pythonText))
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("Store = %v, want ErrDenied", err)
	}
	if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "storage.objects.create") {
		t.Errorf("error: %v", err)
	}
}
