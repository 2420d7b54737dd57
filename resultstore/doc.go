// Package resultstore is django-ray 0.2.0's RESULT_STORAGE_BACKEND: the Config the
// RESULT_STORAGE_* settings make (their rows are in internal/settings; ConfigFrom reads them
// the same way for rayworker and rayctl), and the backends a result larger than
// MAX_RESULT_SIZE_BYTES goes to. digest and filesystem are lifecycle's; this package adds
// s3 and gcs, byte-compatible with django-ray's S3ResultStorage and GCSResultStorage:
//
//	key       <prefix with leading and trailing "/" removed>/<aa>/<bb>/<sha256 hex>.json
//	          (just <aa>/<bb>/<hex>.json when the prefix is empty), written verbatim
//	reference s3://<bucket>/<key>?bytes=<n>   gs://<bucket>/<key>?bytes=<n>
//	content   the result's Python json.dumps text, Content-Type application/json
//
// where <hex> and <n> are the SHA-256 and the byte length of that text. A key with a ".."
// segment is refused, on write (a prefix holding one is a configuration error) and on read
// (a reference holding one), as django-ray refuses it on read.
//
// Credentials come the way operators already provide them, read by the clouds' own SDKs:
// the AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, the shared
// config and credentials files with AWS_PROFILE, web identity / IRSA, ECS and EC2 instance
// roles) and Google Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
// file, workload identity / the metadata server); STORAGE_EMULATOR_HOST points the GCS client
// at an emulator. An S3-compatible service (MinIO, Ceph) is reached through
// RESULT_STORAGE_S3_ENDPOINT_URL with path-style addressing.
//
// Every error this package returns is an *Error whose text has been scrubbed of the
// credentials in use (secret keys, session and access tokens, private keys), even when a
// server echoes them back; the SDKs' own errors are never passed on unwrapped.
package resultstore
