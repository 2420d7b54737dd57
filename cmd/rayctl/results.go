package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/resultstore"
)

// settingFlags are flags for rows of the settings table, as rayctl shows the workers'
// settings: django-ray's name first, then what it does, accepts and defaults to.
func settingFlags(rows []settings.Setting) []cli.Flag {
	out := make([]cli.Flag, 0, len(rows))
	for _, s := range rows {
		u := fmt.Sprintf("%s: %s (%s; $%s)", s.DjangoName(), s.Usage, s.Accepts, s.Env)
		if s.Default != "" {
			u = fmt.Sprintf("%s: %s (%s; default %s; $%s)", s.DjangoName(), s.Usage, s.Accepts, s.Default, s.Env)
		}
		out = append(out, &cli.StringFlag{Name: s.Name, Usage: u})
	}
	return out
}

// resultFlags are RESULT_STORAGE_BACKEND and its companions (doctor; reconcile-jobs has them
// among its policyFlags).
func resultFlags() []cli.Flag { return settingFlags(settings.ResultStorage) }

// fromEnv is " (from $VAR)" for a value that came from the environment, else "".
func fromEnv(src string) string {
	if strings.HasPrefix(src, "$") {
		return " (from " + src + ")"
	}
	return ""
}

// setting is a flag's value, else its environment variable's, else def; with where it came
// from ("--flag", "$VAR" or "").
func (e env) setting(c *cli.Context, flag, envName, def string) (value, source string) {
	if c.IsSet(flag) {
		return c.String(flag), "--" + flag
	}
	if v := strings.TrimSpace(e.getenv(envName)); v != "" {
		return v, "$" + envName
	}
	return def, ""
}

// resultConfig reads RESULT_STORAGE_BACKEND and its companion settings as rayworker does, and
// where each came from, by flag name.
func (e env) resultConfig(c *cli.Context) (resultstore.Config, map[string]string) {
	src := map[string]string{}
	rc := resultstore.ConfigFrom(func(s settings.Setting) string {
		v, from := e.setting(c, s.Name, s.Env, s.Default)
		src[s.Name] = from
		return v
	}, e.getenv("STORAGE_EMULATOR_HOST"))
	return rc, src
}

// resultBackend opens the workers' result backend from flags and environment; a bad setting
// is a one-line usage error naming it (and the variable it came from).
func (e env) resultBackend(c *cli.Context, cmd string) (lifecycle.Backend, error) {
	rc, src := e.resultConfig(c)
	b, err := resultstore.Open(c.Context, rc)
	var ce *resultstore.ConfigError
	switch {
	case errors.As(err, &ce):
		return nil, usageErrorf("%s: %s%s", cmd, ce.Msg, fromEnv(src[ce.Flag]))
	case err != nil:
		return nil, usageErrorf("%s: %v", cmd, err)
	}
	return b, nil
}

// objectReader reads s3:// and gs:// results for tasks show, the way django-ray's
// get_result() does: the bucket from the reference, the region and endpoint from the
// settings, the credentials from this machine.
type objectReader struct {
	s3  resultstore.S3Config
	gcs resultstore.GCSConfig
}

func (o objectReader) ReadObject(ctx context.Context, scheme, bucket, key string, limit int64) (recovery.ObjectData, error) {
	var b *resultstore.Bucket
	var err error
	switch scheme {
	case "s3":
		cfg := o.s3
		cfg.Bucket = bucket
		b, err = resultstore.OpenS3(ctx, cfg)
	case "gs":
		cfg := o.gcs
		cfg.Bucket = bucket
		b, err = resultstore.OpenGCS(ctx, cfg)
	default:
		return recovery.ObjectData{}, fmt.Errorf("no reader for %s:// references", scheme)
	}
	if err != nil {
		return recovery.ObjectData{}, err
	}
	defer b.Close()
	obj, err := b.Load(ctx, bucket, key, limit)
	switch {
	case errors.Is(err, resultstore.ErrNoCredentials) && scheme == "s3":
		return recovery.ObjectData{}, fmt.Errorf("%w (no AWS credentials on this machine: give AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role applies)", err)
	case errors.Is(err, resultstore.ErrNoCredentials):
		return recovery.ObjectData{}, fmt.Errorf("%w (no Google credentials on this machine: set GOOGLE_APPLICATION_CREDENTIALS, run gcloud auth application-default login, or run where workload identity applies)", err)
	case errors.Is(err, resultstore.ErrDenied):
		return recovery.ObjectData{}, fmt.Errorf("%w (these credentials may not read %s://%s)", err, scheme, bucket)
	case errors.Is(err, resultstore.ErrNotFound):
		return recovery.ObjectData{}, fmt.Errorf("%w (no such object or bucket where rayctl looked: are the region and endpoint the workers'?)", err)
	case err != nil:
		return recovery.ObjectData{}, err
	}
	return recovery.ObjectData{Data: obj.Data, Size: obj.Size, ContentType: obj.ContentType}, nil
}

