package resultstore

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
)

// DefaultPrefix is RESULT_STORAGE_S3_PREFIX's and RESULT_STORAGE_GCS_PREFIX's default.
const DefaultPrefix = settings.DefaultResultPrefix

// DefaultTimeout bounds one storage operation (a write with its retries, a read, a probe
// step) when a Config leaves Timeout zero.
const DefaultTimeout = 2 * time.Minute

// Config is RESULT_STORAGE_BACKEND with its companion settings.
type Config struct {
	Backend        string // digest (also ""), filesystem, s3 or gcs; any case
	FilesystemPath string // RESULT_STORAGE_FILESYSTEM_PATH
	S3             S3Config
	GCS            GCSConfig
}

// S3Config is the s3 backend's settings.
type S3Config struct {
	Bucket      string // RESULT_STORAGE_S3_BUCKET
	Prefix      string // RESULT_STORAGE_S3_PREFIX; callers fill in DefaultPrefix when it is unset
	Region      string // RESULT_STORAGE_S3_REGION; "": the AWS configuration's, else us-east-1
	EndpointURL string // RESULT_STORAGE_S3_ENDPOINT_URL; "": AWS
	// Credentials replaces the AWS default chain when set (tests).
	Credentials CredentialsProvider
	Timeout     time.Duration // per operation; 0: DefaultTimeout
}

// GCSConfig is the gcs backend's settings.
type GCSConfig struct {
	Bucket string // RESULT_STORAGE_GCS_BUCKET
	Prefix string // RESULT_STORAGE_GCS_PREFIX; callers fill in DefaultPrefix when it is unset
	// Emulator is STORAGE_EMULATOR_HOST (HOST:PORT or a URL), as the caller read it: the
	// JSON API is asked there, without credentials.
	Emulator string
	Timeout  time.Duration // per operation; 0: DefaultTimeout
}

// ConfigError is a setting Validate refuses. Flag names it, so a caller can say where the
// value came from (a flag or an environment variable).
type ConfigError struct {
	Flag string // the flag at fault, without dashes
	Msg  string // one line naming the flag and what it accepts
}

func (e *ConfigError) Error() string { return e.Msg }

func configErrorf(flag, format string, a ...any) error {
	return &ConfigError{Flag: flag, Msg: fmt.Sprintf(format, a...)}
}

// ConfigFrom is the Config the RESULT_STORAGE_* settings make, as both binaries read them:
// value is a setting's text (its flag's, else its variable's, else its default), emulator
// is STORAGE_EMULATOR_HOST. Names, regions and endpoints are trimmed; prefixes are kept as
// given (Validate judges them).
func ConfigFrom(value func(settings.Setting) string, emulator string) Config {
	trim := func(s settings.Setting) string { return strings.TrimSpace(value(s)) }
	return Config{
		Backend:        value(settings.ResultStorageBackend),
		FilesystemPath: value(settings.ResultStorageFilesystemPath),
		S3: S3Config{Bucket: trim(settings.ResultStorageS3Bucket), Prefix: value(settings.ResultStorageS3Prefix),
			Region: trim(settings.ResultStorageS3Region), EndpointURL: trim(settings.ResultStorageS3EndpointURL)},
		GCS: GCSConfig{Bucket: trim(settings.ResultStorageGCSBucket), Prefix: value(settings.ResultStorageGCSPrefix),
			Emulator: strings.TrimSpace(emulator)},
	}
}

// Name is the backend's RESULT_STORAGE_BACKEND value, lower-cased, "digest" when unset.
func (c Config) Name() string {
	n := strings.ToLower(strings.TrimSpace(c.Backend))
	if n == "" {
		return "digest"
	}
	return n
}

