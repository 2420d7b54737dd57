package resultstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/resultstore/cloudtest"
)

// pythonText is a result as Python's json.dumps writes it (non-ASCII escaped, ", " and ": "
// separators): the bytes stored, counted and hashed.
const pythonText = `{"text": "h\u00e9llo \u2713", "n": [1, 2.5, null], "": "empty key"}`

func sha(text string) string {
	s := sha256.Sum256([]byte(text))
	return hex.EncodeToString(s[:])
}

func openS3(t *testing.T, srv cloudtest.S3Server, bucket, prefix string) *Bucket {
	t.Helper()
	b, err := OpenS3(t.Context(), S3Config{Bucket: bucket, Prefix: prefix, EndpointURL: srv.Endpoint,
		Credentials: srv.Credentials(), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestS3StoreWritesWhatDjangoRayWrites: the object key, the reference text, the bytes and the
// Content-Type are django-ray 0.2.0's, for the default prefix, a prefix with slashes around
// it and an empty one; Load reads the object back whole or bounded.
func TestS3StoreWritesWhatDjangoRayWrites(t *testing.T) {
	t.Parallel()
	srv := cloudtest.S3(t)
	bucket := srv.NewBucket(t)
	hexd := sha(pythonText)
	for _, c := range []struct{ prefix, key string }{
		{DefaultPrefix, "django-ray/results/" + hexd[:2] + "/" + hexd[2:4] + "/" + hexd + ".json"},
		{"//team a/results//", "team a/results/" + hexd[:2] + "/" + hexd[2:4] + "/" + hexd + ".json"},
		{"", hexd[:2] + "/" + hexd[2:4] + "/" + hexd + ".json"},
		{"/", hexd[:2] + "/" + hexd[2:4] + "/" + hexd + ".json"},
	} {
		b := openS3(t, srv, bucket, c.prefix)
		checkStoresWhatDjangoRayStores(t, b, "s3", bucket, c.prefix, c.key, func() ([]byte, string, error) {
			out, err := srv.Client(t).GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(c.key)})
			if err != nil {
				return nil, "", err
			}
			defer out.Body.Close()
			body, _ := io.ReadAll(out.Body)
			return body, aws.ToString(out.ContentType), nil
		})
	}
}

// checkStoresWhatDjangoRayStores stores pythonText with b (a bucket of the given scheme opened
// with prefix) and checks the reference, the object at key (as get reads it from the server:
// the bytes and the Content-Type) and Load's answers, whole and bounded.
func checkStoresWhatDjangoRayStores(t *testing.T, b *Bucket, scheme, bucket, prefix, key string, get func() ([]byte, string, error)) {
	t.Helper()
	ref, err := b.Store(t.Context(), []byte(pythonText))
	if err != nil {
		t.Fatalf("prefix %q: %v", prefix, err)
	}
	if want := scheme + "://" + bucket + "/" + key + "?bytes=" + strconv.Itoa(len(pythonText)); ref != want {
		t.Errorf("prefix %q: reference %q, want %q", prefix, ref, want)
	}
	body, contentType, err := get()
	if err != nil {
		t.Fatalf("prefix %q: the object is not at key %q: %v", prefix, key, err)
	}
	if string(body) != pythonText || contentType != "application/json" {
		t.Errorf("prefix %q: stored %q as %q", prefix, body, contentType)
	}
	o, err := b.Load(t.Context(), bucket, key, 1<<20)
	if err != nil || string(o.Data) != pythonText || o.Truncated || o.Size != int64(len(pythonText)) || o.ContentType != ContentType {
		t.Errorf("prefix %q: Load = %+v %q, %v", prefix, o, o.Data, err)
	}
	o, err = b.Load(t.Context(), bucket, key, 10)
	if err != nil || string(o.Data) != pythonText[:10] || !o.Truncated || o.Size != int64(len(pythonText)) {
		t.Errorf("prefix %q: bounded Load = %+v %q, %v", prefix, o, o.Data, err)
	}
}

// TestS3FallsBackToDigest: a missing bucket and refused credentials (an unknown key, a wrong
// secret) fail the write with the cause, and lifecycle stores the digest reference instead;
// the secret in use appears in no error text.
func TestS3FallsBackToDigest(t *testing.T) {
	t.Parallel()
	srv := cloudtest.S3(t)
	bucket := srv.NewBucket(t)
	const secret = "s3cr3t-Never-Printed-0123456789abcdef"
	digestRef := lifecycle.DigestReference(sha(pythonText), int64(len(pythonText)))
	for _, c := range []struct {
		name   string
		bucket string
		creds  aws.CredentialsProvider
		want   error
	}{
		{"missing bucket", "rayctl-no-such-bucket", srv.Credentials(), ErrNotFound},
		{"unknown key", bucket, credentials.NewStaticCredentialsProvider("AKIAUNKNOWNKEY000001", secret, ""), ErrDenied},
		{"wrong secret", bucket, credentials.NewStaticCredentialsProvider(srv.AccessKeyID, secret, "session-token-never-printed"), ErrDenied},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := OpenS3(t.Context(), S3Config{Bucket: c.bucket, Prefix: DefaultPrefix, EndpointURL: srv.Endpoint, Credentials: c.creds, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Store(t.Context(), []byte(pythonText))
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, c.want) {
				t.Fatalf("Store error %v (%T), want %v", err, err, c.want)
			}
			for _, s := range []string{secret, "session-token-never-printed", srv.SecretAccessKey} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
			st := lifecycle.Results{MaxInline: 10, Backend: b}.Place(t.Context(), lifecycle.Result{JSON: []byte(pythonText)})
			if st.Reference != digestRef || st.Fallback == nil || st.Inline {
				t.Errorf("Place = %+v, want the digest reference %s after a storage error", st, digestRef)
			}
		})
	}
}