// bucketProber is the doctor's probe of an s3 or gcs result store.
type bucketProber struct{ b *resultstore.Bucket }

func (p bucketProber) ProbeStorage(ctx context.Context) (recovery.StorageProbe, error) {
	rep, err := p.b.Probe(ctx)
	return recovery.StorageProbe{Location: rep.Location, Key: rep.Key, Credentials: rep.Credentials,
		Wrote: rep.Wrote, ReadBack: rep.ReadBack, Removed: rep.Removed}, err
}

// dirProber is the doctor's probe of a filesystem result store.
type dirProber struct{ root string }

func (p dirProber) ProbeStorage(context.Context) (recovery.StorageProbe, error) {
	rep, err := resultstore.ProbeDir(p.root)
	return recovery.StorageProbe{Location: rep.Location, Key: rep.Key, Credentials: rep.Credentials,
		Wrote: rep.Wrote, ReadBack: rep.ReadBack, Removed: rep.Removed}, err
}

// storageCheck is the doctor's check of the workers' result backend.
func storageCheck(b lifecycle.Backend) recovery.StorageCheck {
	c := recovery.StorageCheck{Backend: b.Name(), Location: resultstore.Describe(b)}
	switch v := b.(type) {
	case *resultstore.Bucket:
		c.Prober = bucketProber{v}
	case lifecycle.FilesystemBackend:
		c.Prober = dirProber{v.Root}
	}
	return c
}

const objectHelp = `s3:// and gs:// results are read (at most --fetch-bytes, shown cut in text output) the way
Django's get_result() reads them: the bucket from the reference; for s3 the region and endpoint
of --result-storage-s3-region and --result-storage-s3-endpoint-url (default: the workers'
DJANGO_RAY_RESULT_STORAGE_S3_* variables); credentials from this machine (AWS: environment,
shared config/profile, web identity, instance role; GCS: application default credentials or
STORAGE_EMULATOR_HOST). Without credentials the reference is explained and the reason given.`

// objectOptions sets how tasks show reads s3:// and gs:// results.
func (e env) objectOptions(c *cli.Context, opts *recovery.DetailOptions) error {
	if c.Bool("no-fetch") {
		return nil
	}
	opts.FetchLimit = c.Int64("fetch-bytes")
	if opts.FetchLimit < 1 || opts.FetchLimit > recovery.MaxFetchLimit {
		return usageErrorf("tasks show: invalid --fetch-bytes %d (want 1..%d)", opts.FetchLimit, recovery.MaxFetchLimit)
	}
	region, _ := e.setting(c, settings.ResultStorageS3Region.Name, settings.ResultStorageS3Region.Env, "")
	endpoint, src := e.setting(c, settings.ResultStorageS3EndpointURL.Name, settings.ResultStorageS3EndpointURL.Env, "")
	cfg := resultstore.Config{Backend: "s3", S3: resultstore.S3Config{Bucket: "any", Region: strings.TrimSpace(region), EndpointURL: strings.TrimSpace(endpoint)}}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("tasks show: %v%s", err, fromEnv(src))
	}
	opts.Objects = objectReader{s3: cfg.S3, gcs: resultstore.GCSConfig{Emulator: strings.TrimSpace(e.getenv("STORAGE_EMULATOR_HOST"))}}
	return nil
}

// writeObject prints what tasks show read of an s3:// or gs:// result, or why it could not.
func writeObject(w io.Writer, ref *recovery.Reference) {
	switch {
	case ref.FetchError != "":
		fmt.Fprintf(w, "  not read: %s\n", ref.FetchError)
	case ref.Object != nil:
		o := ref.Object
		var checks []string
		if o.SizeMatches != nil {
			checks = append(checks, map[bool]string{true: "size matches the reference", false: "SIZE DIFFERS FROM THE REFERENCE"}[*o.SizeMatches])
		}
		if o.DigestMatches != nil {
			checks = append(checks, map[bool]string{true: "sha256 matches the key", false: "SHA256 DIFFERS FROM THE KEY"}[*o.DigestMatches])
		}
		note := ""
		if len(checks) > 0 {
			note = "; " + strings.Join(checks, ", ")
		}
		fmt.Fprintf(w, "  read %d of %d bytes (%s%s)\n%s\n", o.Fetched, o.Size, dash(o.ContentType), note, indentJSON(o.Content))
	}
}