// Validate refuses what no backend could use: an unknown backend, a missing companion
// setting, a prefix or endpoint that would make keys or references django-ray cannot read.
// Each message names the flag and its environment variable.
func (c Config) Validate() error {
	switch c.Name() {
	case "digest":
		return nil
	case "filesystem":
		if strings.TrimSpace(c.FilesystemPath) == "" {
			return configErrorf(settings.ResultStorageFilesystemPath.Name, "--result-storage-backend filesystem needs --%s (or $%s): the directory shared with Django",
				settings.ResultStorageFilesystemPath.Name, settings.ResultStorageFilesystemPath.Env)
		}
		return nil
	case "s3":
		if err := checkBucket("s3", settings.ResultStorageS3Bucket, c.S3.Bucket); err != nil {
			return err
		}
		if err := checkPrefix(settings.ResultStorageS3Prefix, c.S3.Prefix); err != nil {
			return err
		}
		if c.S3.Region != "" && strings.ContainsAny(c.S3.Region, "/ \t\n?#") {
			return configErrorf(settings.ResultStorageS3Region.Name, "invalid --%s %q: want an AWS region such as eu-west-1", settings.ResultStorageS3Region.Name, c.S3.Region)
		}
		return checkEndpoint(c.S3.EndpointURL)
	case "gcs":
		if err := checkBucket("gcs", settings.ResultStorageGCSBucket, c.GCS.Bucket); err != nil {
			return err
		}
		return checkPrefix(settings.ResultStorageGCSPrefix, c.GCS.Prefix)
	}
	return configErrorf(settings.ResultStorageBackend.Name, "invalid --result-storage-backend %q: want one of %s", c.Backend, settings.ResultBackends)
}

func checkBucket(backend string, s settings.Setting, b string) error {
	if strings.TrimSpace(b) == "" {
		return configErrorf(s.Name, "--result-storage-backend %s needs --%s (or $%s)", backend, s.Name, s.Env)
	}
	if strings.ContainsAny(b, "/?#% \t\r\n") || b == "." || b == ".." {
		return configErrorf(s.Name, "invalid --%s %q: want a bucket name (letters, digits, '.', '-', '_')", s.Name, b)
	}
	return nil
}

// checkPrefix refuses prefixes whose keys django-ray would refuse to read back (a ".."
// segment) or whose references would not parse back into the same key ("?", "#").
func checkPrefix(s settings.Setting, p string) error {
	if strings.ContainsAny(p, "?#") {
		return configErrorf(s.Name, "invalid --%s %q: a ? or # would cut the reference short when django-ray parses it", s.Name, p)
	}
	if hasDotDot(p) {
		return configErrorf(s.Name, "invalid --%s %q: a .. segment is refused (django-ray refuses such keys)", s.Name, p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return configErrorf(s.Name, "invalid --%s %q: control characters are not allowed", s.Name, p)
		}
	}
	return nil
}

func checkEndpoint(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return configErrorf(settings.ResultStorageS3EndpointURL.Name, "invalid --%s %q: want http(s)://HOST[:PORT]", settings.ResultStorageS3EndpointURL.Name, redactURL(raw))
	}
	if u.User != nil {
		return configErrorf(settings.ResultStorageS3EndpointURL.Name, "invalid --%s %q: credentials in the URL are not used and would leak into logs; give them the AWS way (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, a role)",
			settings.ResultStorageS3EndpointURL.Name, redactURL(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return configErrorf(settings.ResultStorageS3EndpointURL.Name, "invalid --%s %q: want http(s)://HOST[:PORT] without a query", settings.ResultStorageS3EndpointURL.Name, raw)
	}
	return nil
}

// redactURL hides a password in a URL that might carry one; text that is no URL is
// hidden whole when it has an @.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return "[REDACTED]"
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("[REDACTED]")
	}
	return u.String()
}

// Open validates c and returns its backend: lifecycle's DigestBackend or FilesystemBackend,
// or a *Bucket for s3 and gcs. Nothing is contacted: credentials are found on first use, so a
// worker starts without its cloud and a write that fails falls back to the digest reference.
// Close the backend with Close when done.
func Open(ctx context.Context, c Config) (lifecycle.Backend, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch c.Name() {
	case "filesystem":
		return lifecycle.FilesystemBackend{Root: c.FilesystemPath}, nil
	case "s3":
		return OpenS3(ctx, c.S3)
	case "gcs":
		return OpenGCS(ctx, c.GCS)
	}
	return lifecycle.DigestBackend{}, nil
}

// Close releases a backend Open returned (the GCS client's connections); others have
// nothing to release.
func Close(b lifecycle.Backend) error {
	if c, ok := b.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// Describe is where b puts results, for a configuration log line: "digest",
// "filesystem /dir", "s3://bucket/prefix/".
func Describe(b lifecycle.Backend) string {
	switch v := b.(type) {
	case *Bucket:
		return v.Location()
	case lifecycle.FilesystemBackend:
		return "filesystem " + v.Root
	case nil:
		return "digest"
	}
	return b.Name()
}
