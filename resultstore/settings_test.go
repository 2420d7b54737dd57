package resultstore

import (
	"testing"

	"github.com/rayctl/rayctl/internal/settings"
)

// TestConfigFrom: each RESULT_STORAGE_* setting lands in its field; names, regions and
// endpoints are trimmed, prefixes kept as given; unset ones take the table's defaults.
func TestConfigFrom(t *testing.T) {
	set := map[string]string{
		settings.ResultStorageBackend.Name: "S3", settings.ResultStorageS3Bucket.Name: " b1 ", settings.ResultStorageS3Prefix.Name: " p/ ",
		settings.ResultStorageS3Region.Name: " eu-west-1", settings.ResultStorageS3EndpointURL.Name: "http://minio:9000 ",
		settings.ResultStorageGCSBucket.Name: "g1", settings.ResultStorageFilesystemPath.Name: "/srv/results",
	}
	c := ConfigFrom(func(s settings.Setting) string {
		if v, ok := set[s.Name]; ok {
			return v
		}
		return s.Default
	}, " localhost:4443 ")
	want := Config{Backend: "S3", FilesystemPath: "/srv/results",
		S3:  S3Config{Bucket: "b1", Prefix: " p/ ", Region: "eu-west-1", EndpointURL: "http://minio:9000"},
		GCS: GCSConfig{Bucket: "g1", Prefix: DefaultPrefix, Emulator: "localhost:4443"}}
	if c.Backend != want.Backend || c.FilesystemPath != want.FilesystemPath || c.S3.Bucket != want.S3.Bucket || c.S3.Prefix != want.S3.Prefix ||
		c.S3.Region != want.S3.Region || c.S3.EndpointURL != want.S3.EndpointURL || c.GCS.Bucket != want.GCS.Bucket ||
		c.GCS.Prefix != want.GCS.Prefix || c.GCS.Emulator != want.GCS.Emulator {
		t.Errorf("ConfigFrom:\n got %+v\nwant %+v", c, want)
	}
	if c := ConfigFrom(func(s settings.Setting) string { return s.Default }, ""); c.Name() != "digest" || c.S3.Prefix != DefaultPrefix {
		t.Errorf("defaults: %+v", c)
	}
}
