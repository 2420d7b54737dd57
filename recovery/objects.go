package recovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
)

// DefaultFetchLimit is how much of an s3:// or gs:// result TaskDetail reads unless told
// otherwise: enough to see what a result is, without pulling 100 MiB to a terminal.
const DefaultFetchLimit = 64 << 10

// MaxFetchLimit is the most TaskDetail reads of one result (MAX_RESULT_SIZE_BYTES' maximum).
const MaxFetchLimit = 100 << 20

// ObjectData is an object as an ObjectReader read it: at most the limit asked for.
type ObjectData struct {
	Data        []byte
	Size        int64 // of the whole object
	ContentType string
}

// ObjectReader reads stored results from S3 and GCS (rayctl wires resultstore's clients,
// with the workers' region and endpoint settings and this machine's credentials).
type ObjectReader interface {
	// ReadObject reads at most limit bytes of the object; scheme is "s3" or "gs". Its errors
	// say why, without secrets.
	ReadObject(ctx context.Context, scheme, bucket, key string, limit int64) (ObjectData, error)
}

// ResultObject is a stored result as rayctl read it back.
type ResultObject struct {
	Size        int64  `json:"size"` // of the whole object
	ContentType string `json:"content_type"`
	// Content is the first bytes read, as text (invalid UTF-8 replaced), exactly as stored
	// otherwise: rayctl's text output sanitizes it (termtext), and JSON carries it unchanged.
	Content   string `json:"content"`
	Fetched   int64  `json:"fetched_bytes"`
	Truncated bool   `json:"truncated"` // Content is only the start of the object
	// SizeMatches: the object's size is the reference's ?bytes=; DigestMatches (only when
	// read whole): its SHA-256 is the digest its key is named after.
	SizeMatches   *bool `json:"size_matches,omitempty"`
	DigestMatches *bool `json:"digest_matches,omitempty"`
}

// fetchObject reads ref's object into ref.Object, or says why not in ref.FetchError.
func fetchObject(ctx context.Context, rd ObjectReader, ref *Reference, limit int64) {
	if limit <= 0 {
		limit = DefaultFetchLimit
	}
	o, err := rd.ReadObject(ctx, ref.Scheme, ref.Bucket, ref.Key, limit)
	if err != nil {
		ref.FetchError = err.Error()
		return
	}
	ro := &ResultObject{Size: o.Size, ContentType: o.ContentType, Content: strings.ToValidUTF8(string(o.Data), "\uFFFD"), Fetched: int64(len(o.Data)),
		Truncated: int64(len(o.Data)) < o.Size}
	if ref.Bytes != nil {
		ok := o.Size == *ref.Bytes
		ro.SizeMatches = &ok
	}
	// django-ray's keys end in <sha256 hex>.json: a whole object can be checked against it
	if name := path.Base(ref.Key); !ro.Truncated && len(name) == 64+len(".json") && strings.HasSuffix(name, ".json") {
		sum := sha256.Sum256(o.Data)
		ok := hex.EncodeToString(sum[:]) == strings.ToLower(strings.TrimSuffix(name, ".json"))
		ro.DigestMatches = &ok
	}
	ref.Object = ro
}
