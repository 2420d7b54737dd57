package resultstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ContentType is the Content-Type of every stored result, as django-ray writes it.
const ContentType = "application/json"

// ObjectKey is django-ray's key rule: the prefix without leading and trailing "/", then
// <aa>/<bb>/<hex>.json of the SHA-256 hex digest; no prefix part when it is empty.
func ObjectKey(prefix, sha256hex string) string {
	suffix := sha256hex[0:2] + "/" + sha256hex[2:4] + "/" + sha256hex + ".json"
	if p := strings.Trim(prefix, "/"); p != "" {
		return p + "/" + suffix
	}
	return suffix
}

// Reference is django-ray's reference to a stored object: <scheme>://<bucket>/<key>?bytes=<n>,
// the key verbatim (scheme "s3" or "gs").
func Reference(scheme, bucket, key string, n int64) string {
	return fmt.Sprintf("%s://%s/%s?bytes=%d", scheme, bucket, key, n)
}

// hasDotDot says whether a key has a ".." segment, the keys django-ray refuses to load.
func hasDotDot(key string) bool {
	for _, seg := range strings.Split(key, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

// Sentinels an *Error unwraps to.
var (
	ErrNotFound      = errors.New("not found")             // no such bucket or object
	ErrDenied        = errors.New("access denied")         // credentials refused or not allowed
	ErrNoCredentials = errors.New("no credentials found")  // the default chain / ADC found none
	ErrUnsafeKey     = errors.New("unsafe key")            // a key with a ".." segment
	ErrMismatch      = errors.New("read back differently") // a probe read back other bytes
)

// Error is every failure of this package: what was attempted where, and why, in a message
// already scrubbed of credentials. It unwraps to one of the sentinels when the cause is known,
// never to an SDK error (whose text is not scrubbed).
type Error struct {
	Service string // "S3" or "GCS"
	Op      string // "store", "read", "remove", "probe", "credentials"
	URL     string // s3://bucket/key or gs://bucket/key
	Msg     string // scrubbed
	kind    error
}

func (e *Error) Error() string {
	if e.URL == "" {
		return fmt.Sprintf("%s %s: %s", e.Service, e.Op, e.Msg)
	}
	return fmt.Sprintf("%s %s %s: %s", e.Service, e.Op, e.URL, e.Msg)
}

// Unwrap returns the sentinel of the cause (ErrNotFound, ErrDenied, ...), or nil.
func (e *Error) Unwrap() error { return e.kind }

// Object is an object read back, at most the limit asked for.
type Object struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Size        int64  `json:"size"` // of the whole object
	ContentType string `json:"content_type"`
	Data        []byte `json:"-"`
	Truncated   bool   `json:"truncated"` // Data is only the first len(Data) of Size bytes
}

// objectClient is one cloud's side of a Bucket. Its errors may carry secrets: Bucket
// classifies and scrubs them before they leave the package.
type objectClient interface {
	put(ctx context.Context, bucket, key string, body []byte) error
	// get reads at most limit bytes of an object (limit > 0).
	get(ctx context.Context, bucket, key string, limit int64) (Object, error)
	remove(ctx context.Context, bucket, key string) error
	// credentials says where the credentials come from, finding them if needed.
	credentials(ctx context.Context) (string, error)
	// secrets are the values to scrub from any text leaving the package.
	secrets(ctx context.Context) []string
	// classify maps an error of this client to a sentinel, or nil.
	classify(err error) error
	close() error
}

// Bucket is the s3 or gcs result backend: one bucket and key prefix. It implements
// lifecycle.Backend; Load and Probe serve rayctl (tasks show, doctor). Safe for concurrent use.
type Bucket struct {
	name    string // RESULT_STORAGE_BACKEND: "s3" or "gcs"
	scheme  string // reference scheme: "s3" or "gs"
	service string // "S3" or "GCS"
	bucket  string
	prefix  string // as configured
	timeout time.Duration
	cl      objectClient
}

// Name implements lifecycle.Backend: "s3" or "gcs".
func (b *Bucket) Name() string { return b.name }

// BucketName is the bucket results go to.
func (b *Bucket) BucketName() string { return b.bucket }

// Location is where results go: s3://bucket/prefix/ or gs://bucket/prefix/.
func (b *Bucket) Location() string {
	if p := strings.Trim(b.prefix, "/"); p != "" {
		return b.scheme + "://" + b.bucket + "/" + p + "/"
	}
	return b.scheme + "://" + b.bucket + "/"
}

// Store implements lifecycle.Backend: it writes text under django-ray's key for it, with
// Content-Type application/json, and returns the reference. Results are addressed by
// content, so writing one twice writes the same bytes.
func (b *Bucket) Store(ctx context.Context, text []byte) (string, error) {
	sum := sha256.Sum256(text)
	key := ObjectKey(b.prefix, hex.EncodeToString(sum[:]))
	if hasDotDot(key) {
		return "", b.errorf("store", key, ErrUnsafeKey, "a key with a .. segment is refused")
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := b.cl.put(ctx, b.bucket, key, text); err != nil {
		return "", b.fail(ctx, "store", key, err)
	}
	return Reference(b.scheme, b.bucket, key, int64(len(text))), nil
}

// Load reads at most limit bytes (limit > 0) of the object key in bucket (the bucket a
// reference names, which may differ from the configured one). A key with a ".." segment is
// refused without a request.
func (b *Bucket) Load(ctx context.Context, bucket, key string, limit int64) (Object, error) {
	if hasDotDot(key) {
		return Object{}, b.errorf("read", key, ErrUnsafeKey, "a key with a .. segment is refused (django-ray refuses it too)")
	}
	if bucket == "" {
		bucket = b.bucket
	}
	if limit <= 0 {
		limit = 1
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	o, err := b.cl.get(ctx, bucket, key, limit)
	if err != nil {
		e := b.fail(ctx, "read", key, err)
		e.URL = b.scheme + "://" + bucket + "/" + key
		return Object{}, e
	}
	o.Bucket, o.Key = bucket, key
	return o, nil
}

// Credentials says where this backend's credentials come from (for example
// "EnvConfigCredentials", "SharedConfigCredentials: ~/.aws/credentials", "service account
// file", "emulator, no credentials"), finding them if they have not been yet.
func (b *Bucket) Credentials(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	src, err := b.cl.credentials(ctx)
	if err != nil {
		return "", b.fail(ctx, "credentials", "", err)
	}
	return src, nil
}

// ProbeReport is what Probe did.
type ProbeReport struct {
	Location    string `json:"location"`    // s3://bucket/prefix/
	Key         string `json:"key"`         // the probe object's key
	Credentials string `json:"credentials"` // where they came from
	Wrote       bool   `json:"wrote"`
	ReadBack    bool   `json:"read_back"`
	Removed     bool   `json:"removed"`
}

// Probe checks the bucket is reachable and writable the way results are written: it writes a
// small JSON object under the prefix (rayctl-probe-<random>.json), reads it back, and removes
// it. The report says how far it got; the error says what failed (a probe object left behind
// is named in the report).
func (b *Bucket) Probe(ctx context.Context) (ProbeReport, error) {
	rep := ProbeReport{Location: b.Location()}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := "rayctl-probe-" + hex.EncodeToString(rnd[:]) + ".json"
	rep.Key = name
	if p := strings.Trim(b.prefix, "/"); p != "" {
		rep.Key = p + "/" + name
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	src, err := b.cl.credentials(ctx)
	if err != nil {
		return rep, b.fail(ctx, "credentials", "", err)
	}
	rep.Credentials = src
	body := []byte(fmt.Sprintf(`{"probe": "rayctl doctor", "at": %q}`, time.Now().UTC().Format(time.RFC3339)))
	if err := b.cl.put(ctx, b.bucket, rep.Key, body); err != nil {
		return rep, b.fail(ctx, "probe write", rep.Key, err)
	}
	rep.Wrote = true
	o, err := b.cl.get(ctx, b.bucket, rep.Key, int64(len(body))+1)
	switch {
	case err != nil:
		err = b.fail(ctx, "probe read", rep.Key, err)
	case !bytes.Equal(o.Data, body) || o.ContentType != ContentType:
		err = b.errorf("probe read", rep.Key, ErrMismatch, fmt.Sprintf("wrote %d bytes as %s, read back %d bytes as %q", len(body), ContentType, len(o.Data), o.ContentType))
	default:
		rep.ReadBack = true
	}
	if rerr := b.cl.remove(ctx, b.bucket, rep.Key); rerr != nil {
		return rep, errors.Join(err, b.fail(ctx, "probe remove", rep.Key, rerr))
	}
	rep.Removed = true
	return rep, err
}

// Close releases the client's connections.
func (b *Bucket) Close() error { return b.cl.close() }

func (b *Bucket) url(key string) string {
	if key == "" {
		return b.scheme + "://" + b.bucket
	}
	return b.scheme + "://" + b.bucket + "/" + key
}

func (b *Bucket) errorf(op, key string, kind error, msg string) *Error {
	return &Error{Service: b.service, Op: op, URL: b.url(key), Msg: msg, kind: kind}
}

// fail turns a client error into an *Error with a scrubbed message.
func (b *Bucket) fail(ctx context.Context, op, key string, err error) *Error {
	kind := b.cl.classify(err)
	var secrets []string
	if kind != ErrNoCredentials {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		secrets = b.cl.secrets(sctx)
		cancel()
	}
	msg := scrub(err.Error(), secrets)
	if kind == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		msg = fmt.Sprintf("no answer within %s: %s", b.timeout, msg)
	}
	return b.errorf(op, key, kind, msg)
}

// tokenish are the shapes of credentials that may appear in a server's or a library's text
// beyond the values known to be in use.
var tokenish = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\b((?:x-amz-signature|x-amz-security-token|x-amz-credential|signature|access_token|refresh_token|id_token|client_secret|private_key|password|token)=)[^&\s"',<]+`),
	regexp.MustCompile(`(?i)("(?:access_token|refresh_token|id_token|client_secret|private_key|private_key_id|password|secret_access_key|session_token|token)"\s*:\s*")[^"]*`),
	regexp.MustCompile(`(?i)(authorization:\s*)[^\r\n]+`),
	regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+`),
	regexp.MustCompile(`(?i)(<(?:StringToSign|StringToSignBytes|CanonicalRequest|CanonicalRequestBytes|SignatureProvided)>)[^<]*`),
	regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)`),
}

// scrub replaces every known secret value in s, then every credential-shaped fragment.
func scrub(s string, secrets []string) string {
	// longest first, so a secret containing another is replaced whole
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[REDACTED]")
		}
	}
	for _, re := range tokenish {
		if re.NumSubexp() > 0 {
			s = re.ReplaceAllString(s, "${1}[REDACTED]")
		} else {
			s = re.ReplaceAllString(s, "[REDACTED]")
		}
	}
	return s
}

// ProbeDir checks a filesystem result store the way Probe checks a bucket: it writes a small
// JSON file in root (rayctl-probe-<random>.json), reads it back and removes it.
func ProbeDir(root string) (ProbeReport, error) {
	rep := ProbeReport{Location: "filesystem " + root, Credentials: "this process's file permissions"}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	rep.Key = filepath.Join(root, "rayctl-probe-"+hex.EncodeToString(rnd[:])+".json")
	body := []byte(fmt.Sprintf(`{"probe": "rayctl doctor", "at": %q}`, time.Now().UTC().Format(time.RFC3339)))
	if err := os.WriteFile(rep.Key, body, 0o644); err != nil {
		return rep, err
	}
	rep.Wrote = true
	got, err := os.ReadFile(rep.Key)
	switch {
	case err != nil:
	case !bytes.Equal(got, body):
		err = fmt.Errorf("%s: %w", rep.Key, ErrMismatch)
	default:
		rep.ReadBack = true
	}
	if rerr := os.Remove(rep.Key); rerr != nil {
		return rep, errors.Join(err, rerr)
	}
	rep.Removed = true
	return rep, err
}