// TestS3RefusesDotDotKeys: a key with a ".." segment is never requested, on read; a prefix
// with one is a configuration error.
func TestS3RefusesDotDotKeys(t *testing.T) {
	t.Parallel()
	srv := cloudtest.S3(t)
	bucket := srv.NewBucket(t)
	b := openS3(t, srv, bucket, DefaultPrefix)
	for _, key := range []string{"../x.json", "a/../../b.json", "a/.."} {
		if _, err := b.Load(t.Context(), bucket, key, 100); !errors.Is(err, ErrUnsafeKey) {
			t.Errorf("Load(%q) = %v, want ErrUnsafeKey", key, err)
		}
	}
	if _, err := b.Load(t.Context(), bucket, "a..b/c..json", 100); !errors.Is(err, ErrNotFound) {
		t.Errorf("a key with dots that are no .. segment is read: %v", err)
	}
	for _, p := range []string{"../results", "a/../b", "a/..", "a?b", "a#b", "a\nb"} {
		err := Config{Backend: "s3", S3: S3Config{Bucket: bucket, Prefix: p}}.Validate()
		if err == nil || !strings.Contains(err.Error(), "--result-storage-s3-prefix") {
			t.Errorf("prefix %q: Validate = %v", p, err)
		}
	}
}

// TestS3Probe writes, reads back and removes a probe object under the prefix, leaving
// nothing behind; a missing bucket fails it.
func TestS3Probe(t *testing.T) {
	t.Parallel()
	srv := cloudtest.S3(t)
	bucket := srv.NewBucket(t)
	checkProbe(t, openS3(t, srv, bucket, "probe/prefix/"), "s3", bucket, "probe/prefix/", "Static", func() (int, error) {
		list, err := srv.Client(t).ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err != nil {
			return 0, err
		}
		return len(list.Contents), nil
	})
	missing := openS3(t, srv, "rayctl-no-such-bucket", "")
	rep, err := missing.Probe(t.Context())
	if !errors.Is(err, ErrNotFound) || rep.Wrote {
		t.Fatalf("Probe of a missing bucket = %+v, %v", rep, err)
	}
}

