package recovery

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Reference is a parsed result_reference: where django-ray put a result larger than
// MAX_RESULT_SIZE_BYTES. The formats are django-ray 0.2.0's:
//
//	oversize://sha256/<hex>?bytes=<n>                        digest only, nothing stored
//	resultfs://sha256/<hex>?rel=<aa>/<bb>/<hex>.json&bytes=<n> a file under RESULT_STORAGE_FILESYSTEM_PATH
//	s3://<bucket>/<key>?bytes=<n>                            an S3 object
//	gs://<bucket>/<key>?bytes=<n>                            a GCS object
type Reference struct {
	Raw    string `json:"raw"`
	Scheme string `json:"scheme"` // oversize, resultfs, s3, gs
	SHA256 string `json:"sha256,omitempty"`
	Bytes  *int64 `json:"bytes"` // size of the JSON text, when the reference says
	// Retrievable: Django's get_result() can load the payload (with matching storage
	// settings). oversize:// never is.
	Retrievable bool `json:"retrievable"`
	// Location is where the payload is: the file path relative to
	// RESULT_STORAGE_FILESYSTEM_PATH, or the object URL.
	Location string `json:"location,omitempty"`
	Bucket   string `json:"bucket,omitempty"`
	Key      string `json:"key,omitempty"`
	// Path is the file on this machine (resultfs:// with a known result directory), and
	// FileExists/FileBytes what is there.
	Path       string `json:"path,omitempty"`
	FileExists *bool  `json:"file_exists,omitempty"`
	FileBytes  *int64 `json:"file_bytes,omitempty"`
	// FileProblem says why the file could not be looked at, when that is not simply that it
	// is missing: a symbolic link that leads out of the result directory is not followed.
	FileProblem string `json:"file_problem,omitempty"`
	// Object is the s3:// or gs:// object as rayctl read it (TaskDetail with an
	// ObjectReader), and FetchError why it could not (no credentials, access denied, no such
	// object, ...).
	Object     *ResultObject `json:"object,omitempty"`
	FetchError string        `json:"fetch_error,omitempty"`
	// Explanation says what the reference means, in one sentence for people.
	Explanation string `json:"explanation"`
}

// ParseReference parses a result_reference. resultDir (RESULT_STORAGE_FILESYSTEM_PATH, may
// be empty) resolves resultfs:// files, which are then checked on disk.
func ParseReference(ref, resultDir string) (Reference, error) {
	r := Reference{Raw: ref}
	scheme, rest, ok := strings.Cut(ref, "://")
	if !ok {
		return r, fmt.Errorf("result reference %q has no scheme", ref)
	}
	r.Scheme = scheme
	body, rawQuery := rest, ""
	if i := strings.Index(rest, "?"); i >= 0 { // the first, as Python's urlparse
		body, rawQuery = rest[:i], rest[i+1:]
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return r, fmt.Errorf("result reference %q: bad query: %v", ref, err)
	}
	if b := q.Get("bytes"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return r, fmt.Errorf("result reference %q: bad byte count %q", ref, b)
		}
		r.Bytes = &n
	}
	size := "unknown size"
	if r.Bytes != nil {
		size = fmt.Sprintf("%d bytes", *r.Bytes)
	}
	switch scheme {
	case "oversize", "resultfs":
		algo, digest, _ := strings.Cut(body, "/")
		if algo != "sha256" || len(digest) != 64 || strings.Trim(strings.ToLower(digest), "0123456789abcdef") != "" {
			return r, fmt.Errorf("result reference %q: want %s://sha256/<64 hex digits>", ref, scheme)
		}
		r.SHA256 = strings.ToLower(digest)
	}
	switch scheme {
	case "oversize":
		r.Explanation = fmt.Sprintf("digest only: the result (%s) was larger than MAX_RESULT_SIZE_BYTES and was not stored "+
			"anywhere (RESULT_STORAGE_BACKEND=digest); only its sha256 is kept, so it cannot be retrieved", size)
	case "resultfs":
		rel := q.Get("rel")
		if rel == "" || path.IsAbs(rel) || filepath.IsAbs(rel) || strings.Contains(rel, "..") || strings.Contains(rel, "\\") {
			return r, fmt.Errorf("result reference %q: unsafe or missing rel path %q", ref, rel)
		}
		r.Retrievable, r.Location = true, rel
		r.Explanation = fmt.Sprintf("file %s (%s) under RESULT_STORAGE_FILESYSTEM_PATH; get_result() reads it where that "+
			"setting points at the shared directory", rel, size)
		if resultDir != "" {
			r.Path = filepath.Join(resultDir, filepath.FromSlash(rel))
			fi, err := statInside(resultDir, rel)
			exists := err == nil && fi.Mode().IsRegular()
			r.FileExists = &exists
			if exists {
				n := fi.Size()
				r.FileBytes = &n
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				r.FileProblem = err.Error()
			}
		}
	case "s3", "gs":
		bucket, key, _ := strings.Cut(body, "/")
		key = strings.TrimLeft(key, "/") // as django-ray's parsed.path.lstrip("/")
		if bucket == "" || key == "" {
			return r, fmt.Errorf("result reference %q: want %s://<bucket>/<key>", ref, scheme)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == ".." {
				return r, fmt.Errorf("result reference %q: unsafe key %q: a .. segment is refused (django-ray refuses it too)", ref, key)
			}
		}
		service := map[string]string{"s3": "S3", "gs": "GCS"}[scheme]
		r.Retrievable, r.Bucket, r.Key, r.Location = true, bucket, key, scheme+"://"+bucket+"/"+key
		r.Explanation = fmt.Sprintf("%s object %s (%s); get_result() reads it with the configured %s bucket settings and credentials",
			service, r.Location, size, service)
	default:
		return r, fmt.Errorf("result reference %q: unknown scheme %q (django-ray writes oversize, resultfs, s3 or gs)", ref, scheme)
	}
	return r, nil
}

// statInside stats rel under dir without leaving dir: a symbolic link (in any element of the
// path) that points outside it is refused, so a reference can never make rayctl report
// whether a file elsewhere exists or how large it is.
func statInside(dir, rel string) (fs.FileInfo, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("result directory: %w", err)
	}
	defer root.Close()
	fi, err := root.Stat(filepath.FromSlash(rel))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("not followed: %s (%w)", rel, err)
	}
	return fi, err
}
