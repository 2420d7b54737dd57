package resultstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// CredentialsProvider supplies AWS credentials (S3Config.Credentials; tests).
type CredentialsProvider = aws.CredentialsProvider

// OpenS3 returns the s3 backend for c.Bucket under c.Prefix. The AWS SDK reads its usual
// configuration (AWS_* variables, the shared config and credentials files, AWS_PROFILE) and
// finds credentials on first use through its default chain, unless c.Credentials is set.
// Without a region from c or the AWS configuration it uses us-east-1, as boto3 does. With
// c.EndpointURL it talks path-style to that S3-compatible service and sends checksums only
// where S3 requires them (MinIO and Ceph releases predating S3's default checksums refuse
// them).
func OpenS3(ctx context.Context, c S3Config) (*Bucket, error) {
	if strings.TrimSpace(c.Bucket) == "" {
		return nil, &Error{Service: "S3", Op: "configuration", Msg: "no bucket"}
	}
	if err := checkEndpoint(c.EndpointURL); err != nil {
		return nil, &Error{Service: "S3", Op: "configuration", Msg: err.Error()}
	}
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(c.Credentials))
	}
	if c.EndpointURL != "" {
		opts = append(opts, config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, &Error{Service: "S3", Op: "configuration", Msg: scrub(err.Error(), nil)}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	api := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.EndpointURL != "" {
			o.BaseEndpoint = aws.String(c.EndpointURL)
			o.UsePathStyle = true
		}
	})
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Bucket{name: "s3", scheme: "s3", service: "S3", bucket: c.Bucket, prefix: c.Prefix, timeout: timeout,
		cl: &s3Client{api: api, creds: cfg.Credentials}}, nil
}

type s3Client struct {
	api   *s3.Client
	creds aws.CredentialsProvider // the config's (cached) provider; nil when none resolved
}

// noCredentials marks a failure to find credentials (classify: ErrNoCredentials).
type noCredentials struct{ err error }

func (e noCredentials) Error() string { return e.err.Error() }

func (c *s3Client) retrieve(ctx context.Context) (aws.Credentials, error) {
	if c.creds == nil {
		return aws.Credentials{}, noCredentials{errors.New("the AWS default chain found no credentials")}
	}
	v, err := c.creds.Retrieve(ctx)
	if err != nil {
		return v, noCredentials{err}
	}
	return v, nil
}

func (c *s3Client) put(ctx context.Context, bucket, key string, body []byte) error {
	if _, err := c.retrieve(ctx); err != nil {
		return err
	}
	_, err := c.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(ContentType),
	})
	return err
}

func (c *s3Client) get(ctx context.Context, bucket, key string, limit int64) (Object, error) {
	if _, err := c.retrieve(ctx); err != nil {
		return Object{}, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Range: aws.String(fmt.Sprintf("bytes=0-%d", limit-1))}
	out, err := c.api.GetObject(ctx, in)
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" { // an empty object has no byte 0
		in.Range = nil
		out, err = c.api.GetObject(ctx, in)
	}
	if err != nil {
		return Object{}, err
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, limit))
	if err != nil {
		return Object{}, err
	}
	o := Object{Data: data, ContentType: aws.ToString(out.ContentType), Size: int64(len(data))}
	if total, ok := rangeTotal(aws.ToString(out.ContentRange)); ok {
		o.Size = total
	} else if n := aws.ToInt64(out.ContentLength); n > o.Size {
		o.Size = n
	}
	o.Truncated = o.Size > int64(len(data))
	return o, nil
}

// rangeTotal reads the total of a Content-Range header: "bytes 0-99/1234" -> 1234.
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil
}

func (c *s3Client) remove(ctx context.Context, bucket, key string) error {
	if _, err := c.retrieve(ctx); err != nil {
		return err
	}
	_, err := c.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return err
}

func (c *s3Client) credentials(ctx context.Context) (string, error) {
	v, err := c.retrieve(ctx)
	if err != nil {
		return "", err
	}
	return "AWS " + v.Source, nil
}

// secrets are the credentials in use (the cache's, else found again within ctx).
func (c *s3Client) secrets(ctx context.Context) []string {
	if c.creds == nil {
		return nil
	}
	v, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil
	}
	return []string{v.SecretAccessKey, v.SessionToken, v.AccessKeyID}
}

func (c *s3Client) classify(err error) error {
	var nc noCredentials
	if errors.As(err, &nc) {
		return ErrNoCredentials
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket", "NoSuchKey", "NotFound":
			return ErrNotFound
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
			"TokenRefreshRequired", "AllAccessDisabled", "Forbidden", "AccountProblem", "InvalidSecurity":
			return ErrDenied
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case 404:
			return ErrNotFound
		case 401, 403:
			return ErrDenied
		}
	}
	return nil
}

// close has nothing to release: the SDK's HTTP client (kept as the SDK builds it, so
// AWS_CA_BUNDLE and the SDK's timeouts apply) holds only idle connections.
func (c *s3Client) close() error { return nil }