// checkProbe runs b's Probe (b a bucket of the given scheme opened with prefix) and checks
// its report: written, read back and removed under the prefix, with credentials described by
// a text holding creds; objects (the bucket's, as its server lists them) must find none left.
func checkProbe(t *testing.T, b *Bucket, scheme, bucket, prefix, creds string, objects func() (int, error)) {
	t.Helper()
	rep, err := b.Probe(t.Context())
	if err != nil || !rep.Wrote || !rep.ReadBack || !rep.Removed || !strings.HasPrefix(rep.Key, prefix+"rayctl-probe-") ||
		rep.Location != scheme+"://"+bucket+"/"+prefix || !strings.Contains(rep.Credentials, creds) {
		t.Fatalf("Probe = %+v, %v", rep, err)
	}
	if n, err := objects(); err != nil || n != 0 {
		t.Fatalf("objects left: %d %v", n, err)
	}
}

// TestS3ErrorsNeverShowSecrets: a server that echoes the request's credentials back in its
// error (Authorization header, a security token, the secret itself) has them scrubbed.
func TestS3ErrorsNeverShowSecrets(t *testing.T) {
	t.Parallel()
	const secret, token = "Echoed-Secret-Key-abcdefghijklmnop", "Echoed-Session-Token-0123456789"
	signatures := make(chan string, 10) // the requests', from their Authorization headers
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, signature, _ := strings.Cut(r.Header.Get("Authorization"), "Signature=")
		signatures <- signature
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>you sent `+
			r.Header.Get("Authorization")+` token=`+r.Header.Get("X-Amz-Security-Token")+` secret `+secret+` and `+token+
			`</Message><StringToSign>AWS4-HMAC-SHA256 `+secret+`</StringToSign></Error>`)
	}))
	defer srv.Close()
	b, err := OpenS3(t.Context(), S3Config{Bucket: "bucket-one", Prefix: DefaultPrefix, EndpointURL: srv.URL,
		Credentials: credentials.NewStaticCredentialsProvider("AKIAECHOEDKEY0000001", secret, token), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Store(t.Context(), []byte(pythonText))
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("Store = %v, want ErrDenied", err)
	}
	signature := <-signatures
	if len(signature) < 32 {
		t.Fatalf("the request carried no signature: %q", signature)
	}
	for _, s := range []string{secret, token, "AKIAECHOEDKEY0000001", signature} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error shows %q: %v", s, err)
		}
	}
	if !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Errorf("the cause is lost: %v", err)
	}
}

// TestS3DefaultChain: without S3Config.Credentials the AWS default chain finds credentials
// in the environment and in a shared credentials file's profile; with none anywhere (and the
// instance metadata service off) a write fails with ErrNoCredentials and falls back.
func TestS3DefaultChain(t *testing.T) {
	srv := cloudtest.S3(t)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[results]\naws_access_key_id = "+srv.AccessKeyID+"\naws_secret_access_key = "+srv.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clear := func() {
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
			"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
			"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		t.Setenv("AWS_CONFIG_FILE", empty)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	}
	store := func() (string, error) {
		b, err := OpenS3(t.Context(), S3Config{Bucket: bucket, Prefix: DefaultPrefix, EndpointURL: srv.Endpoint, Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Store(t.Context(), []byte(pythonText)); err != nil {
			return "", err
		}
		return b.Credentials(t.Context())
	}

	clear()
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretAccessKey)
	if src, err := store(); err != nil || src != "AWS EnvConfigCredentials" {
		t.Errorf("environment: %q %v", src, err)
	}

	clear()
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "results")
	if src, err := store(); err != nil || !strings.HasPrefix(src, "AWS SharedConfigCredentials") {
		t.Errorf("shared credentials profile: %q %v", src, err)
	}

	clear()
	if _, err := store(); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no credentials anywhere: %v, want ErrNoCredentials", err)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"key SECRETVALUE here", "key [REDACTED] here"},
		{"GET /x?X-Amz-Signature=abc123&X-Amz-Security-Token=tok&a=1", "GET /x?X-Amz-Signature=[REDACTED]&X-Amz-Security-Token=[REDACTED]&a=1"},
		{`{"access_token": "ya29.abc", "expires_in": 3599}`, `{"access_token": "[REDACTED]", "expires_in": 3599}`},
		{"Authorization: Bearer ya29.xyz\nnext", "Authorization: [REDACTED]\nnext"},
		{"sent bearer ya29.xyz", "sent bearer [REDACTED]"},
		{"<StringToSign>AWS4 stuff</StringToSign>", "<StringToSign>[REDACTED]</StringToSign>"},
		{"k -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- end", "k [REDACTED] end"},
		{"api error NoSuchBucket: The specified bucket does not exist", "api error NoSuchBucket: The specified bucket does not exist"},
	} {
		if got := scrub(c.in, []string{"SECRETVALUE", ""}); got != c.want {
			t.Errorf("scrub(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestS3WebIdentity: with AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA) the default
// chain exchanges the token with STS for temporary credentials, which sign the S3 requests
// with their session token; a server echoing that token back has it scrubbed. STS and S3 are
// local fakes here: no network.
func TestS3WebIdentity(t *testing.T) {
	const token, tempKey, tempSecret, session = "eyJ-web-identity-token-never-printed", "ASIATEMPORARYKEY0001", "Temporary-Secret-Never-Printed-012345", "Session-Token-Never-Printed-abcdef"
	var mu sync.Mutex // guards what the fake servers saw, and refuse
	var gotToken, gotRole string
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = r.ParseForm()
		if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" {
			http.Error(w, "unexpected "+r.Form.Get("Action"), http.StatusBadRequest)
			return
		}
		gotToken, gotRole = r.Form.Get("WebIdentityToken"), r.Form.Get("RoleArn")
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>`+
			`<Credentials><AccessKeyId>`+tempKey+`</AccessKeyId><SecretAccessKey>`+tempSecret+`</SecretAccessKey><SessionToken>`+session+`</SessionToken>`+
			`<Expiration>`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`</Expiration></Credentials>`+
			`<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/results/rayworker</Arn><AssumedRoleId>AROA:rayworker</AssumedRoleId></AssumedRoleUser>`+
			`</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`)
	}))
	defer sts.Close()
	var signedWith, sentToken string
	refuse := false
	s3srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		signedWith, sentToken = r.Header.Get("Authorization"), r.Header.Get("X-Amz-Security-Token")
		if refuse {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>token `+sentToken+` not allowed</Message></Error>`)
			return
		}
		w.Header().Set("ETag", `"x"`)
	}))
	defer s3srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "eu-west-1",
		"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/results", "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_SESSION_NAME": "rayworker",
		"AWS_ENDPOINT_URL_STS": sts.URL} {
		t.Setenv(k, v)
		if v == "" {
			os.Unsetenv(k)
		}
	}
	b, err := OpenS3(t.Context(), S3Config{Bucket: "bucket-one", Prefix: DefaultPrefix, EndpointURL: s3srv.URL, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Store(t.Context(), []byte(pythonText)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gotToken != token || gotRole != "arn:aws:iam::123456789012:role/results" {
		t.Errorf("STS got token %q role %q", gotToken, gotRole)
	}
	if !strings.Contains(signedWith, "Credential="+tempKey+"/") || !strings.Contains(signedWith, "/eu-west-1/s3/") || sentToken != session {
		t.Errorf("S3 request signed %q with session token %q", signedWith, sentToken)
	}
	if src, err := b.Credentials(t.Context()); err != nil || !strings.Contains(src, "WebIdentity") {
		t.Errorf("Credentials = %q, %v", src, err)
	}
	refuse = true
	mu.Unlock()
	_, err = b.Store(t.Context(), []byte(pythonText))
	mu.Lock()
	if !errors.Is(err, ErrDenied) || strings.Contains(err.Error(), session) || strings.Contains(err.Error(), tempSecret) {
		t.Errorf("refused: %v", err)
	}
}
