package resultstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/httptransport"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	raw "google.golang.org/api/storage/v1"
)

// OpenGCS returns the gcs backend for c.Bucket under c.Prefix. Credentials are Google's
// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application
// default file, workload identity or the metadata server), found on first use; with
// c.Emulator (STORAGE_EMULATOR_HOST) it talks to that emulator without credentials.
func OpenGCS(ctx context.Context, c GCSConfig) (*Bucket, error) {
	if strings.TrimSpace(c.Bucket) == "" {
		return nil, &Error{Service: "GCS", Op: "configuration", Msg: "no bucket"}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Bucket{name: "gcs", scheme: "gs", service: "GCS", bucket: c.Bucket, prefix: c.Prefix, timeout: timeout,
		cl: &gcsClient{emulator: c.Emulator}}, nil
}

// gcsClient makes its JSON API client on first use (finding credentials may need the
// metadata server), and again after a failure to.
type gcsClient struct {
	emulator string
	endpoint string // the JSON API's base URL, when not Google's (tests)

	mu        sync.Mutex
	svc       *raw.Service
	creds     *auth.Credentials // nil with the emulator
	source    string
	transport *http.Transport
}

func (c *gcsClient) service(ctx context.Context) (*raw.Service, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.svc != nil {
		return c.svc, nil
	}
	if c.transport == nil {
		// kept so Close can drop its idle connections
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	opts := []option.ClientOption{option.WithUserAgent("rayctl-resultstore")}
	if c.emulator != "" {
		host := c.emulator
		if !strings.Contains(host, "://") {
			host = "http://" + host
		}
		opts = append(opts, option.WithEndpoint(strings.TrimRight(host, "/")+"/storage/v1/"),
			option.WithHTTPClient(&http.Client{Transport: c.transport}))
		c.source = "none (emulator at " + c.emulator + ")"
	} else {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{raw.DevstorageReadWriteScope}})
		if err != nil {
			return nil, noCredentials{err}
		}
		hc, err := httptransport.NewClient(&httptransport.Options{Credentials: creds, BaseRoundTripper: c.transport})
		if err != nil {
			return nil, noCredentials{err}
		}
		c.creds, c.source = creds, describeGoogleCreds(creds)
		opts = append(opts, option.WithHTTPClient(hc))
		if c.endpoint != "" {
			opts = append(opts, option.WithEndpoint(c.endpoint))
		}
	}
	svc, err := raw.NewService(ctx, opts...)
	if err != nil {
		return nil, err
	}
	c.svc = svc
	return svc, nil
}

// describeGoogleCreds says which kind of Application Default Credentials were found.
func describeGoogleCreds(creds *auth.Credentials) string {
	var f struct {
		Type string `json:"type"`
	}
	if b := creds.JSON(); len(b) > 0 && json.Unmarshal(b, &f) == nil && f.Type != "" {
		return "Google " + f.Type + " (application default credentials file)"
	}
	return "Google metadata server (workload identity or the instance's service account)"
}

// backoff paces the retries of a write: results are addressed by content, so writing one
// again is harmless.
func backoff() *gax.Backoff {
	return &gax.Backoff{Initial: 250 * time.Millisecond, Max: 8 * time.Second, Multiplier: 2}
}

// retryable: rate limits, server errors and broken connections are retried; refusals are not.
func retryable(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code == http.StatusRequestTimeout || ge.Code == http.StatusTooManyRequests || ge.Code >= 500
	}
	var ae *auth.Error
	if errors.As(err, &ae) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

func (c *gcsClient) put(ctx context.Context, bucket, key string, body []byte) error {
	svc, err := c.service(ctx)
	if err != nil {
		return err
	}
	// one request up to 16 MiB (a multipart upload, as google-cloud-storage makes for
	// django-ray), a resumable upload in 16 MiB chunks above
	_, err = svc.Objects.Insert(bucket, &raw.Object{Name: key, ContentType: ContentType}).
		Media(bytes.NewReader(body), googleapi.ChunkSize(16<<20)).
		WithRetry(backoff(), retryable).Context(ctx).Do()
	return err
}

func (c *gcsClient) get(ctx context.Context, bucket, key string, limit int64) (Object, error) {
	svc, err := c.service(ctx)
	if err != nil {
		return Object{}, err
	}
	meta, err := svc.Objects.Get(bucket, key).Context(ctx).Do()
	if err != nil {
		return Object{}, err
	}
	o := Object{Size: int64(meta.Size), ContentType: meta.ContentType}
	if o.Size == 0 {
		return o, nil
	}
	call := svc.Objects.Get(bucket, key).Generation(meta.Generation).Context(ctx)
	call.Header().Set("Range", fmt.Sprintf("bytes=0-%d", min(limit, o.Size)-1))
	resp, err := call.Download()
	if err != nil {
		return Object{}, err
	}
	defer resp.Body.Close()
	if o.Data, err = io.ReadAll(io.LimitReader(resp.Body, limit)); err != nil {
		return Object{}, err
	}
	o.Truncated = o.Size > int64(len(o.Data))
	return o, nil
}

func (c *gcsClient) remove(ctx context.Context, bucket, key string) error {
	svc, err := c.service(ctx)
	if err != nil {
		return err
	}
	return svc.Objects.Delete(bucket, key).Context(ctx).Do()
}

func (c *gcsClient) credentials(ctx context.Context) (string, error) {
	if _, err := c.service(ctx); err != nil {
		return "", err
	}
	c.mu.Lock()
	creds, src := c.creds, c.source
	c.mu.Unlock()
	if creds != nil {
		// finding a file is not having a token: get one (cached afterwards)
		if _, err := creds.Token(ctx); err != nil {
			return "", noCredentials{err}
		}
	}
	return src, nil
}

// secrets are the token in use and the secrets of the credentials file, if any.
func (c *gcsClient) secrets(ctx context.Context) []string {
	c.mu.Lock()
	creds := c.creds
	c.mu.Unlock()
	if creds == nil {
		return nil
	}
	var out []string
	var f struct {
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		ClientSecret string `json:"client_secret"`
		RefreshToken string `json:"refresh_token"`
	}
	if b := creds.JSON(); len(b) > 0 && json.Unmarshal(b, &f) == nil {
		out = append(out, f.PrivateKey, f.PrivateKeyID, f.ClientSecret, f.RefreshToken)
	}
	if tok, err := creds.Token(ctx); err == nil && tok != nil {
		out = append(out, tok.Value)
	}
	return out
}

func (c *gcsClient) classify(err error) error {
	var nc noCredentials
	if errors.As(err, &nc) {
		return ErrNoCredentials
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch ge.Code {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return ErrDenied
		}
	}
	var ae *auth.Error
	if errors.As(err, &ae) {
		if ae.Response != nil && ae.Response.StatusCode >= 400 && ae.Response.StatusCode < 500 {
			return ErrDenied // the token service refused these credentials
		}
		return ErrNoCredentials // no token could be had (metadata server, token service down)
	}
	return nil
}

func (c *gcsClient) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.svc = nil
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}
