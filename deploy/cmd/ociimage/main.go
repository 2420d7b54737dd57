// Command ociimage builds the release's container images without a Docker daemon: a static,
// non-root image holding one binary and nothing else (no shell, no package manager), the
// same image deploy/docker/Dockerfile describes for those who build with Docker.
//
//	ociimage build -name rayworker -binary dist/.../rayworker -os linux -arch amd64 \
//	    -version 1.2.3 -commit SHA -date RFC3339 -out dist/images
//	    writes the OCI layout OUT/NAME_OS_ARCH; a no-op for other OSes
//	ociimage index -name rayworker -out dist/images
//	    gathers OUT/NAME_linux_* into the multi-platform OCI layout OUT/NAME (an image index:
//	    `crane push --index OUT/NAME REF`, `skopeo copy --all oci:OUT/NAME docker://REF`)
//
// goreleaser runs `build` as each build's post hook and scripts/release.sh runs `index`.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout: shared with deploy/docker/Dockerfile, the app-image example and the
// Kubernetes overlays (deploy/helpers_test.go checks they agree).
const (
	binDir     = "/usr/local/bin"
	uid        = 65532             // "nonroot", as distroless images number it
	repository = "ghcr.io/rayctl/" // where the release pushes them
	source     = "https://github.com/rayctl/rayctl"
)

// caBundle is copied into the image so TLS to PostgreSQL (sslmode=verify-full) and an https
// Ray endpoint verify without extra mounts.
var caBundles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ociimage build|index [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "index":
		err = index(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want build or index)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	nm := fs.String("name", "", "binary name (rayctl, rayworker)")
	bin := fs.String("binary", "", "path of the built binary")
	goos := fs.String("os", "linux", "the binary's GOOS")
	arch := fs.String("arch", "", "the binary's GOARCH")
	version := fs.String("version", "", "version label")
	commit := fs.String("commit", "", "revision label")
	date := fs.String("date", "", "creation time (RFC 3339; the commit date keeps builds reproducible)")
	out := fs.String("out", "dist/images", "output directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *goos != "linux" {
		return nil // images are Linux only; the darwin builds have none
	}
	if *nm == "" || *bin == "" || *arch == "" {
		return errors.New("build: -name, -binary and -arch are required")
	}
	created := time.Unix(0, 0).UTC()
	if *date != "" {
		t, err := time.Parse(time.RFC3339, *date)
		if err != nil {
			return fmt.Errorf("-date: %w", err)
		}
		created = t.UTC()
	}
	img, err := Image(*nm, *bin, *arch, *version, *commit, created)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	dir := filepath.Join(*out, fmt.Sprintf("%s_%s_%s", *nm, *goos, *arch))
	if err := writeLayout(dir, img, *version); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ociimage: wrote the OCI layout %s (%s%s:%s, linux/%s)\n", dir, repository, *nm, *version, *arch)
	return nil
}

// writeLayout writes img as the only image of a new OCI layout at dir.
func writeLayout(dir string, img v1.Image, version string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	return lp.AppendImage(img, layout.WithPlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}),
		layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version}))
}

// readLayout returns the only image of the OCI layout at dir.
func readLayout(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s: %d images, want 1", dir, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// Image builds the single-platform image of one binary.
func Image(nm, bin, arch, version, commit string, created time.Time) (v1.Image, error) {
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var ca []byte
	for _, p := range caBundles {
		if ca, err = os.ReadFile(p); err == nil {
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("no CA bundle found (looked for %s)", strings.Join(caBundles, ", "))
	}
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid))},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, uid: uid},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: "usr/local/bin/" + nm, mode: 0o755, data: exe},
	}
	layerTar, err := tarOf(files, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = v1.Time{Time: created}
	cf.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cf.Config.Entrypoint = []string{binDir + "/" + nm}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Env = []string{"PATH=" + binDir, "HOME=/home/nonroot"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    nm,
		"org.opencontainers.image.source":   source,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": commit,
		"org.opencontainers.image.created":  created.Format(time.RFC3339),
	}
	cf.History = []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "ociimage build " + nm, Comment: "static binary, CA bundle, nonroot user"}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": commit,
		"org.opencontainers.image.created":  created.Format(time.RFC3339),
	}).(v1.Image), nil
}

type file struct {
	name string
	mode int64
	dir  bool
	uid  int
	data []byte
}

func tarOf(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Uid: f.uid, Gid: f.uid, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.dir {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func index(args []string) error {
	fs := flag.NewFlagSet("index", flag.ExitOnError)
	nm := fs.String("name", "", "binary name")
	out := fs.String("out", "dist/images", "directory holding NAME_linux_ARCH.tar; the layout goes to OUT/NAME")
	if err := fs.Parse(args); err != nil {
		return err
	}
	paths, err := filepath.Glob(filepath.Join(*out, *nm+"_linux_*"))
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("no %s_linux_* image in %s", *nm, *out)
	}
	sort.Strings(paths)
	dir := filepath.Join(*out, *nm)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	for _, p := range paths {
		img, err := readLayout(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		if err := lp.AppendImage(img, layout.WithPlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}),
			layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": cf.Config.Labels["org.opencontainers.image.version"]})); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "ociimage: wrote the OCI layout %s (%d platforms)\n", dir, len(paths))
	return nil
}
